"""PanopticOverlayVisualizer: what it draws and what it leaves plain."""
import uuid

import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData, PixelData

from mmpading.visualization import PanopticOverlayVisualizer

CLASSES = ('circle', 'square', 'grass')
SIZE = 64


def make_visualizer(**kwargs) -> PanopticOverlayVisualizer:
    visualizer = PanopticOverlayVisualizer(
        name=f'vis_{uuid.uuid4().hex[:8]}', **kwargs)
    visualizer.dataset_meta = dict(
        classes=CLASSES, palette=[(220, 20, 60), (0, 0, 230), (0, 200, 0)])
    return visualizer


def make_sample(pred_map: np.ndarray) -> DetDataSample:
    sample = DetDataSample()
    # A panoptic data set's test pipeline packs the class map as gt_sem_seg.
    gt = np.full((1, SIZE, SIZE), 255, dtype=np.int64)
    gt[0, :32] = 0
    gt[0, 32:] = 2
    sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(gt))
    sample.pred_panoptic_seg = PixelData(
        sem_seg=torch.from_numpy(pred_map[None]))
    # Other outputs of the universal model, which are not drawn.
    sample.pred_sem_seg = PixelData(
        sem_seg=torch.ones(1, SIZE, SIZE, dtype=torch.long))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[0., 0., 16., 16.]]), labels=torch.tensor([0]),
        scores=torch.tensor([0.9]),
        masks=torch.ones(1, SIZE, SIZE, dtype=torch.bool))
    return sample


def draw(visualizer, sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((SIZE, SIZE, 3), 128, dtype=np.uint8)
    visualizer.add_datasample('x', image, sample, draw_gt=True,
                              draw_pred=True, show=False)
    drawn = visualizer.get_image()
    assert drawn.shape == (SIZE, 2 * SIZE, 3)  # ground truth | prediction
    return image, drawn[:, :SIZE], drawn[:, SIZE:]


def test_ground_truth_class_map_is_drawn_when_no_panoptic_gt():
    void = np.full((SIZE, SIZE), len(CLASSES), dtype=np.int64)
    image, gt_half, _ = draw(make_visualizer(), make_sample(void))
    assert not np.array_equal(gt_half, image)
    # Two classes, two colours.
    assert not np.array_equal(gt_half[4, 4], gt_half[60, 60])


def test_prediction_without_segments_leaves_the_image_plain():
    void = np.full((SIZE, SIZE), len(CLASSES), dtype=np.int64)
    image, _, pred_half = draw(make_visualizer(), make_sample(void))
    assert np.array_equal(pred_half, image)


def test_only_the_panoptic_prediction_is_drawn():
    pred = np.full((SIZE, SIZE), len(CLASSES), dtype=np.int64)
    pred[:, 48:] = 1 + 1 * INSTANCE_OFFSET  # one 'square' instance
    image, _, pred_half = draw(make_visualizer(), make_sample(pred))
    assert not np.array_equal(pred_half[:, 56:], image[:, 56:])
    # pred_sem_seg and pred_instances cover the left side: not drawn.
    assert np.array_equal(pred_half[:, :16], image[:, :16])


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match='draw_kinds'):
        make_visualizer(draw_kinds=('panoptic', ))
