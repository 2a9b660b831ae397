"""The converter of the PADing reference's checkpoints.

The reference's state dicts are rebuilt from the key / shape lists in
``reference_keys/`` (derived from heshuting555/PADing's model definitions
and detectron2 v0.6's ResNet; see reference_keys/README.md) with seeded
random values, converted, and loaded into the mmpading models of
configs/pading, built on the meta device (no memory, no pretrained
weights) and filled with ``load_state_dict(assign=True)``.
"""
from __future__ import annotations

import json
import math
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from mmpading.apis.checkpoint_conversion import (
    LAYOUTS,
    REFERENCE_BN_EPS,
    REFERENCE_PIXEL_MEAN,
    REFERENCE_PIXEL_STD,
    ConversionError,
    build_target_model,
    check_reference_backbone,
    check_state_dict_fits,
    class_row_order,
    convert_state_dict,
    detect_layout,
    load_reference_checkpoint,
    reference_layout,
)
from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.splits import get_split

KEYS_DIR = Path(__file__).parent / 'reference_keys'
# Layout -> fixture; ZSI 65/15 is ZSI 48/17 with other class counts.
FIXTURE = {'zsp': 'zsp', 'zsi_48_17': 'zsi', 'zsi_65_15': 'zsi',
           'zss': 'zss'}
# Rows of class_embed: (unpadded stage 1, final).
CLASS_ROWS = {'zsp': (134, 134), 'zsi_48_17': (49, 66),
              'zsi_65_15': (66, 81), 'zss': (157, 172)}
CLASS_KEYS = ('sem_seg_head.predictor.class_embed.weight',
              'sem_seg_head.predictor.class_embed.bias', 'new_fc.weight',
              'new_fc.bias', 'criterion.empty_weight')


def reference_shapes(layout: str, stage: str) -> dict[str, list[int]]:
    shapes = json.loads(
        (KEYS_DIR / f'{FIXTURE[layout]}_{stage}.json').read_text())
    rows = CLASS_ROWS[layout][stage == 'pading']
    for key in CLASS_KEYS:
        if key in shapes:
            shapes[key] = [rows] + shapes[key][1:]
    return shapes


# Larger tensors (the 37 big convolutions and FFN weights of res4 / res5
# and the decoder) are zeros: lazily allocated, they cost neither time nor
# memory, and no test reads them by value.
RANDOM_NUMEL = 2**18


def random_tensor(key: str, shape: list[int], seed: int = 0) -> torch.Tensor:
    """The seeded rule: N(0, 1) per key, seeded by the key's CRC32;
    variances positive; zeros above RANDOM_NUMEL elements."""
    if math.prod(shape) > RANDOM_NUMEL:
        return torch.zeros(shape)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()) + seed)
    value = torch.randn(shape, generator=generator)
    return value.abs() + 0.5 if key.endswith('running_var') else value


def reference_state_dict(layout: str, stage: str) -> dict[str, torch.Tensor]:
    return {key: random_tensor(key, shape)
            for key, shape in reference_shapes(layout, stage).items()}


_MODELS: dict = {}


def converted_model(layout: str, stage: str):
    """(source, conversion, model filled with the converted tensors)."""
    if (layout, stage) not in _MODELS:
        source = reference_state_dict(layout, stage)
        result = convert_state_dict(source)
        model = build_target_model(layout, stage)
        incompatible = model.load_state_dict(result.state_dict, strict=True,
                                             assign=True)
        assert not incompatible.missing_keys
        assert not incompatible.unexpected_keys
        _MODELS[(layout, stage)] = source, result, model
    return _MODELS[(layout, stage)]


@pytest.fixture(scope='module', autouse=True)
def release_models():
    yield
    _MODELS.clear()


