"""check_zero_shot_training_data: a PADing config trains on seen-only data."""
import copy
import json
import logging
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from mmpading.datasets import (
    ZeroShotTrainingDataError,
    check_zero_shot_training_data,
)
from mmpading.registry import DATASETS
from mmpading.utils.config_utils import toy_config

REPO_ROOT = Path(__file__).resolve().parents[2]
TOY_CONFIGS = sorted(p.stem for p in (REPO_ROOT / 'configs/toy').glob('*.py'))
COCO_CONFIGS = sorted((REPO_ROOT / 'configs/pading').glob('*.py'))
UPSTREAM_PANOPTIC = dict(
    type='CocoPanopticDataset', data_root='data/toy/',
    ann_file='annotations/panoptic_train.json',
    data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
    pipeline=[])


@pytest.fixture
def warnings_logged():
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture(scope='module')
def stage1_cfg():
    return toy_config('pading_toy_stage1')


def _with_train_set(cfg, dataset, **top_level):
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset = dataset
    cfg.merge_from_dict(top_level)
    return cfg


@pytest.mark.parametrize('name', TOY_CONFIGS)
def test_toy_configs_pass_and_build(name, toy_root):
    cfg = toy_config(name, str(toy_root))
    check_zero_shot_training_data(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        val = DATASETS.build(cfg.val_dataloader.dataset)
    # Seen-only training set, all-class evaluation set.
    images = {split: len(json.loads(
        (toy_root / f'annotations/panoptic_{split}.json').read_text())[
            'images']) for split in ('train', 'val')}
    assert 0 < len(train) < images['train']
    assert len(val) == images['val']
    unseen = train.unseen_labels
    for index in range(len(train)):
        labels = {s['category'] for s in
                  train.get_data_info(index)['segments_info']}
        assert labels.isdisjoint(unseen)


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=lambda p: p.stem)
def test_coco_configs_pass(path):
    cfg = Config.fromfile(str(path))
    check_zero_shot_training_data(cfg)
    # Their evaluation sets are marked as such (mode 'all' needs it).
    assert cfg.val_dataloader.dataset.zero_shot_mode == 'all'
    assert cfg.val_dataloader.dataset.test_mode


def test_upstream_data_set_is_refused(stage1_cfg):
    cfg = _with_train_set(stage1_cfg, dict(UPSTREAM_PANOPTIC))
    with pytest.raises(ZeroShotTrainingDataError) as error:
        check_zero_shot_training_data(cfg)
    message = str(error.value)
    for part in ('train_dataloader.dataset (CocoPanopticDataset',
                 "'data/toy/annotations/panoptic_train.json'",
                 'Mask2Former model', 'not a zero-shot data set',
                 'ZeroShotCocoPanopticDataset', "'drop_unseen'",
                 'allow_unseen_in_training = True'):
        assert part in message, part


def test_upstream_data_set_opt_out_warns(stage1_cfg, warnings_logged):
    cfg = _with_train_set(stage1_cfg, dict(UPSTREAM_PANOPTIC),
                          allow_unseen_in_training=True)
    check_zero_shot_training_data(cfg)
    assert len(warnings_logged) == 1
    assert 'contains images with unseen classes' in warnings_logged[0]
    assert 'CocoPanopticDataset' in warnings_logged[0]


@pytest.mark.parametrize('wrap, where', [
    (lambda d: dict(type='RepeatDataset', times=2, dataset=d),
     'train_dataloader.dataset.dataset'),
    (lambda d: dict(type='ClassBalancedDataset', oversample_thr=0.1,
                    dataset=dict(type='RepeatDataset', times=2, dataset=d)),
     'train_dataloader.dataset.dataset.dataset'),
])
def test_wrapped_upstream_data_set_is_refused(stage1_cfg, wrap, where):
    cfg = _with_train_set(stage1_cfg, wrap(dict(UPSTREAM_PANOPTIC)))
    with pytest.raises(ZeroShotTrainingDataError,
                       match=f'^{where} \\(CocoPanopticDataset'):
        check_zero_shot_training_data(cfg)


