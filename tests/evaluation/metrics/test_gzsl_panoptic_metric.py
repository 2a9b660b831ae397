"""GZSLPanopticMetric on the tiny COCO panoptic data set."""
import pytest
from mmdet.evaluation import CocoPanopticMetric
from tiny_coco_data import (
    CLASSES,
    GT_SCENES,
    STUFF_CLASSES,
    THING_CLASSES,
    UNSEEN,
    panoptic_sample,
)

from mmpading.evaluation import GZSLPanopticMetric

PREFIX = 'gzsl_panoptic/'

# Image 2: the unseen cow is predicted as a (seen) dog, mask exact.
# Image 3: the person box loses its 2 right-most columns (rows 8-27,
# cols 38-39 = 40 px) to grass.
HAND_WORKED_PREDICTIONS = {
    1: GT_SCENES[1],
    2: [('sky', (0, 16, 0, 48)), ('grass', (16, 32, 0, 48)),
        ('dog', (18, 30, 10, 30)), ('kite', (2, 8, 30, 38))],
    3: [('grass', (0, 32, 0, 48)), ('cow', (4, 20, 4, 20)),
        ('person', (8, 28, 30, 38)), (None, (30, 32, 0, 48))],
}


def hm(seen, unseen):
    return 2 * seen * unseen / (seen + unseen)


def set_meta(metric):
    metric.dataset_meta = dict(classes=CLASSES, thing_classes=THING_CLASSES,
                               stuff_classes=STUFF_CLASSES)
    return metric


def make_metric(tiny_coco, with_ann_file=True, **kwargs):
    kwargs.setdefault('unseen_classes', list(UNSEEN))
    return set_meta(GZSLPanopticMetric(
        ann_file=tiny_coco.panoptic_json if with_ann_file else None,
        seg_prefix=tiny_coco.panoptic_dir, **kwargs))


def evaluate(metric, tiny_coco, scenes):
    samples = [
        panoptic_sample(tiny_coco, image_id, scene)
        for image_id, scene in scenes.items()
    ]
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert all(key.startswith(PREFIX) for key in results)
    return {key[len(PREFIX):]: value for key, value in results.items()}


@pytest.mark.parametrize('with_ann_file', [True, False])
def test_ground_truth_as_prediction_scores_100(tiny_coco, with_ann_file):
    metric = make_metric(tiny_coco, with_ann_file)
    results = evaluate(metric, tiny_coco, GT_SCENES)
    for name in ('PQ', 'SQ', 'RQ'):
        for suffix in ('_seen', '_unseen', '_hm', '', '_th', '_st'):
            assert results[name + suffix] == pytest.approx(100), \
                name + suffix
    assert metric.classes_without_gt == dict(seen=[], unseen=[], other=[])


@pytest.mark.parametrize('with_ann_file', [True, False])
def test_unseen_object_predicted_as_seen_class(tiny_coco, with_ann_file):
    metric = make_metric(tiny_coco, with_ann_file)
    results = evaluate(metric, tiny_coco, HAND_WORKED_PREDICTIONS)
    # Per class (a match is IoU > 0.5 with the same class;
    # PQ = sum IoU / (TP + FP/2 + FN/2), SQ = sum IoU / TP,
    # RQ = TP / (TP + FP/2 + FN/2)):
    # person: img1 exact (IoU 1); img3 GT 20x10 = 200 px, predicted 20x8 =
    #   160 px inside it -> IoU 0.8. TP 2, FP 0, FN 0.
    person = dict(PQ=1.8 / 2, SQ=1.8 / 2, RQ=1.0)
    # dog: img1 exact; img2 the cow mask labelled dog has no dog to match ->
    #   FP. TP 1, FP 1, FN 0.
    dog = dict(PQ=1 / 1.5, SQ=1.0, RQ=1 / 1.5)
    # kite: img2 exact.
    kite = dict(PQ=1.0, SQ=1.0, RQ=1.0)
    # grass: img1, img2 exact; img3 GT = 1536 - 256 (cow) - 200 (person)
    #   - 96 (VOID) = 984 px, predicted 984 + 40 = 1024 px containing it ->
    #   IoU 984 / 1024. TP 3.
    grass_iou = 2 + 984 / 1024
    grass = dict(PQ=grass_iou / 3, SQ=grass_iou / 3, RQ=1.0)
    # cow (unseen): img2 missed (predicted as dog) -> FN; img3 exact.
    #   TP 1, FP 0, FN 1.
    cow = dict(PQ=1 / 1.5, SQ=1.0, RQ=1 / 1.5)
    # sky (unseen): img1, img2 exact.
    sky = dict(PQ=1.0, SQ=1.0, RQ=1.0)

    def mean(*classes, key):
        return 100 * sum(c[key] for c in classes) / len(classes)

    for key in ('PQ', 'SQ', 'RQ'):
        seen = mean(person, dog, kite, grass, key=key)
        unseen = mean(cow, sky, key=key)
        assert results[f'{key}_seen'] == pytest.approx(seen)
        assert results[f'{key}_unseen'] == pytest.approx(unseen)
        assert results[f'{key}_hm'] == pytest.approx(hm(seen, unseen))
        assert results[key] == pytest.approx(
            mean(person, dog, cow, kite, grass, sky, key=key))
        assert results[f'{key}_th'] == pytest.approx(
            mean(person, dog, cow, kite, key=key))
        assert results[f'{key}_st'] == pytest.approx(
            mean(grass, sky, key=key))
    # Spelled out once: PQ seen = (0.9 + 0.667 + 1 + 0.987) / 4.
    assert results['PQ_seen'] == pytest.approx(88.84, abs=0.01)
    assert results['PQ_unseen'] == pytest.approx(83.33, abs=0.01)