# ------------------------------------------------------------ coverage
@pytest.mark.parametrize('stage', ['pretrain', 'pading'])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_every_key_is_mapped_and_the_model_loads_it(layout, stage):
    source, result, model = converted_model(layout, stage)
    assert (result.layout, result.stage) == (layout, stage)
    assert set(result.mapped) | set(result.ignored) == set(source)
    assert set(result.ignored) == {'criterion.empty_weight'} | (
        {'new_fc.weight', 'new_fc.bias'} & set(source)
        if stage == 'pretrain' else set())
    check_state_dict_fits(result.state_dict, model)
    # Filled without a source: the BN counters (and the learner's flag).
    assert all(key.endswith('num_batches_tracked')
               or key == 'zero_shot.classifier_initialised'
               for key in result.filled)
    assert len(result.filled) == 53 + (stage == 'pading')
    if stage == 'pading':
        assert sorted(result.partial) == sorted(
            f'generator.layers.{i}.self_attn.in_proj_{p}' for i in range(3)
            for p in ('weight', 'bias'))
        assert int(model.learner.classifier_initialised) == 1
    summary = result.summary()
    assert 'criterion.empty_weight' in summary
    assert f'{len(result.mapped)} source keys mapped' in summary


@pytest.mark.parametrize('layout', LAYOUTS)
def test_layouts_match_the_configs(layout):
    layout_ = reference_layout(layout)
    for stage in ('pretrain', 'pading'):
        cfg = Config.fromfile(layout_.config_path(stage))
        assert tuple(config_dataset_meta(cfg)['classes']) == \
            layout_.target_classes()
        # The reference's input normalisation, RGB.
        preprocessor = cfg.model.data_preprocessor
        assert tuple(preprocessor.mean) == pytest.approx(REFERENCE_PIXEL_MEAN)
        assert tuple(preprocessor.std) == pytest.approx(REFERENCE_PIXEL_STD)
        assert preprocessor.bgr_to_rgb
    # The model is checked as the tool checks it: style, eps.
    _, _, model = converted_model(layout, 'pretrain')
    check_reference_backbone(model)


def test_one_to_one_keys_copy_unchanged():
    source, result, _ = converted_model('zsp', 'pading')
    copied = 0
    for key, targets in result.mapped.items():
        if not key.startswith(('generator.', 'new_fc.')) and \
                'class_embed' not in key:
            assert torch.equal(result.state_dict[targets[0]], source[key])
            copied += 1
    # All but the generator (split in-projections) and class rows.
    generator = [key for key in source if key.startswith('generator.')]
    assert copied == len(result.mapped) - 4 - len(generator)


# ----------------------------------------------------- values through
def test_frozen_bn_statistics_and_eps():
    source, _, model = converted_model('zsp', 'pretrain')
    prefix = 'backbone.res3.0.conv2.norm.'
    bn = model.backbone.layer2[0].bn2
    assert bn.eps == REFERENCE_BN_EPS
    assert torch.equal(bn.running_var, source[prefix + 'running_var'])
    bn.eval()
    x = torch.randn(2, bn.num_features, 3, 3)
    # detectron2's FrozenBatchNorm2d.forward (layers/batch_norm.py).
    scale = source[prefix + 'weight'] * (source[prefix + 'running_var'] +
                                         1e-5).rsqrt()
    shift = source[prefix + 'bias'] - source[prefix + 'running_mean'] * scale
    expected = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    torch.testing.assert_close(bn(x), expected)


def test_conv_layouts_and_stride_in_3x3():
    source, _, model = converted_model('zsp', 'pretrain')
    x = torch.randn(1, 3, 16, 16)
    torch.testing.assert_close(
        model.backbone.conv1(x),
        F.conv2d(x, source['backbone.stem.conv1.weight'], stride=2,
                 padding=3))
    # STRIDE_IN_1X1: False: res3..res5 stride in the 3x3 conv.
    for stage in (model.backbone.layer2, model.backbone.layer3,
                  model.backbone.layer4):
        assert stage[0].conv1.stride == (1, 1)
        assert stage[0].conv2.stride == (2, 2)
    assert torch.equal(model.backbone.layer1[0].downsample[0].weight,
                       source['backbone.res2.0.shortcut.weight'])
    head = model.panoptic_head
    assert torch.equal(
        head.pixel_decoder.lateral_convs[0].conv.weight,
        source['sem_seg_head.pixel_decoder.adapter_1.weight'])
    assert torch.equal(
        head.pixel_decoder.input_convs[2].conv.weight,
        source['sem_seg_head.pixel_decoder.input_proj.2.0.weight'])


