"""What the zero-shot data sets refuse, and how they name it.

Training role (mode 'all' with test_mode=False), broken sample files
(truncated panoptic / label PNG, corrupt image), broken annotation files
(missing, empty, truncated, incomplete JSON), bad metainfo files.
"""
import json
import logging
import shutil
from pathlib import Path

import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from mmpading.datasets import (
    ZeroShotCocoDataset,
    ZeroShotCocoPanopticDataset,
    ZeroShotCOCOStuffDataset,
)
from mmpading.datasets.file_checks import DataFileError
from mmpading.registry import DATASETS
from mmpading.utils.config_utils import toy_config


@pytest.fixture
def toy_copy(toy_root, tmp_path):
    """A copy of the tiny toy set that a test may break."""
    root = tmp_path / 'toy'
    shutil.copytree(toy_root, root)
    return root


@pytest.fixture
def warnings_logged():
    """Messages logged at WARNING or above by mmengine's current logger."""
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _panoptic(root, ann_file='annotations/panoptic_train.json', **kwargs):
    return ZeroShotCocoPanopticDataset(
        data_root=str(root), ann_file=ann_file,
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        metainfo='metainfo.json', **kwargs)


def _instances(root, ann_file='annotations/instances_train.json', **kwargs):
    things = json.loads((root / 'metainfo.json').read_text())['thing_classes']
    return ZeroShotCocoDataset(
        data_root=str(root), ann_file=ann_file,
        data_prefix=dict(img='train/'), metainfo=dict(classes=things),
        **kwargs)


def _stuff(root, **kwargs):
    return ZeroShotCOCOStuffDataset(
        data_root=str(root), metainfo='metainfo.json', img_suffix='.png',
        seg_map_suffix='.png',
        data_prefix=dict(img_path='train',
                         seg_map_path='annotations/semantic_train'),
        **kwargs)


BUILDERS = {'panoptic': _panoptic, 'instances': _instances, 'stuff': _stuff}


# ------------------------------------------------------------ training role
@pytest.mark.parametrize('kind', list(BUILDERS))
def test_mode_all_in_a_training_role_is_refused(toy_root, kind):
    with pytest.raises(ValueError) as error:
        BUILDERS[kind](toy_root, zero_shot_split='toy')
    message = str(error.value)
    for part in ('zero_shot_mode=', "'drop_unseen'", "'ignore_unseen'",
                 'test_mode=True', 'allow_unseen_in_training=True',
                 "split 'toy'"):
        assert part in message, part
    if kind == 'stuff':  # no ann_file: the folders are named
        assert f"data_root '{toy_root}'" in message
    else:
        assert str(toy_root / 'annotations' / f'{kind}_train.json') in \
            message


@pytest.mark.parametrize('kind', list(BUILDERS))
def test_seen_only_modes_and_evaluation_sets_are_accepted(toy_root, kind):
    build = BUILDERS[kind]
    dropped = build(toy_root, zero_shot_split='toy',
                    zero_shot_mode='drop_unseen')
    evaluation = build(toy_root, zero_shot_split='toy', test_mode=True)
    assert 0 < len(dropped) < len(evaluation)


def test_opt_out_trains_on_everything_and_says_so(toy_root, warnings_logged):
    everything = _panoptic(toy_root, zero_shot_split='toy',
                           allow_unseen_in_training=True)
    evaluation = _panoptic(toy_root, zero_shot_split='toy', test_mode=True)
    assert len(everything) == len(evaluation)
    warned = [m for m in warnings_logged
              if 'allow_unseen_in_training=True' in m]
    assert len(warned) == 1
    assert 'contains images with unseen classes' in warned[0]
    assert 'panoptic_train.json' in warned[0]


def test_no_split_is_a_plain_data_set(toy_root, warnings_logged):
    """Without a split nothing is zero-shot: upstream behaviour, no
    warning (a PADing config is checked by check_zero_shot_training_data).
    """
    plain = _panoptic(toy_root)
    assert len(plain) > 0 and not warnings_logged


# ------------------------------------------------------------ broken samples
def _toy_train_set(root, **options):
    """The toy stage-1 training set, real pipeline, on ``root``."""
    cfg = toy_config('pading_toy_stage1', str(root), **options)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(cfg.train_dataloader.dataset)


def _truncate(path, keep=0.5):
    content = path.read_bytes()
    path.write_bytes(content[:int(len(content) * keep)])


@pytest.mark.parametrize('key, role', [('seg_map_path', 'annotation'),
                                       ('img_path', 'image')])
def test_truncated_sample_file_is_named(toy_copy, key, role):
    dataset = _toy_train_set(toy_copy)
    info = dataset.get_data_info(1)
    broken = info[key]
    _truncate(Path(broken))
    assert dataset[0] is not None  # other samples still load
    with pytest.raises(DataFileError) as error:
        dataset[1]
    message = str(error.value)
    assert f'{role} file {broken!r}' in message
    # Both files of the sample, what failed inside, and the fix.
    assert info['img_path'] in message and info['seg_map_path'] in message
    assert 'The pipeline failed with' in message
    assert 're-extract' in message and 'make_toy_dataset.py' in message


