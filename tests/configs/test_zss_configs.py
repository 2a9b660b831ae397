"""The COCO-Stuff (ZSS) configs of configs/pading: settings and a CPU run.

Each config is loaded as a user would load it and changed only where a CPU
run needs it: the data paths (a generated two-image COCO-Stuff-format
sample), the crop / resize size (64 px), no pretrained backbone and few
sampled mask points. It then builds its data sets and model, trains one
step with the optimizers it configures, predicts and evaluates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.optim.scheduler import LinearLR, PolyLR
from mmengine.registry import PARAM_SCHEDULERS, init_default_scope
from mmseg.datasets import COCOStuffDataset
from PIL import Image

# Registers PADingSegmentor (also once mmpading.models imports it).
import mmpading.models.segmentors  # noqa: F401
from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import get_split
from mmpading.engine.optimizers.pading_optim_wrapper_constructor import (
    optimizer_group_cfgs,
)
from mmpading.registry import DATASETS

from _helpers import build_with_dataset_meta

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'pading'
CLASSES = COCOStuffDataset.METAINFO['classes']
SPLIT = 'zss_cocostuff'
SMALL = (64, 64)
# (height, width) of the generated images: not square, not 64 px.
IMAGE_SHAPE = (72, 96)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    init_default_scope('mmseg')
    yield
    torch.set_num_threads(previous)


def load_config(name: str) -> Config:
    return Config.fromfile(str(CONFIG_DIR / f'{name}.py'))


@pytest.fixture(scope='module')
def stuff_root(tmp_path_factory) -> str:
    """Two images per subset, label maps with 171-class indices.

    Training maps show seen classes only; validation maps also an unseen
    one.
    """
    root = tmp_path_factory.mktemp('coco_stuff164k')
    unseen = [CLASSES.index(name) for name in get_split(SPLIT).unseen]
    seen = [i for i in range(len(CLASSES)) if i not in unseen]
    rng = np.random.default_rng(0)
    height, width = IMAGE_SHAPE
    for subset, labels_per_image in (
            ('train2017', ([seen[0], seen[100]], [seen[50], seen[155]])),
            ('val2017', ([seen[0], unseen[3]], [unseen[10], seen[155]]))):
        (root / 'images' / subset).mkdir(parents=True)
        (root / 'annotations' / subset).mkdir(parents=True)
        for i, labels in enumerate(labels_per_image):
            stem = f'0000000{i}'
            Image.fromarray(
                rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            ).save(root / 'images' / subset / f'{stem}.jpg')
            label_map = np.full(IMAGE_SHAPE, 255, dtype=np.uint8)
            label_map[:40] = labels[0]
            label_map[40:] = labels[1]
            label_map[:8, :8] = 255
            Image.fromarray(label_map).save(
                root / 'annotations' / subset / f'{stem}_labelTrainIds.png')
    # As prepare_zero_shot_coco.py writes it: the stems of seen-only images.
    (root / 'annotations' / 'train2017_seen_zss_cocostuff.txt').write_text(
        '00000000\n00000001\n')
    (root / 'embeddings').mkdir()
    save_class_embeddings(
        str(root / 'embeddings' / 'clip_vit-b16_coco_stuff.json'), CLASSES,
        rng.standard_normal((len(CLASSES), 8)).astype(np.float32),
        source='test vectors')
    return str(root) + '/'


def cpu_config(name: str, root: str) -> Config:
    cfg = load_config(name)
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.train_cfg.num_points = 256
    cfg.model.data_preprocessor.size = SMALL
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = root
        for transform in loader.dataset.pipeline:
            if transform.type in ('RandomChoiceResize', 'Resize'):
                # The config's resize backend runs (PIL for testing).
                backend = transform.get('backend', 'cv2')
                transform.clear()
                transform.update(type='Resize', scale=SMALL, keep_ratio=True,
                                 backend=backend)
            if transform.type == 'RandomCrop':
                transform.crop_size = SMALL
    if 'zero_shot' in cfg.model:
        cfg.model.zero_shot.class_embeddings = (
            root + 'embeddings/clip_vit-b16_coco_stuff.json')
    return cfg


# ----------------------------------------------------------- settings
def test_stage1_settings():
    cfg = load_config('zss_r50_pretrain')
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(
        imports=['mmpading'], allow_failed_imports=False)
    model = cfg.model
    head = model.decode_head
    # Stage 1 is mmseg's own Mask2Former segmentor.
    assert model.type == 'EncoderDecoder' and 'stage' not in model
    assert head.type == 'Mask2FormerHead'
    assert head.num_classes == len(CLASSES) == 171
    # The classes are the data set's (mmseg's COCOStuffDataset).
    assert 'classes' not in cfg
    assert tuple(config_dataset_meta(cfg, 'train')['classes']) == CLASSES
    assert head.loss_cls.class_weight == [1.0] * 171 + [0.1]
    # Upstream values are kept.
    assert head.num_queries == 100
    assert head.transformer_decoder.num_layers == 9
    assert head.train_cfg.num_points == 12544
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
    train = cfg.train_dataloader.dataset
    assert train.type == 'ZeroShotCOCOStuffDataset'
    assert (train.zero_shot_split, train.zero_shot_mode) == (SPLIT,
                                                             'drop_unseen')
    assert train.ann_file == 'annotations/train2017_seen_zss_cocostuff.txt'
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        dataset = loader.dataset
        assert dataset.type == 'ZeroShotCOCOStuffDataset'
        assert (dataset.zero_shot_split, dataset.zero_shot_mode) == (SPLIT,
                                                                     'all')
        assert dataset.test_mode
        # No ADE20K reduce_zero_label anywhere.
        assert all(not t.get('reduce_zero_label')
                   for t in dataset.pipeline)
    assert all(not t.get('reduce_zero_label') for t in train.pipeline)
    # The metric reads the split from the data set (dataset_meta).
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        assert dict(evaluator) == dict(type='GZSLSemSegMetric')


def test_stage1_follows_the_reference_inputs_and_schedule():
    """Reference: configs/semantic-segmentation/Base-COCOStuff-171.yaml
    (INPUT :36-48, SOLVER :19-35)."""
    cfg = load_config('zss_r50_pretrain')
    steps = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    resize = steps['RandomChoiceResize']
    assert resize.scales == [320, 384, 448, 512, 576, 640, 704, 768, 832,
                             896, 960]
    assert (resize.resize_type, resize.max_size) == ('ResizeShortestEdge',
                                                     2560)
    assert tuple(steps['RandomCrop'].crop_size) == (640, 640)
    assert steps['RandomCrop'].cat_max_ratio == 1.0  # no area limit
    assert 'PhotoMetricDistortion' in steps and 'RandomFlip' in steps
    assert tuple(cfg.model.data_preprocessor.size) == (640, 640)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        [test_resize] = [t for t in loader.dataset.pipeline
                         if t.type == 'Resize']
        assert (test_resize.scale, test_resize.keep_ratio,
                test_resize.backend) == ((2560, 640), True, 'pillow')
    assert cfg.train_cfg.max_iters == 120000
    assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
    [poly] = cfg.param_scheduler
    assert (poly.type, poly.power, poly.eta_min, poly.end) == (
        'PolyLR', 0.9, 0, 120001)
    # 8 GPUs x 2 = the reference's IMS_PER_BATCH 16.
    assert cfg.train_dataloader.batch_size == 2


def test_stage2_settings():
    cfg = load_config('zss_r50')
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.type == 'PADingSegmentor'
    assert 'stage' not in cfg.model
    assert cfg.load_from == 'work_dirs/zss_r50_pretrain/iter_160000.pth'
    learner = cfg.model.zero_shot
    # Classes and split come from the data set (DatasetMetaHook).
    assert 'class_names' not in learner and 'split' not in learner
    meta = config_dataset_meta(cfg, 'train')
    assert (tuple(meta['classes']), meta['zero_shot_split']) == (CLASSES,
                                                                 SPLIT)
    assert learner.class_embeddings == (
        'data/coco_stuff164k/embeddings/clip_vit-b16_coco_stuff.json')
    # The built learner's hyperparameters (the reference's semantic
    # setting): tests/configs/test_stage2_learners.py.
    assert cfg.train_cfg.max_iters == 2000
    assert cfg.train_dataloader.batch_size == 12
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'
    optim = cfg.optim_wrapper
    # The constructor's defaults, the reference's optimizers (the built
    # ones: tests/configs/test_stage2_learners.py).
    assert optim == dict(constructor='PADingOptimWrapperConstructor')
    assert cfg.param_scheduler.classifier == []
    # The reference's semantic setting (configs/semantic-segmentation/
    # PADing.yaml): matcher class cost 5.0.
    assert cfg.model.query_class_cost == 5.0


def test_stage2_generator_lr_is_the_reference_warmup_poly():
    """detectron2's WarmupPolyLR: base x warm-up x (1 - t / T) ** 0.9, the
    warm-up factor 1.0 over 10 iterations (Base-COCOStuff-171.yaml:28,
    PADing.yaml:9-11, deeplab's POLY_LR_POWER 0.9)."""
    cfg = load_config('zss_r50')
    max_iters = cfg.train_cfg.max_iters
    groups = cfg.optim_wrapper.to_dict()
    groups.pop('constructor')
    base_lr = optimizer_group_cfgs(groups)['generator']['optimizer']['lr']
    assert base_lr == 5e-4
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=base_lr)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(scheduler, optimizer=optimizer))
        for scheduler in cfg.param_scheduler.generator
    ]
    assert [type(s) for s in schedulers] == [LinearLR, PolyLR]
    lrs = []
    for _ in range(max_iters):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:  # mmengine steps after each iteration
            scheduler.step()
    expected = base_lr * (1 - np.arange(max_iters) / max_iters) ** 0.9
    assert np.allclose(lrs, expected, rtol=1e-9, atol=0)
    assert lrs[-1] > 0


