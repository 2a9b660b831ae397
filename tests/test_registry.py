"""Every mmpading component resolves and builds by name in mmdet and mmseg
scope, and builds its sub-modules in the scope of the toolbox it extends."""
import uuid
from pathlib import Path

import pytest
from mmdet import registry as mmdet_registry
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry

from mmpading.datasets.splits import (
    TOY_STUFF_CLASSES,
    TOY_THING_CLASSES,
    get_split,
)
from mmpading.registry import (
    ALL_REGISTRIES,
    MODELS,
    MultiScopeRegistry,
    upstream_scope_of,
)
from mmpading.utils.config_utils import toy_config

from _helpers.synthetic_cache import write_synthetic_cache

TOY_CLASSES = TOY_THING_CLASSES + TOY_STUFF_CLASSES

UPSTREAM = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}
REGISTERED = [(reg.name, name) for reg in ALL_REGISTRIES for name in reg.names]
REPO_CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


def test_components_are_registered():
    assert REGISTERED, 'importing mmpading registered nothing'


@pytest.mark.parametrize('scope,upstream', [('mmdet', mmdet_registry),
                                            ('mmseg', mmseg_registry)])
@pytest.mark.parametrize('registry_name,name', REGISTERED)
def test_name_resolves_in_scope(scope, upstream, registry_name, name):
    upstream_registry = getattr(upstream, registry_name)
    with DefaultScope.overwrite_default_scope(scope):
        cls = upstream_registry.get(name)
    assert cls is not None, f'{name} not found in {scope}.{registry_name}'
    assert cls.__module__.startswith('mmpading.')


def test_register_module_reaches_both_scopes():
    registry = MultiScopeRegistry('MODELS')

    class _ProbeComponentForRegistryTest:
        pass

    registry.register_module(module=_ProbeComponentForRegistryTest)
    try:
        for upstream in (mmdet_registry, mmseg_registry):
            assert upstream.MODELS.get(
                '_ProbeComponentForRegistryTest') is \
                _ProbeComponentForRegistryTest
        assert '_ProbeComponentForRegistryTest' in registry
        assert registry.home_scopes['_ProbeComponentForRegistryTest'] is None
    finally:
        for upstream in (mmdet_registry, mmseg_registry):
            upstream.MODELS._module_dict.pop(
                '_ProbeComponentForRegistryTest')


def test_build_uses_the_active_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert MODELS.current() is mmseg_registry.MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert MODELS.current() is mmdet_registry.MODELS


def test_home_scope_is_the_toolbox_of_the_upstream_base_class():
    assert MODELS.home_scopes['PADing'] == 'mmdet'
    assert MODELS.home_scopes['ZeroShotMask2FormerHead'] == 'mmdet'
    # mmseg's head extends mmdet's: the nearest base decides.
    assert MODELS.home_scopes['ZeroShotMask2FormerSegHead'] == 'mmseg'
    assert MODELS.home_scopes['PADingSegmentor'] == 'mmseg'
    for own in ('PrimitiveGenerator', 'MMDLoss', 'ZeroShotLearner'):
        assert MODELS.home_scopes[own] is None, own
    assert upstream_scope_of(dict) is None


def test_home_scope_applies_while_building_and_is_restored():
    from mmdet.models import Mask2FormerHead
    registry = MultiScopeRegistry('MODELS')
    seen = []

    class _ProbeHomeScopeHead(Mask2FormerHead):

        def __init__(self):  # records the scope its sub-modules see
            seen.append(DefaultScope.get_current_instance().scope_name)

    name = f'_ProbeHomeScopeHead{uuid.uuid4().hex[:6]}'
    registry.register_module(name=name, module=_ProbeHomeScopeHead)
    try:
        with DefaultScope.overwrite_default_scope('mmseg'):
            mmseg_registry.MODELS.build(dict(type=name))
            assert DefaultScope.get_current_instance().scope_name == 'mmseg'
        assert seen == ['mmdet']
    finally:
        for upstream in UPSTREAM.values():
            upstream.MODELS._module_dict.pop(name)


def test_a_visualizer_subclass_keeps_its_name_argument():
    # mmengine's ManagerMeta inspects __init__ for `name`; the home-scope
    # wrapper must keep the signature visible to subclasses.
    from mmpading.visualization import PanopticOverlayVisualizer

    class _ProbeVisualizer(PanopticOverlayVisualizer):
        pass

    visualizer = _ProbeVisualizer.get_instance(f'probe_{uuid.uuid4().hex}')
    assert isinstance(visualizer, PanopticOverlayVisualizer)


# ------------------------------------------------ building, table-driven
def module_of(obj) -> str:
    return type(obj).__module__


