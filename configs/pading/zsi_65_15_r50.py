# Zero-shot instance segmentation (ZSI / ZSD), 65/15 split, stage 2
# (PADing): zsi_48_17_r50.py on the 65/15 split. This config states the
# split and its files, as zsi_65_15_r50_pretrain.py does for stage 1; the
# stage-2 settings are those of zsi_48_17_r50.py.
_base_ = './zsi_48_17_r50.py'

# The last checkpoint of zsi_65_15_r50_pretrain.py.
load_from = 'work_dirs/zsi_65_15_r50_pretrain/iter_140350.pth'

zero_shot_split = 'zsi_65_15'
# word2vec embeddings (300-d) of the 80 classes (docs/class_embeddings.md).
class_embeddings = 'mmpading::class_embeddings/word2vec_zsi_65_15.json'
# All 80 COCO classes (split_classes_only keeps them, in COCO order).
num_classes = 80

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes),
    zero_shot=dict(class_embeddings=class_embeddings))

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_train2014_seen_zsi_65_15.json',
        zero_shot_split=zero_shot_split))
val_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_val2014_gzsi_65_15.json',
        zero_shot_split=zero_shot_split))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=_base_.data_root +
    'annotations/instances_val2014_gzsi_65_15.json')
test_evaluator = val_evaluator
