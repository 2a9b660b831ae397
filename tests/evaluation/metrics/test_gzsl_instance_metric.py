"""GZSLInstanceMetric on the tiny COCO instance data set."""
import pytest
from mmdet.evaluation import CocoMetric
from tiny_coco_data import (
    GT_SCENES,
    STUFF_CLASSES,
    THING_CLASSES,
    instance_sample,
)

from mmpading.evaluation import GZSLInstanceMetric

PREFIX = 'gzsl_instance/'
KEYS = ('mAP50', 'R100')

# Image 2: the unseen cow is detected as a (seen) dog, exact mask and box,
# with a higher score (0.95) than every other detection (0.9).
# Image 3: the person's mask and box lose their 2 right-most columns.
HAND_WORKED_PREDICTIONS = {
    1: GT_SCENES[1],
    2: [('sky', (0, 16, 0, 48)), ('grass', (16, 32, 0, 48)),
        ('dog', (18, 30, 10, 30)), ('kite', (2, 8, 30, 38))],
    3: [('grass', (0, 32, 0, 48)), ('cow', (4, 20, 4, 20)),
        ('person', (8, 28, 30, 38)), (None, (30, 32, 0, 48))],
}
HAND_WORKED_SCORES = {2: {'dog': 0.95}}


def hm(seen, unseen):
    return 2 * seen * unseen / (seen + unseen)


def make_metric(tiny_coco, with_ann_file=True, **kwargs):
    kwargs.setdefault('unseen_classes', ['cow'])
    metric = GZSLInstanceMetric(
        ann_file=tiny_coco.instance_json if with_ann_file else None,
        **kwargs)
    metric.dataset_meta = dict(classes=THING_CLASSES)
    return metric


def samples_of(scenes, scores=None):
    scores = scores or {}
    return [
        instance_sample(image_id, scene, scores.get(image_id))
        for image_id, scene in scenes.items()
    ]


def evaluate(metric, scenes, scores=None):
    samples = samples_of(scenes, scores)
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert all(key.startswith(PREFIX) for key in results)
    return {key[len(PREFIX):]: value for key, value in results.items()}


@pytest.mark.parametrize('with_ann_file', [True, False])
def test_ground_truth_as_prediction_scores_100(tiny_coco, with_ann_file):
    metric = make_metric(tiny_coco, with_ann_file)
    results = evaluate(metric, GT_SCENES)
    for iou_type in ('segm', 'bbox'):
        for name in KEYS:
            for suffix in ('_seen', '_unseen', '_hm', ''):
                key = f'{iou_type}_{name}{suffix}'
                assert results[key] == pytest.approx(100), key
    assert metric.classes_without_gt == dict(seen=[], unseen=[], other=[])


@pytest.mark.parametrize('with_ann_file', [True, False])
def test_unseen_object_predicted_as_seen_class(tiny_coco, with_ann_file):
    metric = make_metric(tiny_coco, with_ann_file)
    results = evaluate(metric, HAND_WORKED_PREDICTIONS, HAND_WORKED_SCORES)
    # COCO AP at IoU 0.5: detections sorted by score, precision made
    # monotone from the right, read at the 101 recall points 0, 0.01, ... 1.
    # person: 2 GT (img1, img3); img1 exact, img3 IoU 160/200 = 0.8 (mask
    #   and box) -> 2 TP: precision 1 at every recall point. AP 1, recall 1.
    # dog: 1 GT (img1). Detections by score: img2 "dog" 0.95 (the cow, no
    #   dog there: FP), img1 dog 0.9 (TP) -> precision 0, 1/2 at recall
    #   0, 1 -> 1/2 at every recall point. AP 0.5, recall 1.
    # kite: 1 GT, detected. AP 1, recall 1.
    # cow (unseen): 2 GT (img2, img3); only img3 detected -> recall 1/2
    #   at precision 1: the 51 points 0 ... 0.50 read 1, the rest 0.
    #   AP 51/101, recall 0.5.
    seen_ap = 100 * (1 + 0.5 + 1) / 3
    unseen_ap = 100 * 51 / 101
    seen_recall, unseen_recall = 100.0, 50.0
    for iou_type in ('segm', 'bbox'):
        assert results[f'{iou_type}_mAP50_seen'] == pytest.approx(seen_ap)
        assert results[f'{iou_type}_mAP50_unseen'] == pytest.approx(
            unseen_ap)
        assert results[f'{iou_type}_mAP50_hm'] == pytest.approx(
            hm(seen_ap, unseen_ap))
        assert results[f'{iou_type}_mAP50'] == pytest.approx(
            100 * (1 + 0.5 + 51 / 101 + 1) / 4)
        assert results[f'{iou_type}_R100_seen'] == pytest.approx(seen_recall)
        assert results[f'{iou_type}_R100_unseen'] == pytest.approx(
            unseen_recall)
        assert results[f'{iou_type}_R100_hm'] == pytest.approx(
            hm(seen_recall, unseen_recall))
        assert results[f'{iou_type}_R100'] == pytest.approx(
            100 * (1 + 1 + 0.5 + 1) / 4)


