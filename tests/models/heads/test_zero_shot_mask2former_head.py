"""The head names of earlier mmpading configs: upstream heads plus
``query_class_cost``, buildable from any OpenMMLab config."""
import pytest
import torch
from mmdet import registry as mmdet_registry
from mmdet.models.dense_heads import Mask2FormerHead
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry
from mmseg.models.decode_heads import Mask2FormerHead as SegMask2FormerHead

import mmpading  # noqa: F401

FEAT = 32


def head_cfg(head_type: str, **extra) -> ConfigDict:
    layer = dict(
        self_attn_cfg=dict(embed_dims=FEAT, num_heads=2, batch_first=True),
        cross_attn_cfg=dict(embed_dims=FEAT, num_heads=2, batch_first=True),
        ffn_cfg=dict(embed_dims=FEAT, feedforward_channels=64))
    # Upstream heads read their sub-configs by attribute.
    return ConfigDict(
        type=head_type,
        in_channels=[16, 16, 16, 16],
        strides=[4, 8, 16, 32],
        feat_channels=FEAT,
        out_channels=FEAT,
        num_queries=6,
        num_transformer_feat_level=3,
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
            class_weight=[1.0] * 4 + [0.1]),
        loss_mask=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                       reduction='mean', loss_weight=5.0),
        loss_dice=dict(type='mmdet.DiceLoss', use_sigmoid=True, activate=True,
                       reduction='mean', naive_dice=True, eps=1.0,
                       loss_weight=5.0),
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
            sampler=dict(type='mmdet.MaskPseudoSampler')),
        **extra)


def features(batch: int = 2) -> list:
    torch.manual_seed(0)
    return [torch.randn(batch, 16, 64 // s, 64 // s) for s in (4, 8, 16, 32)]


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_heads_build_from_an_outside_config(tmp_path, scope):
    """A user's config that only knows mmpading through custom_imports."""
    heads = dict(
        det_head=dict(
            head_cfg('ZeroShotMask2FormerHead', num_things_classes=3,
                     num_stuff_classes=1, query_class_cost=5.0)),
        seg_head=dict(
            head_cfg('ZeroShotMask2FormerSegHead', num_classes=4,
                     align_corners=False, query_class_cost=5.0)))
    path = tmp_path / f'my_{scope}_config.py'
    path.write_text(
        "custom_imports = dict(imports=['mmpading'], "
        "allow_failed_imports=False)\n"
        f"default_scope = '{scope}'\n" + Config(heads).pretty_text)
    cfg = Config.fromfile(str(path))
    upstream = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}[scope]
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        for key, name in (('det_head', 'ZeroShotMask2FormerHead'),
                          ('seg_head', 'ZeroShotMask2FormerSegHead')):
            head = upstream.MODELS.build(cfg[key])
            assert type(head).__name__ == name
            assert isinstance(head, (Mask2FormerHead, SegMask2FormerHead))
            assert head.query_class_cost == 5.0
