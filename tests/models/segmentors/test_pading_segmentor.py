"""PADingSegmentor: PADing's stage 2 on mmseg's Mask2Former (stage 1: mmseg's
own EncoderDecoder)."""

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import nn

import mmpading.models.segmentors  # noqa: F401
from mmpading.datasets.class_embeddings import save_class_embeddings
from mmpading.datasets.splits import ZeroShotSplit, save_split
from mmpading.registry import MODELS

CLASS_NAMES = ['red circle', 'blue square', 'green triangle', 'sky', 'grass']
SEEN = ('grass', 'red circle', 'sky')
UNSEEN = ('green triangle', 'blue square')
SEEN_IDS = [0, 3, 4]
FEAT = 32
SIZE = 64
NUM_CLASSES = len(CLASS_NAMES)


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models: one thread is faster and immune to busy neighbours."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    init_default_scope('mmseg')
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def files(tmp_path):
    split = str(tmp_path / 'split.json')
    save_split(ZeroShotSplit(name='tiny', seen=SEEN, unseen=UNSEEN), split)
    rng = np.random.default_rng(0)
    embeddings = str(tmp_path / 'embeddings.json')
    save_class_embeddings(
        embeddings, CLASS_NAMES,
        rng.standard_normal((len(CLASS_NAMES), 6)).astype(np.float32),
        source='test vectors')
    return dict(split=split, class_embeddings=embeddings)


def model_cfg(files=None, stage=2, num_classes=NUM_CLASSES) -> ConfigDict:
    layer = dict(
        self_attn_cfg=dict(embed_dims=FEAT, num_heads=2, batch_first=True),
        cross_attn_cfg=dict(embed_dims=FEAT, num_heads=2, batch_first=True),
        ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64))
    head = dict(
        type='Mask2FormerHead',
        in_channels=[8, 16, 32, 64],
        strides=[4, 8, 16, 32],
        feat_channels=FEAT,
        out_channels=FEAT,
        num_classes=num_classes,
        num_queries=6,
        num_transformer_feat_level=3,
        align_corners=False,
        pixel_decoder=dict(
            type='mmdet.MSDeformAttnPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=FEAT, num_heads=2, num_levels=3,
                        num_points=2, batch_first=True),
                    ffn_cfg=dict(embed_dims=FEAT,
                                 feedforward_channels=64))),
            positional_encoding=dict(num_feats=FEAT // 2, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=FEAT // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True, num_layers=2, layer_cfg=layer),
        loss_cls=dict(
            type='mmdet.CrossEntropyLoss', use_sigmoid=False,
            loss_weight=2.0, reduction='mean',
            class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                       reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True,
                       activate=True, reduction='mean', naive_dice=True,
                       eps=1.0, loss_weight=5.0),
        train_cfg=dict(
            num_points=64, oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            assigner=dict(
                type='mmdet.HungarianAssigner',
                match_costs=[
                    dict(type='mmdet.ClassificationCost', weight=2.0),
                    dict(type='mmdet.CrossEntropyLossCost', weight=5.0,
                         use_sigmoid=True),
                    dict(type='mmdet.DiceCost', weight=5.0, pred_act=True,
                         eps=1.0)
                ]),
            sampler=dict(type='mmdet.MaskPseudoSampler')))
    cfg = dict(
        type='PADingSegmentor' if stage == 2 else 'EncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
            seg_pad_val=255, size=(SIZE, SIZE)),
        backbone=dict(
            type='ResNet', depth=18, base_channels=8, num_stages=4,
            out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN')),
        decode_head=head,
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
    if stage == 2:
        cfg['zero_shot'] = dict(
            type='ZeroShotLearner',
            class_names=CLASS_NAMES,
            feat_dim=FEAT,
            # Plain 'Linear' builds in mmseg scope too (no registry entry).
            classifier=dict(type='Linear'),
            generator=dict(type='PrimitiveGenerator', num_primitives=8,
                           num_layers=1, num_heads=2, ffn_dim=32),
            disentangle_head=dict(type='DisentangleHead', hidden_dim=16),
            relation_align_loss=dict(type='RelationAlignLoss',
                                     temperature=0.1),
            lambda_weight=1e-3,
            num_unseen_per_iter=None,
            **files)
    # Upstream heads read their sub-configs by attribute.
    return ConfigDict(cfg)


def make_data(batch: int = 2, seed: int = 0) -> dict:
    """Random images and label maps of seen classes (and ignore pixels)."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.from_numpy(
            rng.integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8)))
        labels = np.full((SIZE, SIZE), 255, dtype=np.int64)
        for i, label in enumerate(rng.permutation(SEEN_IDS)):
            labels[i * 20:i * 20 + 20, :] = label
        sample = SegDataSample(metainfo=dict(
            img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels)[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def optim_wrapper(model, classifier_lr: float):
    return build_optim_wrapper(model, dict(
        constructor='PADingOptimWrapperConstructor',
        generator=dict(
            type='OptimWrapper',
            optimizer=dict(type='Adam', lr=5e-4, weight_decay=0.0),
            modules=['zero_shot.generator', 'zero_shot.disentangle_head']),
        classifier=dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=classifier_lr, momentum=0.9,
                           weight_decay=0.0),
            modules=['zero_shot.classifier'])))


def stage2_model(files):
    """A stage-2 model that loaded a stage-1 model's weights."""
    torch.manual_seed(0)
    stage1 = MODELS.build(model_cfg(stage=1))
    model = MODELS.build(model_cfg(files))
    model.load_state_dict(stage1.state_dict(), strict=False)
    return model, stage1


def test_stage2_train_step_freezes_segmenter_and_moves_classifier(files):
    model, stage1 = stage2_model(files)
    model.train()
    assert model.stage1_checkpoint_loaded
    frozen = (model.backbone, model.decode_head)
    assert all(not m.training for m in frozen)
    assert model.learner.training
    before = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(('backbone.', 'decode_head.'))}
    assert any('running_mean' in k for k in before)
    # Zero learning rate first: the classifier is stage 1's cls_embed.
    wrapper = optim_wrapper(model, classifier_lr=0.0)
    log_vars = model.train_step(make_data(), wrapper)
    assert {'gen.loss_mmd', 'gen.loss_align', 'cls.loss_cls'} <= set(log_vars)
    assert all(torch.isfinite(v) for v in log_vars.values())
    classifier = model.learner.classifier
    cls_embed = stage1.decode_head.cls_embed
    assert torch.equal(classifier.weight.detach(), cls_embed.weight)
    assert torch.equal(classifier.bias.detach(), cls_embed.bias)
    # A learning rate: the classifier moves; it is not initialised again.
    for group in wrapper['classifier'].optimizer.param_groups:
        group['lr'] = 0.1
    model.train_step(make_data(seed=1), wrapper)
    assert not torch.equal(classifier.weight.detach(), cls_embed.weight)
    after = model.state_dict()
    for key, value in before.items():  # parameters and BN statistics
        assert torch.equal(after[key], value), key
    assert all(p.grad is None for m in frozen for p in m.parameters())