def test_all_classes_match_upstream_when_every_class_has_gt(tiny_coco):
    samples = samples_of(HAND_WORKED_PREDICTIONS, HAND_WORKED_SCORES)
    ours = make_metric(tiny_coco, metric='bbox')
    upstream = CocoMetric(ann_file=tiny_coco.instance_json, metric='bbox')
    upstream.dataset_meta = dict(classes=THING_CLASSES)
    for metric in (ours, upstream):
        metric.process({}, samples)
    ours_results = ours.evaluate(len(samples))
    upstream_results = upstream.evaluate(len(samples))
    # Upstream reports fractions rounded to 3 decimals.
    assert ours_results[PREFIX + 'bbox_mAP50'] / 100 == pytest.approx(
        upstream_results['coco/bbox_mAP_50'], abs=1e-3)
    assert 'segm_mAP50' not in {key[len(PREFIX):] for key in ours_results}


def test_class_without_gt_is_left_out_and_listed(tiny_coco):
    # Only images 1 and 3 are evaluated: they hold no kite, and a kite is
    # detected in image 1's sky. The annotation file's image 2 (a cow and a
    # kite) is not evaluated, so its cow is not a miss.
    scenes = {1: GT_SCENES[1] + [('kite', (2, 6, 2, 10))], 3: GT_SCENES[3]}
    metric = make_metric(tiny_coco, classwise=True)
    results = evaluate(metric, scenes)
    assert metric.classes_without_gt == dict(seen=['kite'], unseen=[],
                                             other=[])
    for iou_type in ('segm', 'bbox'):
        # Seen = person, dog (exact); unseen = cow (img3, exact).
        for name in KEYS:
            assert results[f'{iou_type}_{name}_seen'] == pytest.approx(100)
            assert results[f'{iou_type}_{name}_unseen'] == pytest.approx(100)
            assert results[f'{iou_type}_{name}'] == pytest.approx(100)
        assert f'{iou_type}_mAP50/kite' not in results
        assert results[f'{iou_type}_mAP50/dog'] == pytest.approx(100)


def test_no_detection_at_all_scores_0(tiny_coco):
    metric = make_metric(tiny_coco)
    results = evaluate(metric, {image_id: [] for image_id in GT_SCENES})
    assert results['segm_mAP50_seen'] == 0
    assert results['bbox_R100_unseen'] == 0
    assert results['bbox_mAP50_hm'] == 0


def test_segm_needs_masks(tiny_coco):
    metric = make_metric(tiny_coco)
    sample = instance_sample(1, GT_SCENES[1])
    del sample['pred_instances']['masks']
    with pytest.raises(ValueError, match="metric='bbox'"):
        metric.process({}, [sample])
    boxes_only = make_metric(tiny_coco, metric='bbox')
    boxes_only.process({}, [sample])
    assert boxes_only.evaluate(1)[PREFIX + 'bbox_mAP50_seen'] == \
        pytest.approx(100)


def test_unsupported_iou_type():
    with pytest.raises(ValueError, match='proposal'):
        GZSLInstanceMetric(unseen_classes=['cow'], metric='proposal')


def test_panoptic_classes_evaluate_things_only(tiny_coco):
    """A panoptic data set's meta (things, then stuff) against the instance
    file: the stuff classes are not evaluated and not counted as classes
    without ground truth, and the thing scores are unchanged."""
    metric = make_metric(tiny_coco)
    metric.dataset_meta = dict(classes=THING_CLASSES + STUFF_CLASSES)
    results = evaluate(metric, GT_SCENES)
    assert results['segm_mAP50_hm'] == pytest.approx(100)
    assert results['bbox_R100_seen'] == pytest.approx(100)
    assert metric.classes_without_gt == dict(seen=[], unseen=[], other=[])


def test_stuff_before_things_is_refused(tiny_coco):
    metric = make_metric(tiny_coco)
    metric.dataset_meta = dict(classes=STUFF_CLASSES + THING_CLASSES)
    with pytest.raises(ValueError, match='not categories of ann_file'):
        evaluate(metric, GT_SCENES)
