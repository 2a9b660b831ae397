# Zero-shot instance segmentation (ZSI / ZSD), 48/17 split, stage 1:
# instance-only Mask2Former R-50 trained on the 48 seen classes of COCO 2014
# (training images with an instance of the 17 unseen classes are dropped).
# The model knows the split's 65 classes (+ no-object); the other 15 COCO
# classes belong to neither group and are not loaded.
# Everything not set here is mmdet's Mask2Former R-50 LSJ instance config
# (AdamW 1e-4, backbone lr x0.1, grad clip 0.01, CE 2.0 / no-object 0.1,
# mask 5.0, dice 5.0, 12544 points, 8 GPUs x 2 images).
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'
custom_imports = dict(imports=['mmpading'], allow_failed_imports=False)

data_root = 'data/coco/'
zero_shot_split = 'zsi_48_17'
# word2vec embeddings (300-d) of the 65 classes, used by stage 2: the ZSI
# release's word_w2v_withbg_48_17.txt, converted and shipped inside the
# package (docs/class_embeddings.md). A file of your own: give its path.
class_embeddings = 'mmpading::class_embeddings/word2vec_zsi_48_17.json'
# The data sets load the split's 65 classes only (split_classes_only), in
# COCO order (mmdet numbers the classes of a subset in the annotation
# file's order): split.ordered_like(CocoDataset.METAINFO['classes']).
num_classes = 65

# Large-scale jittering at 960 px, the PADing reference's crop size
# (upstream: 1024).
image_size = (960, 960)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=image_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=False)
    ]),
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    dataset=dict(
        type='ZeroShotCocoDataset',
        # Seen-only annotations written by
        # tools/dataset_converters/prepare_zero_shot_coco.py; drop_unseen
        # re-checks them (a safeguard should the full
        # instances_train2014.json be set instead).
        ann_file='annotations/instances_train2014_seen_zsi_48_17.json',
        data_prefix=dict(img='train2014/'),
        zero_shot_split=zero_shot_split,
        split_classes_only=True,
        zero_shot_mode='drop_unseen',
        pipeline=train_pipeline))
# The reference's test-time resize: detectron2 resizes the uint8 image with
# PIL's bilinear (ResizeShortestEdge(800, 1333), the same size as here);
# upstream's float32 image and OpenCV's bilinear give other pixels
# (docs/model_conversion.md).
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# Generalized setting: the GZSI test file of the ZSI release (COCO val2014),
# evaluated on all 65 classes.
val_dataloader = dict(
    dataset=dict(
        type='ZeroShotCocoDataset',
        ann_file='annotations/instances_val2014_gzsi_48_17.json',
        data_prefix=dict(img='val2014/'),
        zero_shot_split=zero_shot_split,
        split_classes_only=True,
        zero_shot_mode='all',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# Seen / unseen / harmonic mean of mAP@0.5 and Recall@100, on masks (ZSI)
# and on boxes (ZSD); the split read from the data set (dataset_meta).
val_evaluator = dict(
    _delete_=True,
    type='GZSLInstanceMetric',
    ann_file=data_root + 'annotations/instances_val2014_gzsi_48_17.json',
    metric=['segm', 'bbox'])
test_evaluator = val_evaluator

# The PADing reference's schedule (the same as for panoptic stage 1).
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
