# Zero-shot panoptic segmentation (ZSP), stage 1: Mask2Former R-50 trained
# on the 119 seen classes of COCO panoptic 2017 only (the 45,617 training
# images without any pixel of the 14 unseen classes). The classifier keeps
# all 133 classes + no-object; unseen classes are never positive.
# Everything not set here is mmdet's Mask2Former R-50 LSJ panoptic config
# (AdamW 1e-4, backbone lr x0.1, grad clip 0.01, CE 2.0 / no-object 0.1,
# mask 5.0, dice 5.0, 12544 points, 8 GPUs x 2 images).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'
custom_imports = dict(imports=['mmpading'], allow_failed_imports=False)

data_root = 'data/coco/'
zero_shot_split = 'zsp_coco'
# CLIP ViT-B/16 text embeddings (512-d) of the 133 classes, used by stage 2;
# written by tools/misc/build_class_embeddings.py (configs/pading/README.md).
class_embeddings = data_root + 'embeddings/clip_vit-b16_coco_panoptic.json'
# The classes are mmdet's CocoPanopticDataset's (133, things first); the
# data sets put them and the split into dataset_meta, which the metrics and
# stage 2's learner read.

# Large-scale jittering at 928 px, the PADing reference's crop size
# (upstream: 1024).
image_size = (928, 928)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=image_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=True,
            seg_pad_value=255)
    ]),
    # Upstream's Mask2Former and heads: stage 2 (zsp_r50.py) loads this
    # model's checkpoint unchanged.
)

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(
        type='LoadPanopticAnnotations',
        with_bbox=True,
        with_mask=True,
        with_seg=True,
        backend_args=None),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(
        type='ZeroShotCocoPanopticDataset',
        # Seen-only annotations written by
        # tools/dataset_converters/prepare_zero_shot_coco.py; drop_unseen
        # re-checks them (a no-op there, a safeguard should the full
        # panoptic_train2017.json be set instead).
        ann_file='annotations/panoptic_train2017_seen_zsp_coco.json',
        zero_shot_split=zero_shot_split,
        zero_shot_mode='drop_unseen',
        pipeline=train_pipeline))
# The reference's test-time resize: detectron2 resizes the uint8 image with
# PIL's bilinear (ResizeShortestEdge(800, 1333), the same size as here);
# OpenCV's bilinear gives other pixels (docs/model_conversion.md).
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True, backend='pillow'),
    dict(type='LoadPanopticAnnotations', backend_args=None),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# Generalized setting: evaluation on all 133 classes.
val_dataloader = dict(
    dataset=dict(
        type='ZeroShotCocoPanopticDataset',
        zero_shot_split=zero_shot_split,
        zero_shot_mode='all',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Seen / unseen / harmonic mean of PQ (ZSP) and of mask and box mAP@0.5 and
# Recall@100 (ZSI / ZSD on the thing classes); stage 2 adds mIoU (ZSS), all
# from the one panoptic model (the paper's Table 2). The metrics read the
# split from the data set (dataset_meta).
panoptic_metric = dict(
    type='GZSLPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/')
instance_metric = dict(
    type='GZSLInstanceMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['segm', 'bbox'])
val_evaluator = [panoptic_metric, instance_metric]
test_evaluator = val_evaluator

# 50 epochs of the 45,617 seen images at 16 images per iteration, with the
# reference's steps (upstream's 368,750 iterations are 50 epochs of all
# 118k images).
max_iters = 140350
param_scheduler = dict(end=max_iters, milestones=[126315, 133333])
interval = 5000
train_cfg = dict(
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
# Checkpoints keep the random state: a resumed run repeats an uninterrupted
# one (docs/training.md#resuming).
custom_hooks = [dict(type='RandomStateHook')]
