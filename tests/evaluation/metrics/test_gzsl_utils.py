"""Harmonic mean, seen / unseen groups, split resolution and the checks
of the metrics' annotation files."""
import json
import math

import numpy as np
import pytest
from mmdet.datasets import CocoDataset
from mmdet.registry import METRICS as MMDET_METRICS
from mmengine.registry import DefaultScope
from mmseg.datasets import COCOStuffDataset
from mmseg.registry import METRICS as MMSEG_METRICS
from tiny_coco_data import CLASSES, THING_CLASSES

from mmpading.datasets.file_checks import DataFileError
from mmpading.datasets.splits import ZSS_UNSEEN
from mmpading.evaluation import (
    GZSLInstanceMetric,
    GZSLPanopticMetric,
    GZSLSemSegMetric,
    SeenUnseenSpec,
    harmonic_mean,
)
from mmpading.evaluation.metrics.gzsl_utils import (
    ClassGroups,
    describe_classes_without_gt,
    flatten_summary,
    format_summary_table,
    summarize_groups,
)


@pytest.mark.parametrize('seen,unseen,expected', [
    (0.0, 0.0, 0.0),
    (50.0, 0.0, 0.0),
    (0.0, 50.0, 0.0),
    (80.0, 80.0, 80.0),
    (60.0, 30.0, 40.0),  # 2 * 60 * 30 / 90
    (41.5, 15.3, 2 * 41.5 * 15.3 / 56.8),
])
def test_harmonic_mean(seen, unseen, expected):
    assert harmonic_mean(seen, unseen) == pytest.approx(expected)
    assert harmonic_mean(unseen, seen) == pytest.approx(expected)


def test_harmonic_mean_nan_and_negative():
    assert math.isnan(harmonic_mean(math.nan, 10.0))
    assert math.isnan(harmonic_mean(10.0, math.nan))
    with pytest.raises(ValueError, match='non-negative'):
        harmonic_mean(-1.0, 10.0)


def test_summary_leaves_out_classes_without_gt():
    groups = ClassGroups('t', ('a', 'b', 'c', 'd'), seen=(0, 1, 2),
                         unseen=(3, ))
    per_class = {'X': np.array([90.0, 0.0, 30.0, 20.0])}
    has_gt = np.array([True, False, True, True])
    summary, counts = summarize_groups(per_class, has_gt, groups)
    assert summary['seen']['X'] == pytest.approx(60.0)  # (90 + 30) / 2
    assert summary['unseen']['X'] == pytest.approx(20.0)
    assert summary['hm']['X'] == pytest.approx(2 * 60 * 20 / 80)
    assert summary['all']['X'] == pytest.approx(140 / 3)
    assert counts['seen'] == (2, 3)
    assert flatten_summary(summary) == pytest.approx(
        dict(X_seen=60.0, X_unseen=20.0, X_hm=30.0, X=140 / 3))
    table = format_summary_table(summary, counts, ['X'])
    assert 'HM' in table and '30.00' in table and '2/3' in table


def test_summary_of_a_group_without_gt_is_nan():
    groups = ClassGroups('t', ('a', 'b'), seen=(0, ), unseen=(1, ))
    summary, counts = summarize_groups({'X': np.array([50.0, 0.0])},
                                       np.array([True, False]), groups)
    assert math.isnan(summary['unseen']['X'])
    assert math.isnan(summary['hm']['X'])
    assert counts['unseen'] == (0, 1)


def test_classes_without_gt_are_described():
    text = describe_classes_without_gt(
        dict(seen=['kite'], unseen=[], other=[]),
        {'kite': '2 false positive segment(s)'})
    assert 'kite (2 false positive segment(s))' in text
    assert 'unseen' not in text


def test_unseen_classes_form():
    groups = SeenUnseenSpec(unseen_classes=['cow', 'sky']).resolve(CLASSES)
    assert groups.seen == (0, 1, 3, 4)
    assert groups.unseen == (2, 5)
    assert groups.other == ()


def test_dict_form_may_leave_classes_outside():
    spec = SeenUnseenSpec(dict(seen=['person', 'dog'], unseen=['cow']))
    groups = spec.resolve(CLASSES)
    assert [CLASSES[i] for i in groups.other] == ['kite', 'grass', 'sky']


def test_registered_split_name():
    classes = COCOStuffDataset.METAINFO['classes']
    groups = SeenUnseenSpec('zss_cocostuff').resolve(classes)
    assert len(groups.seen) == 156
    assert {classes[i] for i in groups.unseen} == set(ZSS_UNSEEN)


