# ZSP stage 1 with an mmpretrain backbone: ConvNeXt-T instead of ResNet-50.
# Everything else is zsp_r50_pretrain.py; stage 2 inherits zsp_r50.py the
# same way (set load_from to this config's checkpoint).
_base_ = '../zsp_r50_pretrain.py'
custom_imports = dict(
    imports=['mmpading', 'mmpretrain.models'], allow_failed_imports=False)

# ImageNet-1k ConvNeXt-T weights in mmpretrain's format: a path you provide
# (nothing is downloaded).
pretrained = 'checkpoints/convnext-tiny_32xb128_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='tiny',
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained,
            prefix='backbone.')),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]))
