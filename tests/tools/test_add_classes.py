"""tools/misc/add_classes.py: writes the extended checkpoint; exit 1 on an
existing output, 2 with the message on bad input."""
from __future__ import annotations

import json
import os.path as osp
from pathlib import Path

import pytest
import torch

from mmpading.utils.config_utils import toy_class_count_options

from _helpers import load_tool_module
from _helpers.held_out_model import NEW, write_held_out_model

TOOL = (Path(__file__).resolve().parents[2] / 'tools' / 'misc' /
        'add_classes.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.fixture(scope='module')
def model(tiny_toy_root, tmp_path_factory):
    return write_held_out_model(tiny_toy_root,
                                tmp_path_factory.mktemp('add_classes_tool'))


def arguments(model, out, *extra):
    return ['pading_toy_stage2', model['checkpoint'], '--data-root',
            model['held'], '--feature-cache', model['cache'], '--classes',
            NEW, '--embeddings', model['embeddings'], '--out', str(out),
            '--cfg-options', 'train_dataloader.batch_size=4',
            *[f'{key}={value}' for key, value in _counts(model).items()],
            *extra]


def _counts(model):
    """The head class counts of the held-out root (the --cfg-options)."""
    return {key: value for key, value in
            toy_class_count_options(model['held']).items()
            if key.endswith('_classes')}


def test_writes_the_extended_checkpoint(tool, model, tmp_path, capsys):
    out = tmp_path / 'extended.pth'
    order = osp.join(model['full_root'], 'metainfo.json')
    assert tool.main(arguments(model, out, '--iters', '3',
                               '--class-order', order)) == 0
    printed = capsys.readouterr().out
    assert f'added {NEW}' in printed and '3 classifier steps' in printed
    meta = torch.load(out, weights_only=False)['meta']['dataset_meta']
    with open(order) as f:
        assert list(meta['classes']) == json.load(f)['classes']
    assert (tmp_path / 'extended.class_embeddings.json').is_file()


def test_an_existing_output_exits_1(tool, model, tmp_path, capsys):
    out = tmp_path / 'mine.pth'
    out.write_bytes(b'mine')
    assert tool.main(arguments(model, out)) == 1
    assert 'nothing is overwritten' in capsys.readouterr().err
    assert out.read_bytes() == b'mine'


@pytest.mark.parametrize('change, message', [
    (['--classes', 'red circle'], 'already are classes'),
    (['--class-order', 'missing.json'], '--class-order missing.json'),
    (['--stuff', 'grey dots'], 'not classes to add'),
])
def test_bad_input_exits_2(tool, model, tmp_path, capsys, change, message):
    out = tmp_path / 'bad.pth'
    assert tool.main(arguments(model, out, *change)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_checkpoint_exits_2(tool, model, tmp_path, capsys):
    argv = arguments(model, tmp_path / 'x.pth')
    argv[1] = str(tmp_path / 'nowhere.pth')
    assert tool.main(argv) == 2
    assert 'nowhere.pth' in capsys.readouterr().err
