"""PanopticOverlayVisualizer: what it draws and what it leaves plain."""
import uuid

import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData, PixelData

from mmpading.visualization import PanopticOverlayVisualizer
from mmpading.visualization.panoptic_overlay_visualizer import (
    LEGEND_LINE,
    LEGEND_PAD,
    SWATCH,
    TITLE_BAND,
)

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


# ------------------------------------------------------ readable layout
SCALE = 2


def readable_visualizer(**kwargs) -> PanopticOverlayVisualizer:
    visualizer = make_visualizer(
        scale=SCALE, gt_title='ground truth',
        pred_title='prediction: PADing', legend=True, min_font_size=11,
        **kwargs)
    visualizer.dataset_meta['unseen_classes'] = ('square', )
    return visualizer


def square_prediction() -> np.ndarray:
    pred = np.full((SIZE, SIZE), len(CLASSES), dtype=np.int64)
    pred[:, 48:] = 1 + 1 * INSTANCE_OFFSET  # one 'square' (unseen)
    return pred


def draw_readable(visualizer) -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 128, dtype=np.uint8)
    visualizer.add_datasample('x', image, make_sample(square_prediction()),
                              show=False)
    return visualizer.get_image()


def test_legend_lists_the_classes_present_and_marks_unseen_ones():
    visualizer = readable_visualizer()
    entries = visualizer.legend_entries(make_sample(square_prediction()))
    # circle and grass in the ground truth, square in the prediction.
    assert [e.name for e in entries] == list(CLASSES)
    square = entries[1]
    assert square.unseen and square.key == '2*'
    assert square.text == '2* square'
    assert not entries[0].unseen and entries[0].key == '1'
    assert square.color == tuple(visualizer.dataset_meta['palette'][1])
    assert visualizer.legend_lines(entries)[-1] == '* = unseen class'
    assert '* = unseen class' not in visualizer.legend_lines(entries[:1])
    # Segments are labelled with the same keys.
    assert visualizer.legend_keys() == ['1', '2*', '3']


def test_drawn_instances_carry_keys_and_join_the_legend(monkeypatch):
    """Instances above the score threshold are listed and labelled with
    their class key (unseen ``*``), as segments are."""
    visualizer = make_visualizer(legend=True, draw_kinds=('instances', ))
    visualizer.dataset_meta['unseen_classes'] = ('square', )
    sample = DetDataSample()
    masks = torch.zeros(3, SIZE, SIZE, dtype=torch.bool)
    masks[0, :16, :16] = masks[1, 32:, 32:] = masks[2, 40:, :8] = True
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[0., 0., 16., 16.], [32., 32., 64., 64.],
                             [0., 40., 8., 64.]]),
        labels=torch.tensor([1, 0, 2]), scores=torch.tensor([0.9, 0.6, 0.1]),
        masks=masks)
    entries = visualizer.legend_entries(sample, pred_score_thr=0.3)
    # grass scores 0.1: not drawn, not listed.
    assert [(e.name, e.key) for e in entries] == [('circle', '1'),
                                                   ('square', '2*')]
    drawn_labels = []
    draw_instances = DetLocalVisualizer._draw_instances

    def record(self, image, instances, classes, palette):
        drawn_labels.extend(instances.label_names)
        return draw_instances(self, image, instances, classes, palette)

    monkeypatch.setattr(DetLocalVisualizer, '_draw_instances', record)
    image = np.full((SIZE, SIZE, 3), 128, dtype=np.uint8)
    visualizer.add_datasample('x', image, sample, draw_gt=False,
                              pred_score_thr=0.3)
    assert drawn_labels == ['2*', '1']


def test_readable_overlay_is_upscaled_titled_and_has_a_legend():
    visualizer = readable_visualizer()
    drawn = draw_readable(visualizer)
    panel = SCALE * SIZE
    assert drawn.shape[0] == TITLE_BAND + panel
    assert drawn.shape[1] > 2 * panel
    # A title (dark text on white) above each half, none above the legend.
    band = drawn[:TITLE_BAND].min(axis=2)
    for half in (band[:, :panel], band[:, panel:2 * panel]):
        assert (half < 80).sum() > 20
    # Upscaled halves: the ground truth's two classes meet at row 32 * 2.
    gt_half = drawn[TITLE_BAND:, :panel]
    assert not np.array_equal(gt_half[2 * 30, 4], gt_half[2 * 34, 4])
    # The legend's swatches carry the palette colours, in class order.
    entries = visualizer.legend_entries(make_sample(square_prediction()))
    swatch_x = 2 * panel + LEGEND_PAD + SWATCH // 2
    for index, entry in enumerate(entries):
        row = int(LEGEND_PAD + LEGEND_LINE * (index + 1.5))
        assert tuple(drawn[row, swatch_x]) == entry.color


def test_small_labels_are_lifted_to_the_minimum_font_size():
    visualizer = readable_visualizer()
    visualizer.set_image(np.zeros((SIZE, SIZE, 3), dtype=np.uint8))
    visualizer.draw_texts('7*', np.array([10, 10]), font_sizes=6)
    visualizer.draw_texts(['a', 'b'], np.array([[5, 5], [20, 20]]),
                          font_sizes=[6, 14])
    sizes = [text.get_size() for text in visualizer.ax_save.texts]
    assert sizes == [11, 11, 14]


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match='scale'):
        make_visualizer(scale=0)


class UpstreamMaskDrawing(PanopticOverlayVisualizer):
    """The same visualizer with mmengine's own ``draw_binary_masks``."""

    draw_binary_masks = DetLocalVisualizer.draw_binary_masks


def test_mask_drawing_keeps_one_image_layer_and_upstream_pixels():
    # Several segments of several classes: upstream stacks one image per
    # mask; ours keeps only the visible one, with the same pixels.
    pred = np.full((SIZE, SIZE), len(CLASSES), dtype=np.int64)
    pred[:20, :20] = 0 + INSTANCE_OFFSET
    pred[30:50, 10:40] = 0 + 2 * INSTANCE_OFFSET
    pred[:, 44:] = 1 + 3 * INSTANCE_OFFSET
    pred[52:, :30] = 2
    options = dict(scale=2, gt_title='ground truth', pred_title='pred',
                   legend=True, min_font_size=11)
    ours = make_visualizer(**options)
    upstream = UpstreamMaskDrawing(name=f'vis_{uuid.uuid4().hex[:8]}',
                                   **options)
    upstream.dataset_meta = ours.dataset_meta
    image = np.full((SIZE, SIZE, 3), 128, dtype=np.uint8)
    drawn = {}
    for name, visualizer in (('ours', ours), ('upstream', upstream)):
        visualizer.set_image(image)
        for label in range(3):
            visualizer.draw_binary_masks(
                np.broadcast_to(np.arange(SIZE)[:, None] % 3 == label,
                                (SIZE, SIZE)),
                colors=(60 * label, 20, 200), alphas=0.5)
        drawn[name + '_masks'] = visualizer.get_image()
        layers = len(visualizer.ax_save.images)
        drawn[name + '_layers'] = layers
        visualizer.add_datasample('x', image, make_sample(pred))
        drawn[name] = visualizer.get_image()
    assert drawn['ours_layers'] == 1
    assert drawn['upstream_layers'] == 4  # the first image + one per mask
    np.testing.assert_array_equal(drawn['ours_masks'],
                                  drawn['upstream_masks'])
    np.testing.assert_array_equal(drawn['ours'], drawn['upstream'])
