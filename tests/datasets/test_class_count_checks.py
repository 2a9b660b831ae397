"""check_head_class_counts: a head sized for other classes is refused."""
from pathlib import Path

import pytest
from mmengine.config import Config

from mmpading.datasets.class_count_checks import (
    ClassCountError,
    check_head_class_counts,
)
from mmpading.datasets.toy_generator import (
    DEFAULT_STUFF_CLASSES,
    DEFAULT_THING_CLASSES,
    generate_toy_dataset,
)
from mmpading.utils.config_utils import toy_config

REPO_ROOT = Path(__file__).resolve().parents[2]
TOY_CONFIGS = sorted(p.stem for p in (REPO_ROOT / 'configs/toy').glob('*.py'))
COCO_CONFIGS = sorted((REPO_ROOT / 'configs/pading').glob('*.py'))
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
THINGS, STUFF = len(DEFAULT_THING_CLASSES), len(DEFAULT_STUFF_CLASSES)


@pytest.fixture(scope='module')
def larger_toy_root(tmp_path_factory) -> str:
    """A toy set with two more things and one more stuff class than the
    default one, whose counts the toy configs' heads have."""
    root = tmp_path_factory.mktemp('larger_toy')
    generate_toy_dataset(
        str(root), seed=0, num_train=4, num_val=2, image_size=64,
        thing_classes=list(DEFAULT_THING_CLASSES) +
        ['cyan circle', 'magenta square'],
        stuff_classes=list(DEFAULT_STUFF_CLASSES) + ['olive stripes'])
    return str(root)


@pytest.mark.parametrize('name', TOY_CONFIGS)
def test_every_toy_config_fits_the_default_toy_set(name, toy_root):
    check_head_class_counts(toy_config(name, str(toy_root)), LOADERS)


@pytest.mark.parametrize('path', COCO_CONFIGS, ids=lambda p: p.stem)
def test_every_coco_config_fits_its_data_set(path):
    # The data sets are built lazily: no annotation file is needed.
    check_head_class_counts(Config.fromfile(str(path)), LOADERS)


@pytest.mark.parametrize('name',
                         ['pading_toy_stage1', 'pading_toy_stage2'])
def test_a_toy_set_with_more_classes_is_refused(name, larger_toy_root):
    cfg = toy_config(name, larger_toy_root)
    with pytest.raises(ClassCountError) as error:
        check_head_class_counts(cfg, ['train_dataloader'])
    message = str(error.value)
    assert 'train_dataloader.dataset (ZeroShotCocoPanopticDataset' in message
    assert f'{larger_toy_root}/annotations/panoptic_train.json' in message
    assert (f'model.panoptic_head.num_things_classes={THINGS} but the data '
            f'set has {THINGS + 2} things') in message
    assert (f'model.panoptic_head.num_stuff_classes={STUFF} but the data '
            f'set has {STUFF + 1} stuff') in message
    assert 'Fix: set the head' in message


def test_a_head_sized_for_the_data_set_passes(larger_toy_root):
    cfg = toy_config('pading_toy_stage1', larger_toy_root)
    cfg.merge_from_dict({
        'model.panoptic_head.num_things_classes': THINGS + 2,
        'model.panoptic_head.num_stuff_classes': STUFF + 1
    })
    check_head_class_counts(cfg, LOADERS)


def test_only_a_differing_kind_is_named(larger_toy_root):
    cfg = toy_config('pading_toy_stage1', larger_toy_root)
    cfg.merge_from_dict(
        {'model.panoptic_head.num_things_classes': THINGS + 2})
    with pytest.raises(ClassCountError,
                       match=f'num_stuff_classes={STUFF}') as error:
        check_head_class_counts(cfg, ['val_dataloader'])
    assert 'num_things_classes' not in str(error.value)
    assert str(error.value).startswith('val_dataloader.dataset')


def test_a_semantic_head_is_compared_with_all_classes(toy_root):
    cfg = toy_config('pading_toy_stage1', str(toy_root))
    classes = THINGS + STUFF
    cfg.model = dict(type='EncoderDecoder',
                     decode_head=dict(num_classes=classes - 1))
    with pytest.raises(ClassCountError,
                       match=f'model.decode_head.num_classes={classes - 1} '
                       f'but the data set has {classes} classes'):
        check_head_class_counts(cfg, ['train_dataloader'])
    cfg.model.decode_head.num_classes = classes
    check_head_class_counts(cfg, ['train_dataloader'])


def test_upstream_data_sets_and_absent_loaders_are_left_alone(
        larger_toy_root):
    cfg = toy_config('pading_toy_stage1', larger_toy_root)
    cfg.train_dataloader.dataset.type = 'CocoPanopticDataset'
    for key in ('zero_shot_split', 'zero_shot_mode', 'metainfo'):
        cfg.train_dataloader.dataset.pop(key)
    cfg.val_dataloader = None
    check_head_class_counts(cfg, ['train_dataloader', 'val_dataloader',
                                  'no_such_dataloader'])
