"""GZSLSemSegMetric with mmseg and mmdet data samples."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.structures import SegDataSample
from tiny_coco_data import CLASSES, GT_SCENES, UNSEEN, semantic_map

from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.evaluation import GZSLSemSegMetric

PREFIX = 'gzsl_semseg/'

# Image 2: the unseen cow (240 px) is predicted as the seen dog.
# Image 3: the person's 2 right-most columns (40 px) are predicted grass.
HAND_WORKED_PREDICTIONS = {
    1: GT_SCENES[1],
    2: [('sky', (0, 16, 0, 48)), ('grass', (16, 32, 0, 48)),
        ('dog', (18, 30, 10, 30)), ('kite', (2, 8, 30, 38))],
    3: [('grass', (0, 32, 0, 48)), ('cow', (4, 20, 4, 20)),
        ('person', (8, 28, 30, 38))],
}


def hm(seen, unseen):
    return 2 * seen * unseen / (seen + unseen)


def as_tensor(scene):
    return torch.from_numpy(semantic_map(scene))[None]


def mmseg_sample(image_id, scene):
    return dict(img_path=f'img{image_id}.jpg',
                pred_sem_seg=dict(data=as_tensor(scene)),
                gt_sem_seg=dict(data=as_tensor(GT_SCENES[image_id])))


def mmdet_sample(image_id, scene):
    # mmdet's PixelData field is `sem_seg`; the panoptic pipeline's semantic
    # ground truth is uint8 with 255 for VOID.
    return dict(img_path=f'img{image_id}.jpg',
                pred_sem_seg=dict(sem_seg=as_tensor(scene)),
                gt_sem_seg=dict(
                    sem_seg=as_tensor(GT_SCENES[image_id]).to(torch.uint8)))


SAMPLE_STYLES = {'mmseg': mmseg_sample, 'mmdet': mmdet_sample}


def make_metric(**kwargs):
    kwargs.setdefault('unseen_classes', list(UNSEEN))
    metric = GZSLSemSegMetric(**kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def evaluate(metric, scenes, style='mmseg'):
    samples = [
        SAMPLE_STYLES[style](image_id, scene)
        for image_id, scene in scenes.items()
    ]
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert all(key.startswith(PREFIX) for key in results)
    return {key[len(PREFIX):]: value for key, value in results.items()}


@pytest.mark.parametrize('style', list(SAMPLE_STYLES))
def test_ground_truth_as_prediction_scores_100(style):
    metric = make_metric()
    results = evaluate(metric, GT_SCENES, style)
    for key in ('mIoU_seen', 'mIoU_unseen', 'mIoU_hm', 'mIoU', 'aAcc'):
        assert results[key] == pytest.approx(100), key
    assert metric.classes_without_gt == dict(seen=[], unseen=[], other=[])


@pytest.mark.parametrize('style', list(SAMPLE_STYLES))
def test_unseen_object_predicted_as_seen_class(style):
    results = evaluate(make_metric(), HAND_WORKED_PREDICTIONS, style)
    # IoU per class over the three images (VOID pixels of image 3 are not
    # scored), intersection / union in pixels:
    # person: GT 128 + 200, predicted 128 + 160 inside it -> 288 / 328.
    # dog: GT 128, predicted 128 + 240 (the cow) -> 128 / 368.
    # kite: 48 / 48.
    # grass: GT 704 + 528 + 984 = 2216, predicted 2216 + 40 -> 2216 / 2256.
    # cow (unseen): GT 240 + 256, predicted 256 inside it -> 256 / 496.
    # sky (unseen): 1296 / 1296.
    seen = 100 * (288 / 328 + 128 / 368 + 1 + 2216 / 2256) / 4
    unseen = 100 * (256 / 496 + 1) / 2
    assert results['mIoU_seen'] == pytest.approx(seen)
    assert results['mIoU_unseen'] == pytest.approx(unseen)
    assert results['mIoU_hm'] == pytest.approx(hm(seen, unseen))
    assert results['mIoU'] == pytest.approx((4 * seen + 2 * unseen) / 6)
    # Pixel accuracy: 3 x 1536 - 96 VOID = 4512 scored, 240 + 40 wrong.
    assert results['aAcc'] == pytest.approx(100 * (4512 - 280) / 4512)


def test_the_data_sets_split_scores_as_the_same_split_given():
    """The split read from dataset_meta (as a zero-shot data set sets it)
    gives the figures of the same split given to the metric."""
    from_meta = GZSLSemSegMetric()
    from_meta.dataset_meta = dict(
        classes=CLASSES, zero_shot_split='tiny', unseen_classes=UNSEEN,
        seen_classes=tuple(c for c in CLASSES if c not in UNSEEN))
    assert evaluate(from_meta, HAND_WORKED_PREDICTIONS) == evaluate(
        make_metric(), HAND_WORKED_PREDICTIONS)


def test_all_classes_match_upstream_when_every_class_has_gt():
    samples = [
        mmseg_sample(image_id, scene)
        for image_id, scene in HAND_WORKED_PREDICTIONS.items()
    ]
    ours = make_metric()
    upstream = IoUMetric()
    upstream.dataset_meta = dict(classes=CLASSES)
    for metric in (ours, upstream):
        metric.process({}, samples)
    ours_results = ours.evaluate(len(samples))
    upstream_results = upstream.evaluate(len(samples))
    # mmseg rounds to 2 decimals.
    assert ours_results[PREFIX + 'mIoU'] == pytest.approx(
        upstream_results['mIoU'], abs=0.006)


def test_class_without_gt_is_left_out_and_listed():
    # Images 1 and 3 hold no kite; 32 px of image 1's sky are predicted
    # kite. mmseg would average kite in with IoU 0; here it is left out.
    scenes = {1: GT_SCENES[1] + [('kite', (2, 6, 2, 10))], 3: GT_SCENES[3]}
    metric = make_metric(classwise=True)
    results = evaluate(metric, scenes)
    assert metric.classes_without_gt == dict(seen=['kite'], unseen=[],
                                             other=[])
    sky = 100 * 544 / 576
    assert results['mIoU_seen'] == pytest.approx(100)  # person, dog, grass
    assert results['mIoU_unseen'] == pytest.approx((100 + sky) / 2)
    assert results['IoU/sky'] == pytest.approx(sky)
    assert 'IoU/kite' not in results


def test_evaluator_prefixes_keys_and_takes_data_elements():
    metric = make_metric(unseen_classes=None,
                         zero_shot_split=dict(seen=CLASSES[:4],
                                              unseen=CLASSES[4:]))
    evaluator = Evaluator([metric])
    evaluator.dataset_meta = dict(classes=CLASSES)
    mmseg = SegDataSample(
        pred_sem_seg=PixelData(data=as_tensor(GT_SCENES[1])),
        gt_sem_seg=PixelData(data=as_tensor(GT_SCENES[1])))
    mmdet = DetDataSample(
        pred_sem_seg=PixelData(sem_seg=as_tensor(GT_SCENES[2])),
        gt_sem_seg=PixelData(sem_seg=as_tensor(GT_SCENES[2])))
    evaluator.process([mmseg, mmdet])
    results = evaluator.evaluate(2)
    assert results['gzsl_semseg/mIoU_hm'] == pytest.approx(100)
    assert set(results) >= {
        'gzsl_semseg/mIoU_seen', 'gzsl_semseg/mIoU_unseen', 'gzsl_semseg/mIoU'
    }


def test_split_file(tmp_path):
    path = str(tmp_path / 'tiny_split.json')
    save_split(ZeroShotSplit('tiny', seen=CLASSES[:4], unseen=CLASSES[4:]),
               path)
    metric = make_metric(unseen_classes=None, zero_shot_split=path)
    groups = metric.class_groups()
    assert groups.split_name == 'tiny'
    assert groups.unseen == (4, 5)


def test_score_maps_are_rejected():
    metric = make_metric()
    sample = mmseg_sample(1, GT_SCENES[1])
    sample['pred_sem_seg'] = dict(data=torch.rand(len(CLASSES), 32, 48))
    with pytest.raises(ValueError, match='argmax'):
        metric.process({}, [sample])
