import numpy as np
import pytest
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from mmpading.datasets.splits import ZeroShotSplit
from mmpading.datasets.transforms import IgnoreUnseenClasses

CLASSES = ('red circle', 'blue circle', 'red square', 'grey stripes')
SPLIT = ZeroShotSplit('tiny', seen=('red circle', 'red square',
                                    'grey stripes'),
                      unseen=('blue circle', ))


def test_unseen_pixels_and_instances_are_hidden():
    rng = np.random.default_rng(0)
    seg = rng.integers(0, len(CLASSES), size=(8, 8)).astype(np.uint8)
    labels = np.array([0, 1, 2, 1])
    results = dict(
        gt_seg_map=seg.copy(),
        gt_bboxes=HorizontalBoxes(rng.uniform(0, 4, size=(4, 4))),
        gt_bboxes_labels=labels,
        gt_masks=BitmapMasks(rng.integers(0, 2, (4, 8, 8)), 8, 8),
        gt_ignore_flags=np.zeros(4, dtype=bool))
    masks_before = results['gt_masks'].masks.copy()
    out = IgnoreUnseenClasses(split=SPLIT, classes=CLASSES)(results)
    assert (out['gt_seg_map'][seg == 1] == 255).all()
    assert (out['gt_seg_map'][seg != 1] == seg[seg != 1]).all()
    assert out['gt_bboxes_labels'].tolist() == [0, 2]
    assert len(out['gt_bboxes']) == len(out['gt_masks']) == 2
    assert np.array_equal(out['gt_masks'].masks, masks_before[[0, 2]])
    assert len(out['gt_ignore_flags']) == 2


def test_classes_must_match_the_split():
    with pytest.raises(ValueError, match="'blue circle'"):
        IgnoreUnseenClasses(split=SPLIT, classes=('red circle', 'blue sq'))