def test_stage2_without_stage1_weights_says_so(files):
    model = MODELS.build(model_cfg(files))
    with pytest.raises(RuntimeError, match='load_from'):
        model.train_step(make_data(), optim_wrapper(model, 0.1))


def test_stage2_needs_the_optim_wrapper_dict(files):
    model, _ = stage2_model(files)
    plain = build_optim_wrapper(
        model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(TypeError, match='PADingOptimWrapperConstructor'):
        model.train_step(make_data(), plain)


def test_predict_uses_the_learner_classifier(files):
    model, stage1 = stage2_model(files)
    model.eval()
    stage1.eval()
    # A classifier that always says class 3.
    always = nn.Linear(FEAT, len(CLASS_NAMES) + 1)
    nn.init.zeros_(always.weight)
    with torch.no_grad():
        always.bias.zero_()
        always.bias[3] = 20.0
    model.learner.classifier = always
    model.learner.classifier_initialised.fill_(1)  # as after stage 2
    with torch.no_grad():
        # predict() writes into the samples: one batch per model.
        data = model.data_preprocessor(make_data(), False)
        results = model.predict(data['inputs'], data['data_samples'])
        data = stage1.data_preprocessor(make_data(), False)
        upstream = stage1.predict(data['inputs'], data['data_samples'])
    assert len(results) == 2
    for result in results:
        assert result.pred_sem_seg.data.shape == (1, SIZE, SIZE)
        assert result.seg_logits.data.shape == (len(CLASS_NAMES), SIZE,
                                                SIZE)
        assert (result.pred_sem_seg.data == 3).all()
    # Stage 1 (cls_embed) predicts otherwise.
    assert not all((r.pred_sem_seg.data == 3).all() for r in upstream)


def test_untrained_stage2_classifier_refuses_to_predict(files):
    model, _ = stage2_model(files)
    model.eval()
    data = model.data_preprocessor(make_data(), False)
    with pytest.raises(RuntimeError, match='was never initialised'):
        model.predict(data['inputs'], data['data_samples'])


def test_wrong_class_count_checkpoint_names_both_shapes(files):
    model, stage1 = stage2_model(files)
    state = stage1.state_dict()
    for key in ('decode_head.cls_embed.weight', 'decode_head.cls_embed.bias'):
        state[key] = state[key][:-2]
    with pytest.raises(ValueError, match=r'\(4, 32\).*\(6, 32\)'):
        model.load_state_dict(state, strict=False)


def test_learner_keys_have_no_ddp_prefix(files):
    model, _ = stage2_model(files)
    model.zero_shot = nn.parallel.DistributedDataParallel.__new__(
        nn.parallel.DistributedDataParallel)
    nn.Module.__init__(model.zero_shot)
    learner = MODELS.build(model_cfg(files)['zero_shot'])
    model.zero_shot.module = learner
    keys = list(model.state_dict())
    assert 'zero_shot.classifier.weight' in keys
    assert not any(k.startswith('zero_shot.module.') for k in keys)
    assert model.learner is learner


def test_bad_settings_raise(files):
    cfg = model_cfg(files)
    cfg['stage'] = 1
    with pytest.raises(ValueError, match="type='EncoderDecoder'"):
        MODELS.build(cfg)
    cfg['stage'] = 3
    with pytest.raises(ValueError, match='stage must be 2'):
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='needs `zero_shot`'):
        cfg = model_cfg(files)
        cfg['zero_shot'] = None
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='lists 5 classes'):
        MODELS.build(model_cfg(files, num_classes=4))


