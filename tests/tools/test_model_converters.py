"""tools/model_converters/pading_to_mmpading.py: write, refuse, overwrite."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmpading.apis.checkpoint_checks import read_checkpoint_contents

from _helpers import load_tool_module

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / 'tools' / 'model_converters' / 'pading_to_mmpading.py'
KEYS = REPO_ROOT / 'tests' / 'apis' / 'reference_keys' / 'zsp_pading.json'


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.fixture(scope='module')
def reference_checkpoint(tmp_path_factory) -> Path:
    """A final ZSP model of the reference's layout; zeros (lazily
    allocated) except the classifier, whose bias tells the rows apart."""
    shapes = json.loads(KEYS.read_text())
    state = {key: torch.zeros(shape) for key, shape in shapes.items()}
    state['new_fc.bias'] = torch.arange(134.0)
    path = tmp_path_factory.mktemp('reference') / 'PADing_panoptic.pth'
    torch.save({'model': state, 'iteration': 19999}, path)
    return path


def test_converts_a_final_model(tool, reference_checkpoint, tmp_path,
                                capsys):
    dst = tmp_path / 'out' / 'zsp_r50_pading.pth'
    assert tool.main([str(reference_checkpoint), str(dst)]) == 0
    printed = capsys.readouterr().out
    assert 'layout zsp, stage pading: 634 source keys mapped' in printed
    assert 'ignored criterion.empty_weight' in printed
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['reference_layout'] == 'zsp'
    assert torch.equal(saved['state_dict']['zero_shot.classifier.bias'],
                       torch.arange(134.0))
    # mmpading's tools take it as a stage-2 checkpoint.
    assert read_checkpoint_contents(str(dst)).stage == 2

    # An existing file is kept unless --overwrite.
    assert tool.main([str(reference_checkpoint), str(dst)]) == 1
    assert 'pass --overwrite' in capsys.readouterr().err
    assert tool.main([str(reference_checkpoint), str(dst), '--stage',
                      'pretrain', '--overwrite']) == 2
    assert '--stage pretrain, but the checkpoint is a pading one' in \
        capsys.readouterr().err


def test_refuses_a_checkpoint_of_another_model(tool, tmp_path, capsys):
    src = tmp_path / 'mmdet.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
               src)
    assert tool.main([str(src), str(tmp_path / 'out.pth')]) == 2
    assert 'no sem_seg_head.predictor.class_embed.weight' in \
        capsys.readouterr().err
    assert not (tmp_path / 'out.pth').exists()


def test_options(tool):
    args = tool.parse_args(['a.pth', 'b.pth', '--layout', 'zsi', '--stage',
                            'pretrain', '--config',
                            'configs/pading/zsi_48_17_r50_pretrain.py'])
    assert (args.layout, args.stage) == ('zsi', 'pretrain')
    with pytest.raises(SystemExit):
        tool.parse_args(['a.pth', 'b.pth', '--layout', 'coco'])