def test_concat_names_the_bad_member(stage1_cfg):
    good = stage1_cfg.train_dataloader.dataset
    cfg = _with_train_set(stage1_cfg, dict(
        type='ConcatDataset', datasets=[good, dict(UPSTREAM_PANOPTIC)]))
    with pytest.raises(ZeroShotTrainingDataError,
                       match=r'^train_dataloader\.dataset\.datasets\.1 '):
        check_zero_shot_training_data(cfg)
    cfg.train_dataloader.dataset.datasets.pop()
    check_zero_shot_training_data(cfg)


@pytest.mark.parametrize('change, expected', [
    (dict(zero_shot_mode='all'), "zero_shot_mode='all'"),
    (dict(zero_shot_mode='all', test_mode=True), "zero_shot_mode='all'"),
    (dict(zero_shot_split=None), 'has no zero_shot_split'),
])
def test_zero_shot_data_set_keeping_unseen_is_refused(stage1_cfg, change,
                                                      expected):
    dataset = dict(copy.deepcopy(stage1_cfg.train_dataloader.dataset),
                   **change)
    cfg = _with_train_set(stage1_cfg, dataset)
    with pytest.raises(ZeroShotTrainingDataError) as error:
        check_zero_shot_training_data(cfg)
    message = str(error.value)
    assert expected in message
    assert 'train_dataloader.dataset.allow_unseen_in_training=True' in \
        message
    assert 'panoptic_train.json' in message


def test_zero_shot_data_set_opt_out(stage1_cfg, warnings_logged):
    dataset = dict(copy.deepcopy(stage1_cfg.train_dataloader.dataset),
                   zero_shot_mode='all', allow_unseen_in_training=True)
    check_zero_shot_training_data(_with_train_set(stage1_cfg, dataset))
    # The data set itself logs the warning when it is built.
    assert not warnings_logged
    dataset['test_mode'] = True
    check_zero_shot_training_data(_with_train_set(stage1_cfg, dataset))
    assert len(warnings_logged) == 1


def test_configs_without_zero_shot_data_are_not_checked(stage1_cfg):
    """Upstream's Mask2Former is a zero-shot stage 1 when it is evaluated
    on a zero-shot data set, and only then; PADing always is."""
    cfg = _with_train_set(stage1_cfg, dict(UPSTREAM_PANOPTIC))
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset = dict(UPSTREAM_PANOPTIC, test_mode=True)
    check_zero_shot_training_data(cfg)
    cfg.model.type = 'mmpading.PADing'
    with pytest.raises(ZeroShotTrainingDataError):
        check_zero_shot_training_data(cfg)


def test_semantic_config_with_upstream_data_set_is_refused():
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/pading/zss_r50.py'))
    cfg.train_dataloader.dataset.type = 'COCOStuffDataset'
    with pytest.raises(ZeroShotTrainingDataError,
                       match=r'\(COCOStuffDataset.*PADingSegmentor model'):
        check_zero_shot_training_data(cfg)


def test_train_toy_config_refuses_before_any_work(toy_root, tmp_path):
    from mmpading.apis.toy_experiments import train_toy_config
    work_dir = tmp_path / 'work'
    with pytest.raises(ZeroShotTrainingDataError,
                       match="zero_shot_mode='all'"):
        train_toy_config('pading_toy_stage1', str(work_dir), str(toy_root),
                         options={'train_dataloader.dataset.zero_shot_mode':
                                  'all'})
    assert not work_dir.exists()


@pytest.mark.slow
def test_train_tool_refuses_in_one_line(toy_root, tmp_path):
    """tools/train.py: one 'error:' line, no traceback, no work dir."""
    import os
    import subprocess
    import sys
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    work_dir = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools/train.py'),
         str(REPO_ROOT / 'configs/toy/pading_toy_stage1.py'), '--data-root',
         str(toy_root), '--work-dir', str(work_dir), '--cfg-options',
         'train_dataloader.dataset.type=CocoPanopticDataset'],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith('error: train_dataloader.dataset '
                            '(CocoPanopticDataset')
    assert 'allow_unseen_in_training = True' in error
    assert not work_dir.exists()
