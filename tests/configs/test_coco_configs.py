"""The COCO configs of configs/pading: settings, and a CPU run of each.

Every config is loaded as a user would load it and changed only where a CPU
run needs it: the data root (a generated COCO-format sample, see
``tiny_coco_sample.py``), the image size (no fixed-size batch padding, no
large-scale jittering: a 64 px resize), no pretrained backbone (nothing is
downloaded) and few sampled mask points. Each config then builds its data
sets and its model, trains one step with the optimizers it configures,
predicts, and (stage 1 and PADing) evaluates with its evaluators.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from tiny_coco_sample import (
    ZSI_TRAIN,
    ZSP_TRAIN,
    paint,
    write_coco_sample,
)

from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.splits import get_split

from _helpers import build_with_dataset_meta

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / 'configs' / 'pading'
COCO_ROOT = 'data/coco/'

FAMILIES = {
    # family: (stage-1 config, split)
    'zsp': ('zsp_r50_pretrain', 'zsp_coco'),
    'zsi_48_17': ('zsi_48_17_r50_pretrain', 'zsi_48_17'),
    'zsi_65_15': ('zsi_65_15_r50_pretrain', 'zsi_65_15'),
}
STAGE2 = {
    # config: (family, generator type or None, disentangle, align)
    'zsp_r50': ('zsp', 'PrimitiveGenerator', True, True),
    'zsp_r50_projection': ('zsp', None, False, False),
    'zsp_r50_gmmn': ('zsp', 'GMMNGenerator', False, False),
    'zsp_r50_p': ('zsp', 'PrimitiveGenerator', False, False),
    'zsp_r50_p_a': ('zsp', 'PrimitiveGenerator', False, True),
    'zsi_48_17_r50': ('zsi_48_17', 'PrimitiveGenerator', True, True),
    'zsi_65_15_r50': ('zsi_65_15', 'PrimitiveGenerator', True, True),
}
STAGE1 = {config: family for family, (config, _) in FAMILIES.items()}
# Stage 1 of a family first, so its checkpoint is the one its test built.
CONFIGS = [
    *STAGE1, *sorted(STAGE2, key=lambda name: (STAGE2[name][0], name))
]
# Stage-2 settings per task (the PADing reference,
# configs/{panoptic,instance}-segmentation/PADing.yaml): the matcher's
# class cost (CLASS_WEIGHT) and the generator's LR drops (SOLVER.STEPS;
# the instance config inherits steps beyond MAX_ITER: none).
STAGE2_TASK = {
    'zsp': dict(max_iters=20000, query_class_cost=5.0,
                milestones=[14000, 18500]),
    'zsi_48_17': dict(max_iters=4000, query_class_cost=2.0, milestones=None),
    'zsi_65_15': dict(max_iters=4000, query_class_cost=2.0, milestones=None),
}
SMALL = (64, 64)


def family_of(name: str) -> str:
    return STAGE1.get(name) or STAGE2[name][0]


def load_config(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / f'{name}.py'))


def expected_classes(family: str) -> tuple[str, ...]:
    if family == 'zsp':
        return tuple(CocoPanopticDataset.METAINFO['classes'])
    return get_split(FAMILIES[family][1]).ordered_like(
        CocoDataset.METAINFO['classes'])


# ----------------------------------------------------------- settings
def test_every_config_is_covered():
    # The COCO-Stuff (ZSS) configs are tested in test_zss_configs.py.
    found = {path.stem for path in CONFIG_DIR.glob('*.py')
             if not path.stem.startswith('zss_')}
    assert found == set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_settings(name):
    cfg = load_config(name)
    family = family_of(name)
    classes = expected_classes(family)
    split = FAMILIES[family][1]
    model = cfg.model
    head = model.panoptic_head

    assert cfg.custom_imports == dict(
        imports=['mmpading'], allow_failed_imports=False)
    # Stage 1 is upstream's Mask2Former; stage 2 PADing on it, with the
    # semantic output of UniversalFusionHead.
    stage1 = name in STAGE1
    assert model.type == ('Mask2Former' if stage1 else 'PADing')
    assert head.type == 'Mask2FormerHead'
    assert model.panoptic_fusion_head.type == (
        'MaskFormerFusionHead' if stage1 else 'UniversalFusionHead')
    assert 'stage' not in model
    # The classes are the data sets' (no config lists them).
    assert 'classes' not in cfg
    for role in ('train', 'test'):
        assert tuple(config_dataset_meta(cfg, role)['classes']) == classes
    num_things = head.num_things_classes
    assert num_things + head.num_stuff_classes == len(classes)
    assert model.panoptic_fusion_head.num_things_classes == num_things
    assert head.loss_cls.class_weight == [1.0] * len(classes) + [0.1]
    if family == 'zsp':
        assert (num_things, head.num_stuff_classes) == (80, 53)
        assert model.test_cfg.panoptic_on
        assert model.test_cfg.semantic_on == (not stage1)
        metrics = {metric.type: metric for metric in cfg.val_evaluator}
        assert set(metrics) == {
            'GZSLPanopticMetric', 'GZSLInstanceMetric'
        } | (set() if stage1 else {'GZSLSemSegMetric'})
    else:
        assert head.num_stuff_classes == 0
        assert not model.test_cfg.panoptic_on
        assert model.test_cfg.instance_on
        metrics = {cfg.val_evaluator.type: cfg.val_evaluator}
        assert set(metrics) == {'GZSLInstanceMetric'}
    # The metrics read the split from the data set (dataset_meta).
    for metric in metrics.values():
        assert 'zero_shot_split' not in metric
    assert metrics['GZSLInstanceMetric'].metric == ['segm', 'bbox']

    # Data: seen-only training, all classes for evaluation.
    train = cfg.train_dataloader.dataset
    assert (train.zero_shot_split, train.zero_shot_mode) == (split,
                                                             'drop_unseen')
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        dataset = loader.dataset
        assert (dataset.zero_shot_split, dataset.zero_shot_mode) == (split,
                                                                     'all')
        assert dataset.test_mode
        # The reference's test-time resize: detectron2's
        # ResizeShortestEdge(800, 1333), PIL's bilinear on the uint8 image.
        [resize] = [t for t in dataset.pipeline if t.type == 'Resize']
        assert (resize.scale, resize.keep_ratio, resize.backend) == (
            (1333, 800), True, 'pillow')
        assert not dataset.pipeline[0].get('to_float32', False)
    if family != 'zsp':
        for dataset in (train, cfg.val_dataloader.dataset):
            assert dataset.split_classes_only
        # The evaluator reads the annotations the data set loads.
        assert metrics['GZSLInstanceMetric'].ann_file == \
            cfg.val_dataloader.dataset.data_root + \
            cfg.val_dataloader.dataset.ann_file

    # Stage 1: upstream optimisation and losses.
    optimizer = cfg.optim_wrapper.get('optimizer', {})
    if name in STAGE1:
        assert (optimizer.type, optimizer.lr) == ('AdamW', 1e-4)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult \
            == 0.1
        assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
        assert (head.loss_cls.loss_weight, head.loss_mask.loss_weight,
                head.loss_dice.loss_weight) == (2.0, 5.0, 5.0)
        assert model.train_cfg.num_points == 12544
        assert 'zero_shot' not in model
        # Stage 1 matches with the training assigner's class cost 2.0.
        assert 'query_class_cost' not in model
        assert model.train_cfg.assigner.match_costs[0].weight == 2.0
        return

    # Stage 2. The built learner's hyperparameters:
    # tests/configs/test_stage2_learners.py.
    task = STAGE2_TASK[family]
    learner = model.zero_shot
    # Classes and split come from the data set (DatasetMetaHook).
    assert 'class_names' not in learner and 'split' not in learner
    assert config_dataset_meta(cfg, 'train')['zero_shot_split'] == split
    assert cfg.default_hooks.dataset_meta.type == 'DatasetMetaHook'
    assert learner.class_embeddings == cfg.class_embeddings
    assert model.query_class_cost == task['query_class_cost']
    stage1_name, _ = FAMILIES[family]
    stage1_iters = load_config(stage1_name).train_cfg.max_iters
    assert cfg.load_from == \
        f'work_dirs/{stage1_name}/iter_{stage1_iters}.pth'
    assert cfg.train_cfg.max_iters == task['max_iters']
    assert cfg.train_dataloader.batch_size == 12
    # 12 images per iteration on any number of GPUs, the learner's losses
    # over all of them (cross_rank_losses, the default).
    assert cfg.global_batch_size == 12
    assert cfg.auto_scale_lr.base_batch_size == 12
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    # The constructor's defaults: the reference's Adam 5e-4 and SGD 1e-3 /
    # 0.9 / 5e-4, each on the modules the learner names (the built
    # optimizers: tests/configs/test_stage2_learners.py).
    assert cfg.optim_wrapper == dict(
        constructor='PADingOptimWrapperConstructor')
    assert cfg.param_scheduler.classifier == []
    generator = STAGE2[name][1]
    if generator is not None and task['milestones'] is None:
        assert cfg.param_scheduler.generator == []
    elif generator is not None:
        (step, ) = cfg.param_scheduler.generator
        assert (step.type, step.gamma, step.milestones) == (
            'MultiStepLR', 0.1, task['milestones'])


# ------------------------------------------------------------- CPU runs
def _rebase(value, root: str):
    """Replace ``data/coco/`` with ``root`` in every string."""
    if isinstance(value, str) and value.startswith(COCO_ROOT):
        return root + value[len(COCO_ROOT):]
    if isinstance(value, dict):
        return type(value)(
            {key: _rebase(item, root)
             for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(_rebase(item, root) for item in value)
    return value


def _small_pipeline(pipeline: list) -> list:
    """The pipeline with a 64 px resize instead of LSJ / 1333 x 800."""
    small = []
    for transform in pipeline:
        if transform['type'] == 'RandomCrop':
            continue
        if transform['type'] in ('RandomResize', 'Resize'):
            # The config's resize backend runs (PIL in the test pipelines).
            transform = dict(type='Resize', scale=SMALL, keep_ratio=True,
                             backend=transform.get('backend', 'cv2'))
        small.append(transform)
    return small


def cpu_config(name: str, root: str) -> Config:
    """The config on the sample, at 64 px, without pretrained weights."""
    cfg = load_config(name)
    cfg = Config(_rebase(cfg.to_dict(), root), filename=cfg.filename)
    cfg.model.data_preprocessor.batch_augments = None
    cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg.num_points = 256
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.pipeline = _small_pipeline(loader.dataset.pipeline)
    return cfg


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """One intra-op thread: the tensors are tiny, and on a busy CPU waiting
    threads make a training step tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('coco')
    write_coco_sample(str(root))
    return str(root) + '/'


