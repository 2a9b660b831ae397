# Zero-shot semantic segmentation (ZSS), stage 2 (PADing): the stage-1
# segmenter is frozen; a primitive generator with relation alignment (A) and
# feature disentanglement (D) synthesises unseen-class features from CLIP
# text embeddings, and a new classifier, initialised from stage 1's
# cls_embed, is trained on real and synthetic features. Hyperparameters are
# the semantic ones of the PADing reference (lambda 1e-3, unseen class
# weight 5.0, all 15 unseen classes per iteration, 2k iterations).
# Reference: 12 images per iteration on one GPU, AMP (`--amp`); on N GPUs
# the same 12 images are shared and the learner's losses cover all of them
# (configs/pading/README.md, "Other GPU counts").
_base_ = './zss_r50_pretrain.py'

# The last checkpoint of zss_r50_pretrain.py.
load_from = 'work_dirs/zss_r50_pretrain/iter_160000.pth'

model = dict(
    type='PADingSegmentor',
    # Stage 2 matches queries to segments with class cost 5.0 (CLASS_WEIGHT
    # of the reference's configs/semantic-segmentation/PADing.yaml:52;
    # stage 1: 2.0); mask and dice costs stay 5.0.
    query_class_cost=5.0,
    # What differs from ZeroShotLearner's defaults (the panoptic setting):
    # the reference's semantic setting.
    zero_shot=dict(
        type='ZeroShotLearner',
        class_embeddings={{_base_.class_embeddings}},
        # TRANS_DROP_RATE of the reference's semantic setting
        # (configs/semantic-segmentation/PADing.yaml:41).
        generator=dict(dropout=0.3),
        # The reference's CE on synthetic seen features scores the 156 seen
        # classes only (new_fc(...)[:, :156], PADing/PADing_model.py:353).
        synthetic_cls_logits='seen',
        # DROP_OUT_ED of the reference's semantic setting: its default 0.2
        # (PADing/config.py:41; 0.1 in the panoptic / instance configs).
        disentangle_head=dict(dropout=0.2),
        lambda_weight=1e-3,
        # Every unseen class once per classifier step: the reference's
        # randperm(15)[:17] (NUM_CHOOSE 17, PADing/config.py:39,
        # PADing_model.py:434) is the 15 classes in random order.
        num_unseen_per_iter=None))

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

max_iters = 2000
# The generator's learning rate follows the reference's WarmupPolyLR
# (configs/semantic-segmentation/Base-COCOStuff-171.yaml:28, PADing.yaml:
# 9-11; power 0.9 and constant ending 0 of detectron2's DeepLab config):
# lr(t) = 5e-4 x warm-up(t) x (1 - t / 2000) ** 0.9. Its warm-up factor
# is 1.0, so the 10-iteration LinearLR is a no-op, kept for the record.
# mmengine's PolyLR reaches 0 at end - 1, hence end=max_iters + 1.
# The classifier's learning rate stays constant (the reference schedules
# the generator's optimizer only, engine_ours/defaults.py:403). The former
# schedule: x0.1 at 1400 / 1850 (MultiStepLR).
param_scheduler = dict(
    _delete_=True,
    generator=[
        dict(
            type='LinearLR',
            start_factor=1.0,
            by_epoch=False,
            begin=0,
            end=10),
        dict(
            type='PolyLR',
            power=0.9,
            eta_min=0.0,
            by_epoch=False,
            begin=0,
            end=max_iters + 1),
    ],
    classifier=[])
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# DatasetMetaHook gives the learner the data set's classes and split
# (dataset_meta), as the metrics get them; a default hook, so that a config
# that sets its own custom_hooks keeps it.
default_hooks = dict(
    checkpoint=dict(interval=1000, save_best='gzsl_semseg/mIoU_hm'),
    dataset_meta=dict(type='DatasetMetaHook'))
# Learning rates are set for 12 images per iteration, on any number of GPUs
# (with another global_batch_size, `--cfg-options auto_scale_lr.enable=True`
# rescales both optimizers).
auto_scale_lr = dict(base_batch_size=12)
# Every logger interval (50 iterations), each generator loss term's share of
# the generator's gradient norm (grad_share/* in the log and scalars.json;
# docs/method.md#how-much-a-and-d-act-the-gradient-share).
custom_hooks = [dict(type='RandomStateHook'), dict(type='GradientShareHook')]
