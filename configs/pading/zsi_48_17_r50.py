# Zero-shot instance segmentation (ZSI / ZSD), 48/17 split, stage 2
# (PADing): the stage-1 segmenter is frozen; a primitive generator with
# relation alignment and feature disentanglement synthesises unseen-class
# features from word2vec embeddings, and a new classifier, initialised from
# stage 1's cls_embed, is trained on real and synthetic features.
# Hyperparameters are the instance ones of the PADing reference
# (lambda 1e-3, unseen class weight 2.0, 4k iterations).
# Reference: 12 images per iteration on one GPU, AMP (`--amp`); on N GPUs
# the same 12 images are shared and the learner's losses cover all of them
# (configs/pading/README.md, "Other GPU counts").
_base_ = './zsi_48_17_r50_pretrain.py'

# The last checkpoint of zsi_48_17_r50_pretrain.py.
load_from = 'work_dirs/zsi_48_17_r50_pretrain/iter_140350.pth'

model = dict(
    type='PADing',
    # Stage 2 matches queries to segments with class cost 2.0 (CLASS_WEIGHT
    # of the reference's configs/instance-segmentation/PADing.yaml:55), the
    # stage-1 value.
    query_class_cost=2.0,
    panoptic_fusion_head=dict(type='UniversalFusionHead'),
    # What differs from ZeroShotLearner's defaults (the panoptic setting):
    # the reference's instance setting.
    zero_shot=dict(
        type='ZeroShotLearner',
        class_embeddings={{_base_.class_embeddings}},
        # The reference's instance setting relates seen features to the
        # seen classes only (its word2vec matrix, PADing_model.py:134-139).
        disentangle_head=dict(seen_relation_classes='seen'),
        # STRUCTURE_WEIGHT and CLASS_ECO of the reference's
        # configs/instance-segmentation/PADing.yaml:43,45.
        lambda_weight=1e-3,
        unseen_class_weight=2.0))

# The frozen segmenter and the learner are wrapped separately for DDP.
model_wrapper_cfg = dict(
    type='MMSeparateDistributedDataParallel',
    broadcast_buffers=False,
    find_unused_parameters=True)

# Images per iteration over all processes (the reference's IMS_PER_BATCH):
# tools/train.py gives each of N processes its share as its
# train_dataloader.batch_size (12 on 8 GPUs: 2 on ranks 0-3, 1 on 4-7).
global_batch_size = 12
train_dataloader = dict(batch_size=global_batch_size)

# One optimizer per group of the learner's modules
# (ZeroShotLearner.optimizer_groups), the paper's: the generator with the
# disentanglement head Adam 5e-4, the classifier SGD 1e-3, momentum 0.9,
# wd 5e-4 (PADingOptimWrapperConstructor's defaults).
optim_wrapper = dict(
    _delete_=True, constructor='PADingOptimWrapperConstructor')

max_iters = 4000
# Both learning rates stay constant, as in the reference: its instance
# PADing.yaml sets no STEPS, and the inherited (327778, 355092) lie beyond
# MAX_ITER 4000, which detectron2 ignores; its 10-iteration warm-up has
# factor 1.0 (configs/instance-segmentation/PADing.yaml:9-12,
# Base-COCO-InstanceSegmentation.yaml:22). The former drops x0.1 at 2800 /
# 3700: param_scheduler.generator=[dict(type='MultiStepLR', by_epoch=False,
# begin=0, end=4000, milestones=[2800, 3700], gamma=0.1)].
param_scheduler = dict(_delete_=True, generator=[], classifier=[])
train_cfg = dict(
    max_iters=max_iters, val_interval=max_iters, dynamic_intervals=None)
# DatasetMetaHook gives the learner the data set's classes and split
# (dataset_meta), as the metrics get them; a default hook, so that a config
# that sets its own custom_hooks keeps it.
default_hooks = dict(
    checkpoint=dict(interval=2000),
    dataset_meta=dict(type='DatasetMetaHook'))
# Learning rates are set for 12 images per iteration, on any number of GPUs
# (with another global_batch_size, `--cfg-options auto_scale_lr.enable=True`
# rescales both optimizers).
auto_scale_lr = dict(base_batch_size=12)
# Every logger interval (50 iterations), each generator loss term's share of
# the generator's gradient norm (grad_share/* in the log and scalars.json;
# docs/method.md#how-much-a-and-d-act-the-gradient-share).
custom_hooks = [dict(type='RandomStateHook'), dict(type='GradientShareHook')]