@pytest.fixture(scope='module')
def stage1_models(coco_root, tmp_path_factory):
    """Per stage-1 config: its CPU config, a model, a checkpoint of it."""
    from mmdet.registry import MODELS
    cache = {}
    folder = tmp_path_factory.mktemp('stage1')

    def get(name: str):
        if name not in cache:
            init_default_scope('mmdet')
            cfg = cpu_config(name, coco_root)
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            checkpoint = str(folder / f'{name}.pth')
            torch.save({'state_dict': model.state_dict()}, checkpoint)
            cache[name] = cfg, model, checkpoint
        return cache[name]

    return get


def build_datasets(cfg: Config, family: str):
    from mmdet.registry import DATASETS
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    classes = expected_classes(family)
    assert tuple(train.metainfo['classes']) == classes
    assert tuple(val.metainfo['classes']) == classes
    # drop_unseen kept the two seen-only images; evaluation keeps all.
    assert len(train) == 2
    assert len(val) == 2
    unseen = set(get_split(FAMILIES[family][1]).unseen)
    assert set(train.metainfo['unseen_classes']) == unseen
    specs = ZSP_TRAIN if family == 'zsp' else ZSI_TRAIN
    for index in range(len(train)):
        info = train.get_data_info(index)
        spec = specs[int(info['img_id']) % 100 - 1]
        # Every visible thing of a known class is loaded, nothing else
        # (zsi_48_17 knows 65 of the 80 COCO classes).
        seg_map = paint(spec)
        visible = [
            name for position, (name, _) in enumerate(spec, start=1)
            if (seg_map == position).any()
        ]
        expected = sorted(name for name in visible if name in classes and (
            family != 'zsp' or name in CocoPanopticDataset.METAINFO[
                'thing_classes']))
        loaded = sorted(classes[instance['bbox_label']]
                        for instance in info['instances'])
        assert loaded == expected
        assert not set(loaded) & unseen
    return train, val


