"""tools/model_converters/merge_cached_learner.py: merge, refuse, keep."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _helpers import load_tool_module

TOOL = (Path(__file__).resolve().parents[2] / 'tools' / 'model_converters' /
        'merge_cached_learner.py')


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.fixture
def checkpoints(tmp_path) -> tuple[Path, Path]:
    """A stage-1 checkpoint and a learner-only run of its feature cache."""
    stage1 = tmp_path / 'stage1.pth'
    torch.save({'state_dict': {
        'backbone.conv.weight': torch.ones(2, 3),
        'panoptic_head.cls_embed.weight': torch.zeros(4, 2)}}, stage1)
    cached = tmp_path / 'cached.pth'
    torch.save({'meta': {'iter': 7}, 'state_dict': {
        'zero_shot.classifier.weight': torch.full((5, 2), 3.0),
        'cls_embed.weight': torch.zeros(4, 2)}}, cached)
    return stage1, cached


def test_merges_the_segmenter_with_the_learner(tool, checkpoints, tmp_path,
                                               capsys):
    stage1, cached = checkpoints
    out = tmp_path / 'merged.pth'
    assert tool.main([str(stage1), str(cached), str(out)]) == 0
    assert f'wrote {out}' in capsys.readouterr().out
    merged = torch.load(out, weights_only=False)
    assert set(merged['state_dict']) == {
        'backbone.conv.weight', 'panoptic_head.cls_embed.weight',
        'zero_shot.classifier.weight'}
    assert torch.equal(merged['state_dict']['zero_shot.classifier.weight'],
                       torch.full((5, 2), 3.0))
    assert merged['meta'] == {'iter': 7}

    # An existing OUT is kept as it is.
    stamp = out.stat().st_mtime_ns
    assert tool.main([str(stage1), str(cached), str(out)]) == 1
    assert 'nothing is overwritten' in capsys.readouterr().err
    assert out.stat().st_mtime_ns == stamp


def test_refuses_inputs_it_cannot_merge(tool, checkpoints, tmp_path, capsys):
    stage1, cached = checkpoints
    # Swapped: the "stage-1" checkpoint has no segmenter.
    assert tool.main([str(cached), str(stage1), str(tmp_path / 'a.pth')]) \
        == 2
    assert 'holds no segmenter weights' in capsys.readouterr().err
    # A stage-1 checkpoint as the run: no learner to merge.
    assert tool.main([str(stage1), str(stage1), str(tmp_path / 'b.pth')]) \
        == 2
    assert 'holds no learner weights' in capsys.readouterr().err
    missing = tmp_path / 'missing.pth'
    assert tool.main([str(stage1), str(missing), str(tmp_path / 'c.pth')]) \
        == 2
    assert f'CACHED {missing} is not a file' in capsys.readouterr().err
    garbage = tmp_path / 'garbage.pth'
    garbage.write_text('not a checkpoint')
    assert tool.main([str(garbage), str(cached), str(tmp_path / 'd.pth')]) \
        == 2
    assert 'cannot merge' in capsys.readouterr().err
    assert not any((tmp_path / n).exists()
                   for n in ('a.pth', 'b.pth', 'c.pth', 'd.pth'))
