# Zero-shot panoptic segmentation (ZSP), stage 2 (PADing): the stage-1
# segmenter is frozen; a primitive generator with relation alignment (A) and
# feature disentanglement (D) synthesises unseen-class features from CLIP
# text embeddings, and a new classifier, initialised from stage 1's
# cls_embed, is trained on real and synthetic features. The learner's parts
# and hyperparameters are ZeroShotLearner's defaults, the panoptic ones of
# the PADing reference (docs/parity.md).
# Reference: 12 images per iteration on one GPU, AMP (`--amp`); on N GPUs
# the same 12 images are shared and the learner's losses cover all of them
# (configs/pading/README.md, "Other GPU counts").
_base_ = './zsp_r50_pretrain.py'

# The last checkpoint of zsp_r50_pretrain.py.
load_from = 'work_dirs/zsp_r50_pretrain/iter_140350.pth'

model = dict(
    type='PADing',
    # Stage 2 matches queries to segments with class cost 5.0 (CLASS_WEIGHT
    # of the reference's configs/panoptic-segmentation/PADing.yaml:54;
    # stage 1: 2.0); mask and dice costs stay 5.0.
    query_class_cost=5.0,
    # Panoptic, instance and semantic outputs from the one model.
    panoptic_fusion_head=dict(type='UniversalFusionHead'),
    test_cfg=dict(semantic_on=True),
    zero_shot=dict(
        type='ZeroShotLearner',
        class_embeddings={{_base_.class_embeddings}}))

val_evaluator = [
    {{_base_.panoptic_metric}}, {{_base_.instance_metric}},
    dict(type='GZSLSemSegMetric')
]
test_evaluator = val_evaluator

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

max_iters = 20000
# The generator's learning rate drops x0.1 at the reference's steps; the
# classifier's stays constant.
param_scheduler = dict(
    _delete_=True,
    generator=[
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=max_iters,
            milestones=[14000, 18500],
            gamma=0.1)
    ],
    classifier=[])
train_cfg = dict(
    max_iters=max_iters, val_interval=max_iters, dynamic_intervals=None)
# Learning rates are set for 12 images per iteration, on any number of GPUs
# (with another global_batch_size, `--cfg-options auto_scale_lr.enable=True`
# rescales both optimizers).
auto_scale_lr = dict(base_batch_size=12)
# DatasetMetaHook gives the learner the data set's classes and split
# (dataset_meta), as the metrics get them; a default hook, so that a config
# that sets its own custom_hooks keeps it.
default_hooks = dict(dataset_meta=dict(type='DatasetMetaHook'))
# Every logger interval (50 iterations), each generator loss term's share of
# the generator's gradient norm (grad_share/* in the log and scalars.json;
# docs/method.md#how-much-a-and-d-act-the-gradient-share).
custom_hooks = [dict(type='RandomStateHook'), dict(type='GradientShareHook')]