def test_data_set_may_hold_a_part_of_a_registered_split():
    # The 80 thing classes of COCO evaluated with the panoptic split.
    classes = CocoDataset.METAINFO['classes']
    groups = SeenUnseenSpec('zsp_coco').resolve(classes)
    assert {classes[i] for i in groups.unseen} == {
        'cow', 'giraffe', 'suitcase', 'frisbee', 'skateboard', 'carrot',
        'scissors'
    }
    assert len(groups.seen) == 73


def test_data_set_without_unseen_class_is_an_error():
    spec = SeenUnseenSpec(dict(seen=['person', 'dog'], unseen=['cow']))
    with pytest.raises(ValueError, match='none of the unseen classes'):
        spec.resolve(('person', 'dog'))


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(zero_shot_split='toy', unseen_classes=['cow']), ValueError,
     'got both'),
    (dict(unseen_classes='cow'), TypeError, r"\['cow'\]"),
    (dict(unseen_classes=[]), ValueError, 'empty'),
    (dict(zero_shot_split=dict(seen=['dog'])), ValueError, 'unseen'),
    (dict(zero_shot_split=dict(seen=['dog'], unseen=['dog'])), ValueError,
     'both seen and unseen'),
    (dict(zero_shot_split=dict(seen=[], unseen=['dog'])), ValueError,
     "'custom' has no seen class"),
    (dict(zero_shot_split=dict(seen=['dog'], unseen=[])), ValueError,
     "'custom' has no unseen class"),
    (dict(zero_shot_split='zsp_cocoo'), ValueError, 'zsp_coco'),
])
def test_bad_split_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SeenUnseenSpec(**kwargs)


METRIC_FACTORIES = {
    'panoptic': lambda tiny_coco, **kwargs: GZSLPanopticMetric(
        ann_file=tiny_coco.panoptic_json, seg_prefix=tiny_coco.panoptic_dir,
        **kwargs),
    'instance': lambda tiny_coco, **kwargs: GZSLInstanceMetric(
        ann_file=tiny_coco.instance_json, **kwargs),
    'semseg': lambda tiny_coco, **kwargs: GZSLSemSegMetric(**kwargs),
}


@pytest.mark.parametrize('kind', list(METRIC_FACTORIES))
@pytest.mark.parametrize('split', [
    dict(unseen_classes=['cow', 'zebra']),
    dict(zero_shot_split=dict(seen=['person', 'zebra'], unseen=['cow'])),
])
def test_unknown_class_name_fails_on_the_first_batch(tiny_coco, kind, split):
    metric = METRIC_FACTORIES[kind](tiny_coco, **split)
    classes = THING_CLASSES if kind == 'instance' else CLASSES
    metric.dataset_meta = dict(classes=classes, thing_classes=THING_CLASSES)
    with pytest.raises(ValueError, match="'zebra'") as error:
        metric.process({}, [])
    assert type(metric).__name__ in str(error.value)


# ------------------------------------------ the split from dataset_meta
SPLIT_META = dict(classes=CLASSES, thing_classes=THING_CLASSES,
                  zero_shot_split='tiny',
                  seen_classes=('person', 'dog', 'kite', 'grass'),
                  unseen_classes=('cow', 'sky'))


def instance_meta(meta):
    """The instance metric evaluates the thing classes; a zero-shot data
    set lists the seen / unseen classes among its own classes."""
    return dict(meta, classes=THING_CLASSES,
                seen_classes=('person', 'dog', 'kite'),
                unseen_classes=('cow', ))


@pytest.mark.parametrize('kind', list(METRIC_FACTORIES))
def test_without_a_split_the_metric_reads_the_data_sets(tiny_coco, kind):
    meta = instance_meta(SPLIT_META) if kind == 'instance' else SPLIT_META
    from_meta = METRIC_FACTORIES[kind](tiny_coco)
    from_meta.dataset_meta = meta
    given = METRIC_FACTORIES[kind](tiny_coco, unseen_classes=['cow', 'sky']
                                   if kind != 'instance' else ['cow'])
    given.dataset_meta = dict(classes=meta['classes'],
                              thing_classes=THING_CLASSES)
    groups = from_meta.class_groups()
    assert groups.split_name == 'tiny'
    assert (groups.seen, groups.unseen) == (given.class_groups().seen,
                                            given.class_groups().unseen)
    assert [meta['classes'][i] for i in groups.unseen] == list(
        meta['unseen_classes'])


def test_a_given_split_overrides_the_data_sets():
    metric = GZSLSemSegMetric(unseen_classes=['kite'])
    metric.dataset_meta = SPLIT_META
    groups = metric.class_groups()
    assert [CLASSES[i] for i in groups.unseen] == ['kite']


def test_the_split_follows_a_new_dataset_meta():
    metric = GZSLSemSegMetric()
    metric.dataset_meta = SPLIT_META
    assert metric.class_groups().unseen == (2, 5)
    metric.dataset_meta = dict(SPLIT_META, seen_classes=(
        'person', 'dog', 'cow', 'grass'), unseen_classes=('kite', 'sky'))
    assert metric.class_groups().unseen == (3, 5)


