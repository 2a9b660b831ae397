"""tools/model_converters/make_reference_parity_fixture.py without the
reference: its input image, key checks and refusals (running the
reference needs detectron2 and heshuting555/PADing, see
docs/model_conversion.md)."""
import json
from pathlib import Path

import numpy as np
import pytest

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'model_converters' / 'make_reference_parity_fixture.py'
DATA_DIR = REPO / 'tests' / 'data' / 'reference_parity'


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


def test_synthetic_image_is_the_fixture_input(tool):
    meta = json.loads((DATA_DIR / 'zsp_pading_meta.json').read_text())
    image = tool.synthetic_image(meta['image_seed'])
    assert image.shape == tuple(meta['input_size']) + (3, )
    assert image.dtype == np.uint8
    with np.load(DATA_DIR / 'input.npz') as stored:
        np.testing.assert_array_equal(image, stored['image_rgb'])


def test_key_fixtures_are_checked_and_written(tool, tmp_path, capsys):
    shapes = {'a.weight': [2, 3], 'a.bias': [2]}
    path = tmp_path / 'keys.json'
    assert tool.check_or_write_keys(shapes, path, write=True) == 0
    assert json.loads(path.read_text()) == shapes
    assert tool.check_or_write_keys(dict(reversed(shapes.items())), path,
                                    write=False) == 0
    assert tool.check_or_write_keys({'a.weight': [2, 4]}, path,
                                    write=False) == 1
    out = capsys.readouterr().out
    assert "missing [], extra ['a.bias'], other shapes ['a.weight']" in out


def test_every_key_fixture_layout_is_a_reference_layout(tool):
    assert set(tool.KEY_FIXTURES) <= set(tool.LAYOUTS)
    for name in tool.KEY_FIXTURES.values():
        assert (REPO / 'tests' / 'apis' / 'reference_keys' / name).is_file()


def test_refuses_a_folder_that_is_not_the_reference(tool, tmp_path):
    with pytest.raises(SystemExit, match='not a checkout of'):
        tool.main(['--reference-root', str(tmp_path)])