def batch_of(dataset) -> dict:
    return pseudo_collate([dataset[index] for index in range(len(dataset))])


def assert_finite(log_vars: dict) -> None:
    for key, value in log_vars.items():
        assert math.isfinite(float(value)), f'{key} = {value}'


def check_predictions(outputs, family: str, semantic: bool) -> None:
    num_classes = len(expected_classes(family))
    assert len(outputs) == 2
    for sample in outputs:
        height, width = sample.ori_shape
        instances = sample.pred_instances
        assert instances.masks.shape[1:] == (height, width)
        assert instances.bboxes.shape[1:] == (4, )
        assert len(instances.scores) == len(instances.labels) > 0
        assert int(instances.labels.max()) < num_classes
        if family == 'zsp':
            # Thing classes only in the instance results.
            assert int(instances.labels.max()) < 80
            assert sample.pred_panoptic_seg.sem_seg.shape == (1, height,
                                                              width)
            if not semantic:
                assert 'pred_sem_seg' not in sample
                continue
            semantic_map = sample.pred_sem_seg.sem_seg
            assert semantic_map.shape == (1, height, width)
            assert int(semantic_map.max()) < num_classes
        else:
            assert 'pred_panoptic_seg' not in sample
            assert 'pred_sem_seg' not in sample


def evaluate(cfg: Config, val, batch: dict, outputs, family: str) -> None:
    evaluator = Evaluator(cfg.val_evaluator)
    evaluator.dataset_meta = val.metainfo
    evaluator.process(data_samples=outputs, data_batch=batch)
    metrics = evaluator.evaluate(len(val))
    keys = ['gzsl_instance/segm_mAP50_hm', 'gzsl_instance/segm_R100_hm',
            'gzsl_instance/bbox_mAP50_hm', 'gzsl_instance/bbox_R100_hm']
    if family == 'zsp':
        keys += ['gzsl_panoptic/PQ_seen', 'gzsl_panoptic/PQ_unseen',
                 'gzsl_panoptic/PQ_hm']
        if cfg.model.type == 'PADing':
            keys.append('gzsl_semseg/mIoU_hm')
    for key in keys:
        assert 0.0 <= metrics[key] <= 100.0, (key, metrics.get(key))