def test_decoder_layers_keep_the_packed_in_projection():
    source, _, model = converted_model('zss', 'pading')
    layer = model.decode_head.transformer_decoder.layers[4]
    assert isinstance(layer.self_attn.attn, nn.MultiheadAttention)
    prefix = 'sem_seg_head.predictor.'
    assert torch.equal(
        layer.self_attn.attn.in_proj_weight,
        source[prefix + 'transformer_self_attention_layers.4.self_attn.'
               'in_proj_weight'])
    assert torch.equal(
        layer.cross_attn.attn.in_proj_bias,
        source[prefix + 'transformer_cross_attention_layers.4.'
               'multihead_attn.in_proj_bias'])
    # Norms: cross-attention 0, self-attention 1, FFN 2.
    assert torch.equal(
        layer.norms[1].weight,
        source[prefix + 'transformer_self_attention_layers.4.norm.weight'])
    assert torch.equal(
        layer.norms[2].bias,
        source[prefix + 'transformer_ffn_layers.4.norm.bias'])
    assert torch.equal(model.decode_head.mask_embed[4].weight,
                       source[prefix + 'mask_embed.layers.2.weight'])


def reference_attention(source: dict, prefix: str) -> nn.MultiheadAttention:
    attention = nn.MultiheadAttention(256, 8)
    attention.load_state_dict({
        key: source[prefix + key]
        for key in ('in_proj_weight', 'in_proj_bias', 'out_proj.weight',
                    'out_proj.bias')
    })
    return attention.eval()


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(
        actual, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


@torch.no_grad()
def test_generator_in_projections_split_exactly():
    source, _, model = converted_model('zsp', 'pading')
    layer = model.learner.generator.layers[1].eval()
    prefix = 'generator.layers.1.'
    q, k, v = source[prefix + 'multihead_attn.in_proj_weight'].chunk(3)
    assert torch.equal(layer.cross_attn.q_proj.weight, q)
    assert torch.equal(layer.cross_attn.k_proj.weight, k)
    assert torch.equal(layer.cross_attn.v_proj.weight, v)
    assert torch.equal(layer.self_attn_value.bias,
                       source[prefix + 'self_attn.in_proj_bias'][512:])
    # As the reference calls them: (1, N, C) queries, (400, N, C) bank.
    queries = torch.randn(5, 256, generator=torch.Generator().manual_seed(0))
    bank = model.learner.generator.primitives
    cross = reference_attention(source, prefix + 'multihead_attn.')
    expected, _ = cross(queries[None], bank[:, None].expand(-1, 5, -1),
                        bank[:, None].expand(-1, 5, -1))
    assembled, _ = layer.cross_attn(queries, bank)
    # Unit-scale random weights give large outputs: a relative tolerance (a
    # wrong mapping differs by the outputs' own size).
    close(assembled, expected[0])
    # One token: the dropped query / key rows change nothing.
    self_attn = reference_attention(source, prefix + 'self_attn.')
    expected, _ = self_attn(queries[None], queries[None], queries[None])
    close(layer.self_attention(queries), expected[0])


def test_disentanglement_and_classifier_keys():
    source, _, model = converted_model('zsp', 'pading')
    head = model.learner.disentangle_head
    assert torch.equal(head.decoder[3].weight,
                       source['decoder.decoder.3.weight'])
    assert torch.equal(head.relation_fc.weight, source['relation.fc1.weight'])
    assert torch.equal(head.unrelated_encoder[1].bias,
                       source['projection_unrelated.encoder.1.bias'])
    # ZSP: the same class order on both sides.
    assert torch.equal(model.learner.classifier.weight,
                       source['new_fc.weight'])
    assert torch.equal(model.learner.generator.semantic_proj.weight,
                       source['fc_projection.weight'])


@pytest.mark.parametrize('layout', ['zsi_48_17', 'zss'])
def test_class_rows_follow_the_class_names(layout):
    source, _, model = converted_model(layout, 'pading')
    layout_ = reference_layout(layout)
    reference = list(layout_.reference_classes())
    target = list(layout_.target_classes())
    assert class_row_order(layout_) != list(range(len(target) + 1))
    head = getattr(model, layout_.head)
    for name in (target[0], get_split(layout_.split).unseen[0], target[-1]):
        row = reference.index(name)
        assert torch.equal(model.learner.classifier.weight[target.index(name)],
                           source['new_fc.weight'][row])
        assert torch.equal(head.cls_embed.bias[target.index(name)],
                           source['sem_seg_head.predictor.class_embed.bias']
                           [row])
    assert torch.equal(model.learner.classifier.bias[-1],
                       source['new_fc.bias'][-1])


@pytest.mark.parametrize('layout', ['zsi_48_17', 'zss'])
def test_unpadded_stage1_heads_are_padded_as_the_reference(layout):
    source, result, model = converted_model(layout, 'pretrain')
    layout_ = reference_layout(layout)
    weight = source['sem_seg_head.predictor.class_embed.weight']
    num_seen = layout_.num_seen
    assert weight.shape[0] == num_seen + 1
    target = list(layout_.target_classes())
    cls_embed = getattr(model, layout_.head).cls_embed.weight
    seen = get_split(layout_.split).seen
    assert torch.equal(cls_embed[target.index(seen[3])], weight[3])
    # tools/preprocess_pretrained_weight.py: the old no-object row lands on
    # the first unseen class, the no-object row and the others are zero.
    first_unseen = get_split(layout_.split).unseen[0]
    assert torch.equal(cls_embed[target.index(first_unseen)], weight[-1])
    assert not cls_embed[-1].any()
    assert not cls_embed[target.index(get_split(layout_.split).unseen[1])]\
        .any()
    assert any('padded' in note for note in result.notes)


def test_padded_stage1_checkpoint_with_new_fc():
    # What the reference's preprocess writes: padded rows plus new_fc.
    source = reference_state_dict('zsi_48_17', 'pretrain')
    for param in ('weight', 'bias'):
        key = f'sem_seg_head.predictor.class_embed.{param}'
        padded = torch.zeros((66, ) + source[key].shape[1:])
        padded[:49] = source[key]
        source[key] = padded
        source[f'new_fc.{param}'] = padded.clone()
    assert detect_layout(source) == 'zsi_48_17'
    result = convert_state_dict(source)
    assert set(result.ignored) == {'criterion.empty_weight', 'new_fc.weight',
                                   'new_fc.bias'}
    assert not any('padded' in note for note in result.notes)
    check_state_dict_fits(result.state_dict,
                          build_target_model('zsi_48_17', 'pretrain'))


# -------------------------------------------------------------- refusals
def shapes_only(layout: str, stage: str) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape)
            for key, shape in reference_shapes(layout, stage).items()}


