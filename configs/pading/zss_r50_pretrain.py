# Zero-shot semantic segmentation (ZSS), stage 1: mmseg's Mask2Former R-50
# trained on the 156 seen classes of COCO-Stuff 164k only (the training
# images without any pixel of the 15 unseen classes). The classifier keeps
# all 171 classes + no-object; unseen classes are never positive.
# Everything not set here is mmseg's Mask2Former R-50 config (AdamW 1e-4,
# backbone lr x0.1, grad clip 0.01, CE 2.0 / no-object 0.1, mask 5.0,
# dice 5.0, 12544 points, poly LR, 8 GPUs x 2 images); the input sizes, the
# schedule length and the weight decay are the PADing reference's
# (configs/semantic-segmentation/Base-COCOStuff-171.yaml).
_base_ = 'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmpading'], allow_failed_imports=False)

data_root = 'data/coco_stuff164k/'
zero_shot_split = 'zss_cocostuff'
# CLIP ViT-B/16 text embeddings (512-d) of the 171 classes, used by stage 2;
# written by tools/misc/build_class_embeddings.py (configs/pading/README.md).
class_embeddings = data_root + 'embeddings/clip_vit-b16_coco_stuff.json'
# The classes are mmseg's COCOStuffDataset's; the data sets put them and
# the split into dataset_meta, which the metrics and stage 2's learner read.
num_classes = 171

# 640 x 640 crops, padded to 640 (Base-COCOStuff-171.yaml:45, 48).
crop_size = (640, 640)
# Upstream's EncoderDecoder and Mask2FormerHead: stage 2 (zss_r50.py) loads
# this model's checkpoint unchanged.
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        num_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])))

# The reference's pipelines (Base-COCOStuff-171.yaml:36-50): shortest edge
# 320-960 (of 640 x 0.5-1.5, step 64), at most 2560; 640 x 640 crops
# without the category-area constraint (SINGLE_CATEGORY_MAX_AREA 1.0);
# SSD colour augmentation (= PhotoMetricDistortion) and flips; padded to
# 640 (SIZE_DIVISIBILITY). Tested at shortest edge 640, at most 2560, with
# PIL's bilinear as detectron2 resizes uint8 images. No reduce_zero_label:
# the *_labelTrainIds.png maps hold 0-170 and 255.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomChoiceResize',
        scales=[int(640 * x * 0.1) for x in range(5, 16)],
        resize_type='ResizeShortestEdge',
        max_size=2560),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True, backend='pillow'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        type='ZeroShotCOCOStuffDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train2017',
            seg_map_path='annotations/train2017'),
        # The images without unseen pixels, written by
        # tools/dataset_converters/prepare_zero_shot_coco.py from
        # annotations/train2017 (configs/pading/README.md);
        # drop_unseen re-checks them (a no-op there, a safeguard without
        # the list, then filtered at start-up).
        ann_file='annotations/train2017_seen_zss_cocostuff.txt',
        zero_shot_split=zero_shot_split,
        zero_shot_mode='drop_unseen',
        pipeline=train_pipeline))
# Generalized setting: evaluation on all 171 classes.
val_dataloader = dict(
    dataset=dict(
        type='ZeroShotCOCOStuffDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        zero_shot_split=zero_shot_split,
        zero_shot_mode='all',
        # An evaluation set: mode 'all' is refused in a training role.
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# mIoU of the seen and the unseen classes and their harmonic mean (the
# split read from the data set's dataset_meta).
val_evaluator = dict(_delete_=True, type='GZSLSemSegMetric')
test_evaluator = val_evaluator
# Stage 1 never predicts unseen classes: keep the best seen mIoU.
default_hooks = dict(checkpoint=dict(save_best='gzsl_semseg/mIoU_seen'))
# Checkpoints keep the random state: a resumed run repeats an uninterrupted
# one (docs/training.md#resuming).
custom_hooks = [dict(type='RandomStateHook')]

# The reference's schedule (Base-COCOStuff-171.yaml:19-32): 120k iterations
# of 16 images, weight decay 1e-4, WarmupPolyLR (power 0.9, no warm-up);
# mmengine's PolyLR reaches 0 at end - 1, hence end=max_iters + 1.
max_iters = 120000
optim_wrapper = dict(optimizer=dict(weight_decay=0.0001))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0,
        power=0.9,
        begin=0,
        end=max_iters + 1,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