def snapshot(module: torch.nn.Module) -> dict:
    return {key: value.clone() for key, value in module.state_dict().items()}


def changed(before: dict, module: torch.nn.Module) -> bool:
    after = module.state_dict()
    return any(not torch.equal(before[key], after[key]) for key in before)


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_config_trains_and_predicts_on_cpu(name, coco_root, stage1_models):
    init_default_scope('mmdet')
    family = family_of(name)
    torch.manual_seed(0)

    if name in STAGE1:
        cfg, model, _ = stage1_models(name)
    else:
        cfg = cpu_config(name, coco_root)
        model = build_with_dataset_meta(cfg)
        _, _, checkpoint = stage1_models(FAMILIES[family][0])
        load_checkpoint(model, checkpoint, map_location='cpu')
    train, val = build_datasets(cfg, family)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    model.train()
    if name in STAGE1:
        cls_embed = snapshot(model.panoptic_head.cls_embed)
        log_vars = model.train_step(batch_of(train), optim_wrapper)
        assert {'loss_cls', 'loss_mask', 'loss_dice'} <= set(log_vars)
        assert changed(cls_embed, model.panoptic_head.cls_embed)
    else:
        _, generator, _, _ = STAGE2[name]
        assert isinstance(optim_wrapper, OptimWrapperDict)
        assert set(optim_wrapper.keys()) == (
            {'classifier'} if generator is None else
            {'generator', 'classifier'})
        learner = model.learner
        frozen = {
            module_name: snapshot(getattr(model, module_name))
            for module_name in ('backbone', 'panoptic_head')
        }
        classifier = snapshot(learner.classifier)
        # Stage 2 matches with its own class cost, stage 1 with 2.0.
        head = model.panoptic_head
        assert model.query_assigner.match_costs[0].weight == \
            STAGE2_TASK[family]['query_class_cost']
        assert head.assigner.match_costs[0].weight == 2.0
        log_vars = model.train_step(batch_of(train), optim_wrapper)
        assert 'cls.loss_cls' in log_vars
        # The segmenter (cls_embed, BN statistics included) is frozen.
        for module_name, before in frozen.items():
            assert not changed(before, getattr(model, module_name))
        assert changed(classifier, learner.classifier)
        if generator is None:
            assert not any(key.startswith('gen.') for key in log_vars)
        else:
            assert 'gen.loss_mmd' in log_vars
            # Initialised from stage 1's cls_embed, then one SGD step.
            cls_embed = model.panoptic_head.cls_embed
            assert torch.allclose(learner.classifier.weight,
                                  cls_embed.weight, atol=0.05)
            assert not torch.equal(learner.classifier.weight,
                                   cls_embed.weight)
        assert bool(learner.classifier_initialised)
    assert_finite(log_vars)

    model.eval()
    batch = batch_of(val)
    with torch.no_grad():
        outputs = model.test_step(batch)
    check_predictions(outputs, family, semantic=name not in STAGE1)
    if name in STAGE1 or STAGE2[name][2]:
        evaluate(cfg, val, batch, outputs, family)