def test_all_classes_match_upstream_when_every_class_has_gt(tiny_coco):
    samples = [
        panoptic_sample(tiny_coco, image_id, scene)
        for image_id, scene in HAND_WORKED_PREDICTIONS.items()
    ]
    ours = make_metric(tiny_coco)
    upstream = set_meta(CocoPanopticMetric(
        ann_file=tiny_coco.panoptic_json, seg_prefix=tiny_coco.panoptic_dir))
    for metric in (ours, upstream):
        metric.process({}, samples)
    ours_results = ours.evaluate(len(samples))
    upstream_results = upstream.evaluate(len(samples))
    for key in ('PQ', 'SQ', 'RQ', 'PQ_th', 'PQ_st'):
        assert ours_results[PREFIX + key] == pytest.approx(
            upstream_results[f'coco_panoptic/{key}'])


def test_class_without_gt_is_left_out_and_listed(tiny_coco):
    # Images 1 and 3 hold no kite. A kite segment is predicted in image 1's
    # sky (rows 2-5, cols 2-9 = 32 px): kite has TP 0, FP 1, FN 0.
    # panopticapi would average kite in with PQ 0; here it is left out.
    scenes = {1: GT_SCENES[1] + [('kite', (2, 6, 2, 10))], 3: GT_SCENES[3]}
    metric = make_metric(tiny_coco, classwise=True)
    results = evaluate(metric, tiny_coco, scenes)
    assert metric.classes_without_gt == dict(seen=['kite'], unseen=[],
                                             other=[])
    # Seen: person, dog, grass, all exact.
    assert results['PQ_seen'] == pytest.approx(100)
    # Unseen: cow exact; sky GT 576 px, predicted 576 - 32 = 544 inside it.
    sky = 100 * 544 / 576
    assert results['PQ_unseen'] == pytest.approx((100 + sky) / 2)
    assert results['PQ'] == pytest.approx((4 * 100 + sky) / 5)
    assert results['PQ_th'] == pytest.approx(100)
    assert 'PQ/kite' not in results
    assert results['PQ/sky'] == pytest.approx(sky)
    assert results['PQ/person'] == pytest.approx(100)


def test_group_without_gt_is_nan(tiny_coco):
    # Image 1 holds no cow: the unseen group keeps only sky. Without sky as
    # well (unseen = cow only) the group has no class to average.
    metric = make_metric(tiny_coco, unseen_classes=['cow'])
    results = evaluate(metric, tiny_coco, {1: GT_SCENES[1]})
    assert results['PQ_seen'] == pytest.approx(100)
    assert results['PQ_unseen'] != results['PQ_unseen']  # NaN
    assert results['PQ_hm'] != results['PQ_hm']
    assert metric.classes_without_gt['unseen'] == ['cow']


def test_split_dict_and_split_name(tiny_coco):
    metric = make_metric(
        tiny_coco, unseen_classes=None,
        zero_shot_split=dict(seen=['person', 'dog', 'kite', 'grass'],
                             unseen=['cow', 'sky']))
    results = evaluate(metric, tiny_coco, HAND_WORKED_PREDICTIONS)
    reference = evaluate(make_metric(tiny_coco), tiny_coco,
                         HAND_WORKED_PREDICTIONS)
    assert results == pytest.approx(reference)

    coco_split = make_metric(tiny_coco, unseen_classes=None,
                             zero_shot_split='zsp_coco')
    with pytest.raises(ValueError, match='sky-other-merged'):
        coco_split.process({}, [])


def test_class_order_must_match_ann_file(tiny_coco):
    metric = make_metric(tiny_coco)
    metric.dataset_meta = dict(classes=CLASSES[::-1],
                               thing_classes=THING_CLASSES,
                               stuff_classes=STUFF_CLASSES)
    with pytest.raises(ValueError, match='order'):
        metric.process({}, [])


def test_seg_prefix_is_required(tiny_coco):
    with pytest.raises(ValueError, match='seg_prefix'):
        GZSLPanopticMetric(unseen_classes=['cow'],
                           ann_file=tiny_coco.panoptic_json)