def test_matched_labels_are_the_label_map_classes(files):
    model, _ = stage2_model(files)
    data = model.data_preprocessor(make_data(), True)
    query_features = model.frozen_query_features(data)
    assert query_features.embeddings.shape == (2, 6, FEAT)
    assert not query_features.embeddings.requires_grad
    for i, sample in enumerate(data['data_samples']):
        label_map = sample.gt_sem_seg.data[0]
        present = sorted(set(label_map.unique().tolist()) - {255})
        assert len(present) == 3
        matched = query_features.labels[i][query_features.matched[i]]
        assert sorted(matched.tolist()) == present
    # Unmatched queries carry the no-object index.
    assert (query_features.labels[~query_features.matched] ==
            NUM_CLASSES).all()


def test_earlier_head_name_and_its_class_cost(files):
    cfg = model_cfg(files)
    cfg.decode_head.type = 'ZeroShotMask2FormerSegHead'
    cfg.decode_head.query_class_cost = 5.0
    model = MODELS.build(cfg)
    assert model.query_assigner.match_costs[0].weight == 5.0
    assert model.decode_head.assigner.match_costs[0].weight == 2.0


@pytest.mark.parametrize('segmenter_amp', [True, False])
def test_stage2_frozen_forward_shares_the_amp_context(files, segmenter_amp,
                                                      cpu_autocast_wrapper):
    """As PADing's detector: with ``segmenter_amp`` the frozen backbone
    runs under the first step's autocast (or not)."""
    cfg = model_cfg(files)
    cfg.segmenter_amp = segmenter_amp
    torch.manual_seed(0)
    stage1 = MODELS.build(model_cfg(stage=1))
    model = MODELS.build(cfg)
    model.load_state_dict(stage1.state_dict(), strict=False)
    assert model.segmenter_amp is segmenter_amp
    model.train()
    learner = model.learner
    wrapper = OptimWrapperDict(
        generator=cpu_autocast_wrapper(torch.optim.Adam(
            learner.generator.parameters(), lr=1e-4)),
        classifier=OptimWrapper(torch.optim.SGD(
            learner.classifier.parameters(), lr=1e-3)))
    dtypes = []
    model.backbone.register_forward_hook(
        lambda module, inputs, output: dtypes.append(output[-1].dtype))
    log_vars = model.train_step(make_data(), wrapper)
    assert 'cls.loss_cls' in log_vars
    assert dtypes == [torch.bfloat16 if segmenter_amp else torch.float32]