@pytest.mark.parametrize('kind', list(METRIC_FACTORIES))
def test_no_split_anywhere_fails_on_the_first_batch(tiny_coco, kind):
    metric = METRIC_FACTORIES[kind](tiny_coco)
    classes = THING_CLASSES if kind == 'instance' else CLASSES
    metric.dataset_meta = dict(classes=classes, thing_classes=THING_CLASSES)
    with pytest.raises(ValueError, match='has no split') as error:
        metric.process({}, [])
    message = str(error.value)
    assert type(metric).__name__ in message
    assert 'seen_classes / unseen_classes' in message
    assert "zero_shot_split='...'" in message


def test_missing_dataset_meta_is_explained():
    metric = GZSLSemSegMetric(unseen_classes=['cow'])
    with pytest.raises(ValueError, match='dataset_meta'):
        metric.process({}, [])


@pytest.mark.parametrize('scope,registry', [('mmdet', MMDET_METRICS),
                                            ('mmseg', MMSEG_METRICS)])
def test_built_by_name_in_both_scopes(scope, registry):
    with DefaultScope.overwrite_default_scope(scope):
        metric = registry.build(
            dict(type='GZSLSemSegMetric', unseen_classes=['cow']))
    assert isinstance(metric, GZSLSemSegMetric)
    assert metric.prefix == 'gzsl_semseg'


ANN_FILE_METRICS = {
    'panoptic': lambda tiny_coco, ann_file: GZSLPanopticMetric(
        ann_file=ann_file, seg_prefix=tiny_coco.panoptic_dir,
        unseen_classes=['cow']),
    'instance': lambda tiny_coco, ann_file: GZSLInstanceMetric(
        ann_file=ann_file, unseen_classes=['cow']),
}


def _json_file(tiny_coco, kind):
    return (tiny_coco.panoptic_json if kind == 'panoptic' else
            tiny_coco.instance_json)


@pytest.mark.parametrize('kind', list(ANN_FILE_METRICS))
@pytest.mark.parametrize('content, expected', [
    (b'', 'is empty'),
    (None, 'is not valid JSON'),  # truncated
    (b'{"images": [], "categories": []}', "lacks 'annotations'"),
    (b'"annotations"', 'does not hold a JSON object'),
])
def test_bad_metric_ann_file_is_named(tiny_coco, tmp_path, kind, content,
                                      expected):
    path = tmp_path / 'ann.json'
    if content is None:
        original = open(_json_file(tiny_coco, kind), 'rb').read()
        content = original[:len(original) // 2]
    path.write_bytes(content)
    with pytest.raises(DataFileError) as error:
        ANN_FILE_METRICS[kind](tiny_coco, str(path))
    message = str(error.value)
    owner = type(ANN_FILE_METRICS[kind](tiny_coco, None)).__name__
    assert message.startswith(f'{owner} annotation file {str(path)!r} ')
    assert expected in message and 're-download' in message


@pytest.mark.parametrize('kind', list(ANN_FILE_METRICS))
def test_missing_metric_ann_file_is_named(tiny_coco, tmp_path, kind):
    path = tmp_path / 'nowhere.json'
    with pytest.raises(FileNotFoundError) as error:
        ANN_FILE_METRICS[kind](tiny_coco, str(path))
    message = str(error.value)
    assert repr(str(path)) in message and '(ann_file)' in message
    assert 'not joined with data_root' in message


def test_instances_file_for_the_panoptic_metric_is_named(tiny_coco):
    with pytest.raises(DataFileError, match='segments_info'):
        ANN_FILE_METRICS['panoptic'](tiny_coco, tiny_coco.instance_json)


def test_missing_seg_prefix_folder_is_named(tiny_coco, tmp_path):
    with pytest.raises(FileNotFoundError, match="seg_prefix '.*nowhere/' "
                       'is not a folder'):
        GZSLPanopticMetric(ann_file=tiny_coco.panoptic_json,
                           seg_prefix=str(tmp_path / 'nowhere') + '/',
                           unseen_classes=['cow'])


def test_format_only_metric_needs_no_annotations(tiny_coco, tmp_path):
    """A test-dev style file (images and categories) for format_only."""
    content = json.loads(open(tiny_coco.instance_json).read())
    del content['annotations']
    path = tmp_path / 'test_dev.json'
    path.write_text(json.dumps(content))
    metric = GZSLInstanceMetric(ann_file=str(path), unseen_classes=['cow'],
                                format_only=True,
                                outfile_prefix=str(tmp_path / 'out'))
    assert metric._coco_api is not None
