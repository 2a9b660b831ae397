# Stage 2 (PADing) on the toy data set: the stage-1 segmenter is frozen; a
# primitive generator with relation alignment and disentanglement
# synthesises unseen-class features and a new classifier is trained on real
# and synthetic features. The learner's parts and hyperparameters are
# ZeroShotLearner's defaults, the paper's panoptic ones (docs/method.md,
# docs/parity.md).
_base_ = './pading_toy_stage1.py'

load_from = 'work_dirs/pading_toy_stage1/iter_600.pth'

model = dict(
    type='PADing',
    zero_shot=dict(
        type='ZeroShotLearner',
        class_embeddings={{_base_.class_embeddings}}),
    # Panoptic, instance and semantic outputs from the one model.
    panoptic_fusion_head=dict(type='UniversalFusionHead'),
    test_cfg=dict(semantic_on=True))

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

# One optimizer per group of the learner's modules
# (ZeroShotLearner.optimizer_groups), the paper's: the generator with the
# disentanglement head Adam 5e-4, the classifier SGD 1e-3, momentum 0.9,
# wd 5e-4 (PADingOptimWrapperConstructor's defaults).
optim_wrapper = dict(
    _delete_=True, constructor='PADingOptimWrapperConstructor')

# 1,000 iterations (the paper's schedule shape: the generator's LR step at
# 80%): on the toy set unseen PQ appears between iterations 250 and 750;
# at 300 the classifier has not yet moved to the synthetic unseen features
# (docs/results/README.md#why-the-grid-class-set).
max_iters = 1000
param_scheduler = dict(
    _delete_=True,
    generator=[
        dict(
            type='MultiStepLR',
            by_epoch=False,
            begin=0,
            end=max_iters,
            milestones=[int(max_iters * 0.8)],
            gamma=0.1)
    ],
    classifier=[])
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# DatasetMetaHook gives the learner the data set's classes and split
# (dataset_meta), as the metrics get them; a default hook, so that a config
# that sets its own custom_hooks keeps it.
default_hooks = dict(
    checkpoint=dict(interval=100), dataset_meta=dict(type='DatasetMetaHook'))
# Every logger interval (20 iterations), each generator loss term's share of
# the generator's gradient norm (grad_share/* in the log and scalars.json;
# docs/method.md#how-much-a-and-d-act-the-gradient-share).
custom_hooks = [dict(type='RandomStateHook'), dict(type='GradientShareHook')]
