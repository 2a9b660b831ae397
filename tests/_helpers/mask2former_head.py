"""A small Mask2Former head config and its input features, for the tests
of mmdet's and mmseg's heads (both read the same keys)."""
import torch
from mmengine.config import ConfigDict

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
