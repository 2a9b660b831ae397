# Stage 1 on the toy data set: a small Mask2Former trained from scratch on
# seen classes only (images with any unseen pixel are dropped).
# Everything not set here is mmdet's Mask2Former panoptic config: stage 1 is
# upstream's Mask2Former, heads included; stage 2 (PADing) loads its
# checkpoint unchanged.
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'
custom_imports = dict(imports=['mmpading'], allow_failed_imports=False)

data_root = 'data/toy/'
# Written by tools/dataset_converters/make_toy_dataset.py (defaults).
zero_shot_split = data_root + 'split.json'
class_embeddings = data_root + 'class_embeddings.json'
# The classes are the data set's (its metainfo.json: 20 things, then 9
# stuff); the data sets put them and the split into dataset_meta, which the
# metrics and stage 2's learner read.
num_things_classes = 20
num_stuff_classes = 9
num_classes = num_things_classes + num_stuff_classes
feat_channels = 128

model = dict(
    # Toy images are 128 px: no padding to 1024.
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(
        depth=18,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    panoptic_head=dict(
        in_channels=[64, 128, 256, 512],
        feat_channels=feat_channels,
        out_channels=feat_channels,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=30,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                    ffn_cfg=dict(
                        embed_dims=feat_channels,
                        feedforward_channels=512))),
            positional_encoding=dict(num_feats=feat_channels // 2)),
        positional_encoding=dict(num_feats=feat_channels // 2),
        transformer_decoder=dict(
            num_layers=6,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                ffn_cfg=dict(
                    embed_dims=feat_channels, feedforward_channels=512))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=1024),
    # object_mask_thr: upstream keeps panoptic segments scoring > 0.8; the
    # small toy model is less confident (classic toy classes, stage 1: seen
    # PQ 71.4 at 0.8, 74.2 at 0.5).
    test_cfg=dict(
        instance_on=True,
        panoptic_on=True,
        object_mask_thr=0.5))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='LoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', with_seg=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='ZeroShotCocoPanopticDataset',
        data_root=data_root,
        metainfo='metainfo.json',
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        zero_shot_split=zero_shot_split,
        zero_shot_mode='drop_unseen',
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='ZeroShotCocoPanopticDataset',
        data_root=data_root,
        metainfo='metainfo.json',
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        zero_shot_split=zero_shot_split,
        zero_shot_mode='all',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Stage 1 is scored on panoptic and instance outputs (upstream Mask2Former
# has no semantic output); stage 2 adds the semantic metric. The metrics
# read the split from the data set (its seen_classes / unseen_classes in
# dataset_meta).
panoptic_metric = dict(
    type='GZSLPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/',
    nproc=1)
instance_metric = dict(
    type='GZSLInstanceMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['segm', 'bbox'])
val_evaluator = [panoptic_metric, instance_metric]
test_evaluator = val_evaluator

# From scratch on a small set: a higher learning rate than upstream's
# fine-tuning of ImageNet weights, no backbone multiplier, looser clipping.
optim_wrapper = dict(
    optimizer=dict(lr=5e-4),
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=1.0, decay_mult=1.0)}),
    clip_grad=dict(max_norm=1.0))
max_iters = 600
param_scheduler = dict(end=max_iters, milestones=[500])
train_cfg = dict(
    max_iters=max_iters,
    val_interval=max_iters,
    dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=2))
log_processor = dict(window_size=20)
# Checkpoints keep the random state: a resumed run repeats an uninterrupted
# one (docs/training.md#resuming).
custom_hooks = [dict(type='RandomStateHook')]
# Overlays show ground truth and the panoptic prediction side by side.
visualizer = dict(type='PanopticOverlayVisualizer')