def test_unknown_keys_are_refused_by_name():
    source = shapes_only('zsp', 'pretrain')
    source['sem_seg_head.predictor.extra_head.weight'] = torch.empty(3)
    with pytest.raises(ConversionError, match='extra_head.weight'):
        convert_state_dict(source)
    # Learner keys in a stage-1 conversion fit no rule either.
    source = shapes_only('zsp', 'pading')
    with pytest.raises(ConversionError, match='--stage pretrain, but .* '
                       'pading one'):
        convert_state_dict(source, stage='pretrain')


def test_other_layouts_and_foreign_checkpoints_are_refused():
    with pytest.raises(ConversionError, match='needs 172'):
        convert_state_dict(shapes_only('zsp', 'pading'), layout='zss')
    with pytest.raises(ConversionError, match='class count says zsp'):
        convert_state_dict(shapes_only('zsp', 'pading'), layout='zsi')
    source = shapes_only('zsp', 'pading')
    source['sem_seg_head.predictor.class_embed.weight'] = torch.empty(99, 256)
    with pytest.raises(ConversionError, match='99 rows'):
        convert_state_dict(source)
    # An mmdet checkpoint is not the reference's.
    with pytest.raises(ConversionError, match='no sem_seg_head'):
        convert_state_dict({'backbone.conv1.weight': torch.empty(1)})


