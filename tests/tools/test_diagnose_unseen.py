"""tools/analysis_tools/diagnose_unseen.py: counts that add up, on the
tiny toy set and on hand-made inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOL = load_tool_module(
    str(REPO / 'tools' / 'analysis_tools' / 'diagnose_unseen.py'))


def hand_made_sample() -> DetDataSample:
    """8 x 8 image: an unseen thing (label 1) in the top-left 4 x 4, an
    unseen stuff region (label 3) in the bottom half, seen stuff (label 2)
    elsewhere."""
    sample = DetDataSample(metainfo=dict(img_shape=(8, 8),
                                         batch_input_shape=(8, 8)))
    thing = np.zeros((1, 8, 8), dtype=np.uint8)
    thing[0, :4, :4] = 1
    sample.gt_instances = InstanceData(
        masks=BitmapMasks(thing, 8, 8), labels=torch.tensor([1]))
    semantic = torch.full((1, 8, 8), 2)
    semantic[0, :4, :4] = 1
    semantic[0, 4:] = 3
    sample.gt_sem_seg = PixelData(sem_seg=semantic)
    # The output: one segment of unseen class 3 (instance id 1), seen
    # class 0 elsewhere.
    panoptic = torch.zeros((1, 8, 8), dtype=torch.long)
    panoptic[0, 4:] = 3 + 1 * TOOL.INSTANCE_OFFSET
    sample.pred_panoptic_seg = PixelData(sem_seg=panoptic)
    return sample


def test_score_image_labels_the_covering_queries():
    sample = hand_made_sample()
    # Query 0 covers the thing exactly, query 1 the stuff region's top
    # half only (IoU 0.5: not covered), at half resolution (4 x 4).
    mask_logits = torch.full((2, 4, 4), -5.0)
    mask_logits[0, :2, :2] = 5.0
    mask_logits[1, 2:3, :] = 5.0
    # Classes: 0 seen thing, 1 unseen thing, 2 seen stuff, 3 unseen
    # stuff, 4 no object. Query 0 is called seen class 0.
    logits = torch.tensor([[3.0, 1.0, 0.0, 0.5, 2.0],
                           [0.0, 0.0, 0.0, 9.0, 0.0]])
    covering = TOOL.covering_queries(mask_logits, sample, num_things=2)
    result = TOOL.score_image(logits, covering, sample, seen_ids=[0, 2],
                              unseen_ids=[1, 3], threshold=0.5)
    assert result['gt_segments'] == 2
    assert result['covered'] == 1
    assert (result['own'], result['seen'], result['no_object']) == (0, 1, 0)
    assert result['labelled_as'] == [(1, 0)]
    assert result['margin_seen'] == [pytest.approx(1.0 - 3.0)]
    assert result['margin_no_object'] == [pytest.approx(1.0 - 2.0)]
    assert result['predicted_unseen_segments'] == 1


def test_a_covering_query_with_its_own_label_passes_the_threshold():
    sample = hand_made_sample()
    mask_logits = torch.full((1, 4, 4), -5.0)
    mask_logits[0, :2, :2] = 5.0
    logits = torch.tensor([[0.0, 6.0, 0.0, 0.0, 1.0]])
    covering = TOOL.covering_queries(mask_logits, sample, num_things=2)
    result = TOOL.score_image(logits, covering, sample, [0, 2], [1, 3],
                              threshold=0.9)
    assert (result['covered'], result['own'], result['own_passing']) == (
        1, 1, 1)
    strict = TOOL.score_image(logits, covering, sample, [0, 2], [1, 3],
                              threshold=0.999)
    assert (strict['own'], strict['own_passing']) == (1, 0)


def test_covering_queries_take_the_best_iou_above_one_half():
    sample = hand_made_sample()
    mask_logits = torch.full((2, 4, 4), -5.0)
    mask_logits[0, :2, :2] = 5.0  # the thing exactly
    mask_logits[1, 2:, :] = 5.0  # the unseen stuff region exactly
    covering = TOOL.covering_queries(mask_logits, sample, num_things=2)
    assert sorted(covering, key=lambda item: item[0]) == [
        (1, 0), (2, None), (3, 1)]


def test_nearest_class_is_by_cosine_and_can_exclude():
    means = {0: torch.tensor([1.0, 0.0]), 1: torch.tensor([0.0, 5.0]),
             2: torch.tensor([0.7, 0.7])}
    feature = torch.tensor([10.0, 1.0])
    assert TOOL.nearest_class(feature, means) == 0
    assert TOOL.nearest_class(feature, means, exclude=0) == 2
    assert TOOL.nearest_class(feature, {}) is None


def unseen_segments_in(annotation_file: Path, unseen: list[str]) -> int:
    data = json.loads(annotation_file.read_text())
    names = {c['id']: c['name'] for c in data['categories']}
    return sum(names[segment['category_id']] in unseen
               for image in data['annotations']
               for segment in image['segments_info'])


def test_tiny_diagnosis_end_to_end(tiny_toy_root, stage1_checkpoint,
                                   tmp_path, capsys):
    out = tmp_path / 'diag.json'
    assert TOOL.main([
        stage1_checkpoint, '--seeds', '2', '--stage2-iters', '6',
        '--interval', '2', '--data-root', tiny_toy_root, '--work-dir',
        str(tmp_path / 'runs'), '--out', str(out)
    ]) == 0
    record = json.loads(out.read_text())
    assert [entry['seed'] for entry in record['seeds']] == [0, 1]
    expected_gt = unseen_segments_in(
        Path(tiny_toy_root) / 'annotations' / 'panoptic_val.json',
        record['unseen_classes'])
    assert expected_gt > 0
    for entry in record['seeds']:
        assert [p['iteration'] for p in entry['curve']] == [2, 4, 6]
        for point in entry['curve']:
            segments = point['unseen_segments']
            # Every unseen segment of the annotation file is looked at.
            assert segments['gt_segments'] == expected_gt
            assert sum(segments[key] for key in TOOL.OUTCOMES) == \
                segments['covered'] <= expected_gt
            assert segments['own_passing'] <= segments['own']
            # The labels of the covered queries add up to the outcomes.
            labelled = segments['labelled_as']
            assert sum(sum(row.values()) for row in labelled.values()) == \
                segments['covered']
            assert sum(row.get(name, 0) for name, row in labelled.items()) \
                == segments['own']
            assert 0 <= point['pq']['unseen'] <= 100
            assert set(point['weights']['unseen']) == set(
                record['unseen_classes'])
            check = point['synthetic']
            assert set(check['unseen']) == set(record['unseen_classes'])
            assert 0 <= check['seen_own_share'] <= 1
            assert check['seen_nearest_own'] <= check['seen_with_real']
            for row in check['unseen'].values():
                assert 0 <= row['own_share'] <= 1
                # A real unseen mean is compared with seen classes only.
                assert row['real_nearest_seen'] not in record[
                    'unseen_classes']
    report = out.with_suffix('.md').read_text()
    assert '| seed | iter 2 | iter 4 | iter 6 |' in report
    assert "## The generator's features against the real ones" in report
    assert 'unseen PQ 0 in' in report
    # The seeds differ only in the stage-2 draws: the same segmenter
    # covers the same segments.
    first, second = (entry['curve'][-1]['unseen_segments']
                     for entry in record['seeds'])
    assert first['covered'] == second['covered']
    assert record['config'] == 'pading_toy_stage2'
    # Another stage-2 config trains from the same cache (one segmenter).
    cache = tmp_path / 'runs' / 'feature_cache'
    built = (cache / 'manifest.json').stat().st_mtime_ns
    other = tmp_path / 'gmmn.json'
    assert TOOL.main([
        stage1_checkpoint, '--config', 'pading_toy_stage2_gmmn', '--seeds',
        '1', '--stage2-iters', '6', '--interval', '6', '--data-root',
        tiny_toy_root, '--work-dir', str(tmp_path / 'gmmn'),
        '--feature-cache', str(cache), '--out', str(other)
    ]) == 0
    assert (cache / 'manifest.json').stat().st_mtime_ns == built
    assert json.loads(other.read_text())['config'] == \
        'pading_toy_stage2_gmmn'
    assert '`configs/toy/pading_toy_stage2_gmmn.py`' in \
        other.with_suffix('.md').read_text()
    # A config with an EMAHook (its checkpoints' state_dict holds the
    # averaged weights) is scored as any other: the same PQ.
    scorer = TOOL.CheckpointScorer(
        'pading_toy_stage2', str(cache), tiny_toy_root,
        str(tmp_path / 'ema_scoring'),
        dict(custom_hooks=[dict(type='EMAHook')]))
    rescored = scorer.score(str(tmp_path / 'runs' / 'seed0' / 'iter_6.pth'))
    assert rescored['pq'] == record['seeds'][0]['curve'][-1]['pq']
    # A longer schedule wants more passes than the cache holds: refused
    # with the difference, unless told to cycle the cache's passes.
    longer = [stage1_checkpoint, '--seeds', '1', '--stage2-iters', '40',
              '--interval', '40', '--data-root', tiny_toy_root,
              '--work-dir', str(tmp_path / 'runs'), '--out',
              str(tmp_path / 'longer.json')]
    assert TOOL.main(longer) == 2
    assert 'epochs: 4 in the cache, 25 now' in capsys.readouterr().err


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        TOOL.main([str(tmp_path / 'missing.pth')])
    assert 'does not exist' in capsys.readouterr().err
    checkpoint = tmp_path / 'stage1.pth'
    checkpoint.write_bytes(b'')
    with pytest.raises(SystemExit):
        TOOL.main([str(checkpoint), '--data-root', str(tmp_path)])
    assert 'holds no toy data set' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        TOOL.main([str(checkpoint), '--interval', '0'])
    assert '--interval must be at least 1' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        TOOL.main([str(checkpoint), '--config', 'pading_toy_stage3'])
    error = capsys.readouterr().err
    assert 'no configs/toy/pading_toy_stage3.py' in error
    assert 'pading_toy_stage2_gmmn' in error