def test_missing_image_is_named(toy_copy):
    dataset = _toy_train_set(toy_copy)
    info = dataset.get_data_info(0)
    Path(info['img_path']).unlink()
    with pytest.raises(DataFileError,
                       match=f"image file '{info['img_path']}' does not "
                       'exist'):
        dataset[0]


def test_truncated_label_map_is_named(toy_copy):
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = _stuff(toy_copy, zero_shot_split='toy',
                         zero_shot_mode='ignore_unseen',
                         pipeline=[dict(type='LoadImageFromFile'),
                                   dict(type='LoadAnnotations')])
        broken = dataset.get_data_info(2)['seg_map_path']
        _truncate(Path(broken), keep=0.3)
        with pytest.raises(DataFileError) as error:
            dataset[2]
    assert f'annotation file {broken!r}' in str(error.value)


def test_truncated_label_map_is_named_when_filtering(toy_copy):
    """drop_unseen reads every label map at start-up."""
    victim = sorted((toy_copy / 'annotations/semantic_train').glob('*.png'))[3]
    _truncate(victim, keep=0.3)
    with pytest.raises(DataFileError) as error:
        _stuff(toy_copy, zero_shot_split='toy', zero_shot_mode='drop_unseen')
    assert str(victim) in str(error.value)
    assert 're-extract' in str(error.value)


def test_pipeline_errors_of_sound_files_are_not_relabelled(toy_root):
    """A failing transform is not blamed on the (sound) files."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = _panoptic(
            toy_root, zero_shot_split='toy', zero_shot_mode='drop_unseen',
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='Resize', scale=(-1, -1))])
        with pytest.raises(Exception) as error:
            dataset[0]
    assert not isinstance(error.value, DataFileError)


# ------------------------------------------------------- annotation files
@pytest.mark.parametrize('kind', ['panoptic', 'instances'])
@pytest.mark.parametrize('content, expected', [
    (b'', 'is empty'),
    (None, 'is not valid JSON'),  # truncated
    (b'[1, 2]', 'does not hold a JSON object'),
    (b'{"categories": []}', "lacks 'images', 'annotations'"),
])
def test_bad_annotation_json_is_named(toy_copy, kind, content, expected):
    path = toy_copy / 'annotations' / f'{kind}_train.json'
    if content is None:
        _truncate(path)
    else:
        path.write_bytes(content)
    with pytest.raises(DataFileError) as error:
        BUILDERS[kind](toy_copy, zero_shot_split='toy',
                       zero_shot_mode='drop_unseen')
    message = str(error.value)
    assert repr(str(path)) in message and expected in message
    assert 're-download' in message and 'regenerate' in message


def test_instances_file_as_panoptic_file_is_named(toy_root):
    with pytest.raises(DataFileError) as error:
        _panoptic(toy_root, ann_file='annotations/instances_train.json',
                  zero_shot_split='toy', zero_shot_mode='drop_unseen')
    message = str(error.value)
    assert 'instances_train.json' in message and 'segments_info' in message


def test_evaluation_set_may_lack_annotations(toy_copy):
    """A test-dev style file (images, categories) is still evaluable."""
    path = toy_copy / 'annotations' / 'panoptic_val.json'
    content = json.loads(path.read_text())
    del content['annotations']
    path.write_text(json.dumps(content))
    dataset = _panoptic(toy_copy, ann_file='annotations/panoptic_val.json',
                        zero_shot_split='toy', test_mode=True)
    assert len(dataset) == len(content['images'])


@pytest.mark.parametrize('kind', list(BUILDERS))
def test_missing_ann_file_is_named(toy_root, kind):
    ann_file = ('annotations/seen.txt' if kind == 'stuff' else
                'annotations/missing.json')
    with pytest.raises(FileNotFoundError) as error:
        BUILDERS[kind](toy_root, ann_file=ann_file, zero_shot_split='toy',
                       zero_shot_mode='drop_unseen')
    message = str(error.value)
    assert repr(str(toy_root / ann_file)) in message
    assert '(ann_file)' in message
    assert 'prepare_zero_shot_coco.py' in message


def test_empty_image_list_is_named(toy_copy):
    (toy_copy / 'seen.txt').write_text('\n')
    with pytest.raises(DataFileError, match='seen.txt.*is empty'):
        _stuff(toy_copy, ann_file='seen.txt', zero_shot_split='toy',
               zero_shot_mode='ignore_unseen')


# ----------------------------------------------------------- metainfo files
@pytest.mark.parametrize('content, expected', [
    ('{"thing_classes": ["a"]}', 'must hold a JSON object with "classes"'),
    ('{"classes": ["a", ', 'is not valid JSON'),
    ('', 'is empty'),
])
def test_bad_metainfo_file_is_named(toy_copy, content, expected):
    path = toy_copy / 'metainfo.json'
    path.write_text(content)
    with pytest.raises(DataFileError) as error:
        _panoptic(toy_copy, zero_shot_split='toy', test_mode=True)
    message = str(error.value)
    assert repr(str(path)) in message and expected in message
    assert 'metainfo=dict(classes=' in message


def test_missing_metainfo_file_is_named(toy_root):
    with pytest.raises(FileNotFoundError,
                       match="Metainfo file 'nowhere.json' not found"):
        ZeroShotCocoPanopticDataset(
            data_root=str(toy_root), metainfo='nowhere.json',
            ann_file='annotations/panoptic_train.json', test_mode=True)