@pytest.fixture(scope='module')
def configs(tiny_toy_root, tmp_path_factory):
    """The toy stage-2 config on the tiny toy set, ZSS stage 1 and a
    synthetic feature cache of the toy classes."""
    split = get_split('toy')
    stage2 = toy_config('pading_toy_stage2', tiny_toy_root)
    # The tiny toy set's 6 validation images.
    cache = write_synthetic_cache(
        str(tmp_path_factory.mktemp('registry_cache')),
        dict(classes=TOY_CLASSES, zero_shot_split='toy',
             seen_classes=[c for c in TOY_CLASSES if c in split.seen],
             unseen_classes=[c for c in TOY_CLASSES if c in split.unseen]),
        val_dataset=without_scope_keys(stage2.val_dataloader.dataset),
        num_val_images=6)
    return dict(
        toy=tiny_toy_root,
        cache=cache,
        stage2=stage2,
        zss=Config.fromfile(f'{REPO_CONFIGS}/pading/zss_r50_pretrain.py'))


def toy_split(c):
    return c['stage2'].zero_shot_split


def head_cfg(c):
    model = c['stage2'].model
    return dict(model.panoptic_head, train_cfg=model.train_cfg,
                test_cfg=model.test_cfg)


def fusion_head_cfg(c):
    return dict(c['stage2'].model.panoptic_fusion_head,
                test_cfg=c['stage2'].model.test_cfg)


def instance_dataset_cfg(c):
    return dict(
        type='ZeroShotCocoDataset', data_root=c['toy'],
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=TOY_THING_CLASSES),
        zero_shot_split=toy_split(c), zero_shot_mode='drop_unseen',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_mask=True),
                  dict(type='PackDetInputs')])