# ----------------------------------------------------------- CPU runs
def build(cfg: Config):
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    model = build_with_dataset_meta(cfg)
    return train, val, model


def check_predict_and_evaluate(cfg: Config, model, val) -> dict:
    model.eval()
    batch = pseudo_collate([val[0], val[1]])
    with torch.no_grad():
        outputs = model.val_step(batch)
    for output in outputs:
        assert output.pred_sem_seg.data.shape == (1, *IMAGE_SHAPE)
        assert output.seg_logits.data.shape == (171, *IMAGE_SHAPE)
    evaluator = Evaluator(cfg.val_evaluator)
    evaluator.dataset_meta = val.metainfo
    evaluator.process(outputs, batch)
    metrics = evaluator.evaluate(2)
    for key in ('mIoU_seen', 'mIoU_unseen', 'mIoU_hm'):
        assert 0.0 <= metrics[f'gzsl_semseg/{key}'] <= 100.0
    return metrics


@pytest.fixture(scope='module')
def stage1_state(stuff_root):
    """Stage 1 trains one step; its weights start stage 2."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = cpu_config('zss_r50_pretrain', stuff_root)
    train, val, model = build(cfg)
    assert len(train) == 2 and len(val) == 2
    assert type(model).__name__ == 'EncoderDecoder'
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    log_vars = model.train_step(pseudo_collate([train[0], train[1]]),
                                optim_wrapper)
    assert 'decode.loss_cls' in log_vars
    assert all(torch.isfinite(value) for value in log_vars.values())
    check_predict_and_evaluate(cfg, model, val)
    return model.state_dict()


def test_stage1_trains_predicts_and_evaluates(stage1_state):
    assert stage1_state['decode_head.cls_embed.weight'].shape == (172, 256)


def test_stage2_trains_predicts_and_evaluates(stuff_root, stage1_state):
    torch.manual_seed(0)
    cfg = cpu_config('zss_r50', stuff_root)
    train, val, model = build(cfg)
    model.load_state_dict(stage1_state, strict=False)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(optim_wrapper, OptimWrapperDict)
    assert set(optim_wrapper.keys()) == {'generator', 'classifier'}
    backbone_before = model.backbone.layer1[0].bn1.running_mean.clone()
    log_vars = model.train_step(pseudo_collate([train[0], train[1]]),
                                optim_wrapper)
    assert {'gen.loss_mmd', 'gen.loss_align', 'cls.loss_cls'} <= set(
        log_vars)
    assert all(torch.isfinite(value) for value in log_vars.values())
    assert torch.equal(model.backbone.layer1[0].bn1.running_mean,
                       backbone_before)
    # Stage 2 matches with class cost 5.0, stage 1 with 2.0.
    head = model.decode_head
    assert model.query_assigner.match_costs[0].weight == 5.0
    assert head.assigner.match_costs[0].weight == 2.0
    # All 15 unseen classes, 5.0 each, in the classifier's CE.
    learner = model.learner
    assert len(learner.unseen_ids) == 15
    assert (learner.class_weight[learner.unseen_ids] == 5.0).all()
    assert not torch.equal(learner.classifier.weight.detach(),
                           stage1_state['decode_head.cls_embed.weight'])
    check_predict_and_evaluate(cfg, model, val)