def test_fit_check_names_missing_unexpected_and_shapes():
    model = nn.Sequential(nn.Linear(2, 3))
    with pytest.raises(ConversionError, match=r'not filled: 0\.bias'):
        check_state_dict_fits({'0.weight': torch.empty(3, 2)}, model)
    with pytest.raises(ConversionError, match='does not have: extra'):
        check_state_dict_fits({'0.weight': torch.empty(3, 2),
                               '0.bias': torch.empty(3),
                               'extra': torch.empty(1)}, model)
    with pytest.raises(ConversionError, match=r'0\.bias \(4,\) vs \(3,\)'):
        check_state_dict_fits({'0.weight': torch.empty(3, 2),
                               '0.bias': torch.empty(4)}, model)


def test_backbone_check_refuses_other_style_or_eps():
    class Backbone(nn.Module):

        def __init__(self, style: str, eps: float) -> None:
            super().__init__()
            self.style = style
            self.bn = nn.BatchNorm2d(2, eps=eps)

    model = nn.Module()
    model.backbone = Backbone('caffe', 1e-5)
    with pytest.raises(ConversionError, match='STRIDE_IN_1X1'):
        check_reference_backbone(model)
    model.backbone = Backbone('pytorch', 1e-3)
    with pytest.raises(ConversionError, match='eps'):
        check_reference_backbone(model)


# --------------------------------------------------------------- loading
def test_loads_pth_pkl_and_module_prefix(tmp_path):
    state = {'a.weight': torch.arange(3.0)}
    torch.save({'model': state, 'iteration': 5}, tmp_path / 'model.pth')
    assert torch.equal(
        load_reference_checkpoint(str(tmp_path / 'model.pth'))['a.weight'],
        state['a.weight'])
    with open(tmp_path / 'model.pkl', 'wb') as file:
        pickle.dump({'model': {'module.a.weight': np.arange(3.0)},
                     '__author__': 'x'}, file)
    loaded = load_reference_checkpoint(str(tmp_path / 'model.pkl'))
    assert list(loaded) == ['a.weight']
    assert torch.equal(loaded['a.weight'],
                       torch.arange(3.0, dtype=torch.float64))


def test_pkl_with_code_and_empty_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv('MMPADING_TRUST_CHECKPOINTS', raising=False)
    with open(tmp_path / 'code.pkl', 'wb') as file:
        pickle.dump({'model': {'a': np.zeros(1)}, 'hook': Path('x')}, file)
    with pytest.raises(ConversionError, match='MMPADING_TRUST_CHECKPOINTS'):
        load_reference_checkpoint(str(tmp_path / 'code.pkl'))
    torch.save({'model': {}}, tmp_path / 'empty.pth')
    with pytest.raises(ConversionError, match='no state dict'):
        load_reference_checkpoint(str(tmp_path / 'empty.pth'))
    with pytest.raises(FileNotFoundError):
        load_reference_checkpoint(str(tmp_path / 'absent.pth'))