def stuff_dataset_cfg(c):
    return dict(
        type='ZeroShotCOCOStuffDataset', data_root=c['toy'],
        data_prefix=dict(img_path='train',
                         seg_map_path='annotations/semantic_train'),
        img_suffix='.png', seg_map_suffix='.png', metainfo='metainfo.json',
        zero_shot_split=toy_split(c), zero_shot_mode='drop_unseen',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'), dict(type='PackSegInputs')])


def pipeline_from(toolbox):
    """The annotation loader is the toolbox's own, whatever the scope."""

    def check(dataset):
        loader = dataset.pipeline.transforms[1]
        assert type(loader).__name__ == 'LoadAnnotations' or \
            type(loader).__name__ == 'LoadPanopticAnnotations'
        assert module_of(loader).startswith(f'{toolbox}.'), module_of(loader)
        assert len(dataset) > 0

    return check


def check_pading(model):
    assert type(model.data_preprocessor).__name__ == 'DetDataPreprocessor'
    assert module_of(model.backbone).startswith('mmdet.')
    assert module_of(model.panoptic_head.pixel_decoder).startswith('mmdet.')
    assert type(model.zero_shot).__name__ == 'ZeroShotLearner'


def check_mmdet_head(head):
    assert module_of(head.pixel_decoder).startswith('mmdet.')
    # mmseg has a CrossEntropyLoss of its own: a plain name must not swap.
    assert module_of(head.loss_cls).startswith('mmdet.')
    assert module_of(head.assigner).startswith('mmdet.')


def segmentor_cfg(c):
    """ZSS stage 1 made stage 2 with the toy learner (the toy classes)."""
    model = c['zss'].model
    num_classes = len(TOY_CLASSES)
    decode_head = dict(
        model.decode_head, num_classes=num_classes,
        loss_cls=dict(model.decode_head.loss_cls,
                      class_weight=[1.0] * num_classes + [0.1]))
    zero_shot = dict(c['stage2'].model.zero_shot)
    return dict(model, type='PADingSegmentor', decode_head=decode_head,
                zero_shot=zero_shot)


def check_segmentor(model):
    assert type(model.data_preprocessor).__name__ == 'SegDataPreProcessor'
    assert module_of(model.backbone).startswith('mmseg.')
    assert module_of(model.decode_head).startswith('mmseg.')
    assert type(model.zero_shot).__name__ == 'ZeroShotLearner'


def check_cached_outputs(dataset):
    item = dataset[0]
    assert item['mask_logits'].shape == (5, 4, 4)
    assert item['data_samples'].batch_input_shape == (16, 16)


def check_seg_head(head):
    assert module_of(head.pixel_decoder).startswith('mmdet.')


# (registry, name) -> (config of a minimal working build, extra check).
BUILDS = {
    ('MODELS', 'PADing'): (lambda c: c['stage2'].model, check_pading),
    ('MODELS', 'PADingSegmentor'): (segmentor_cfg, check_segmentor),
    ('MODELS', 'ZeroShotMask2FormerHead'): (
        lambda c: dict(head_cfg(c), type='ZeroShotMask2FormerHead'),
        check_mmdet_head),
    ('MODELS', 'ZeroShotMask2FormerSegHead'): (
        lambda c: dict(c['zss'].model.decode_head,
                       type='ZeroShotMask2FormerSegHead'), check_seg_head),
    ('MODELS', 'UniversalFusionHead'): (fusion_head_cfg, None),
    # feat_dim: the model passes its head's width; standalone, say it.
    ('MODELS', 'ZeroShotLearner'): (
        lambda c: dict(c['stage2'].model.zero_shot,
                       feat_dim=c['stage2'].feat_channels,
                       num_classes=len(TOY_CLASSES)), None),
    ('MODELS', 'PrimitiveGenerator'): (
        lambda c: dict(type='PrimitiveGenerator', semantic_dim=15), None),
    ('MODELS', 'GMMNGenerator'): (
        lambda c: dict(type='GMMNGenerator', semantic_dim=15), None),
    ('MODELS', 'SemanticProjectionClassifier'): (
        lambda c: dict(type='SemanticProjectionClassifier',
                       class_semantic_embeddings=[[1.0, 0.0], [0.0, 1.0]],
                       in_channels=8), None),
    ('MODELS', 'DisentangleHead'): (
        lambda c: dict(type='DisentangleHead', semantic_dim=15), None),
    ('MODELS', 'MMDLoss'): (lambda c: dict(type='MMDLoss'), None),
    ('MODELS', 'RelationAlignLoss'): (lambda c: dict(type='RelationAlignLoss'),
                                      None),
    ('DATASETS', 'ZeroShotCocoPanopticDataset'): (
        lambda c: c['stage2'].train_dataloader.dataset,
        pipeline_from('mmdet')),
    ('DATASETS', 'ZeroShotCocoDataset'): (instance_dataset_cfg,
                                          pipeline_from('mmdet')),
    ('DATASETS', 'ZeroShotCOCOStuffDataset'): (stuff_dataset_cfg,
                                               pipeline_from('mmseg')),
    ('TRANSFORMS', 'IgnoreUnseenClasses'): (
        lambda c: dict(type='IgnoreUnseenClasses', split=toy_split(c),
                       classes=TOY_CLASSES), None),
    ('METRICS', 'GZSLPanopticMetric'): (
        lambda c: c['stage2'].val_evaluator[0], None),
    ('METRICS', 'GZSLInstanceMetric'): (
        lambda c: c['stage2'].val_evaluator[1], None),
    ('METRICS', 'GZSLSemSegMetric'): (
        lambda c: c['stage2'].val_evaluator[2], None),
    ('OPTIM_WRAPPER_CONSTRUCTORS', 'PADingOptimWrapperConstructor'): (
        lambda c: dict(
            type='PADingOptimWrapperConstructor',
            optim_wrapper_cfg={
                key: value
                for key, value in c['stage2'].optim_wrapper.items()
                if key != 'constructor'
            }), None),
    ('HOOKS', 'RandomStateHook'): (lambda c: dict(type='RandomStateHook'),
                                   None),
    ('HOOKS', 'DatasetMetaHook'): (lambda c: dict(type='DatasetMetaHook'),
                                   None),
    ('MODELS', 'PADingFromCache'): (
        lambda c: dict(type='PADingFromCache', cache_dir=c['cache'],
                       zero_shot=c['stage2'].model.zero_shot), None),
    ('DATASETS', 'CachedQueryFeatureDataset'): (
        lambda c: dict(type='CachedQueryFeatureDataset',
                       cache_dir=c['cache']), None),
    ('DATASETS', 'CachedSegmenterOutputDataset'): (
        lambda c: dict(type='CachedSegmenterOutputDataset',
                       cache_dir=c['cache'],
                       dataset=c['stage2'].val_dataloader.dataset),
        check_cached_outputs),
    ('HOOKS', 'GradientShareHook'): (
        lambda c: dict(type='GradientShareHook', interval=5), None),
    ('VISUALIZERS', 'PanopticOverlayVisualizer'): (
        lambda c: dict(type='PanopticOverlayVisualizer',
                       name=f'registry_test_{uuid.uuid4().hex}'), None),
}


def without_scope_keys(cfg):
    """``cfg`` as a user would write it by hand.

    mmengine adds ``_scope_`` to the dicts of a base config inherited with
    ``mmdet::`` / ``mmseg::``; a config written from scratch has none.
    """
    if isinstance(cfg, dict):
        return ConfigDict({
            key: without_scope_keys(value)
            for key, value in cfg.items() if key != '_scope_'
        })
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(without_scope_keys(value) for value in cfg)
    return cfg


def test_every_registered_component_has_a_build_row():
    missing = sorted(set(REGISTERED) - set(BUILDS))
    assert not missing, f'add a row to BUILDS for {missing}'
    assert not set(BUILDS) - set(REGISTERED), 'rows of unregistered names'


@pytest.mark.parametrize('scope', list(UPSTREAM))
@pytest.mark.parametrize('registry_name,name', sorted(BUILDS))
def test_component_builds_by_plain_name_in_scope(configs, scope,
                                                 registry_name, name):
    make_cfg, check = BUILDS[(registry_name, name)]
    cfg = without_scope_keys(make_cfg(configs))
    assert cfg['type'] == name, 'the row must use the plain name'
    registry = getattr(UPSTREAM[scope], registry_name)
    with DefaultScope.overwrite_default_scope(scope):
        obj = registry.build(cfg)
        # Building never leaves the config's scope switched.
        assert DefaultScope.get_current_instance().scope_name == scope
    assert type(obj).__name__ == name
    if check is not None:
        check(obj)
