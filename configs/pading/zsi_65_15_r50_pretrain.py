# Zero-shot instance segmentation (ZSI / ZSD), 65/15 split, stage 1:
# instance-only Mask2Former R-50 trained on the 65 seen classes of COCO 2014
# (training images with an instance of the 15 unseen classes are dropped).
# The model knows all 80 COCO classes (+ no-object). Everything else is
# zsi_48_17_r50_pretrain.py: this config states the split and its files.
_base_ = './zsi_48_17_r50_pretrain.py'

zero_shot_split = 'zsi_65_15'
# word2vec embeddings (300-d) of the 80 classes, used by stage 2: the ZSI
# release's word_w2v_withbg_65_15.txt, converted and shipped inside the
# package (docs/class_embeddings.md). A file of your own: give its path.
class_embeddings = 'mmpading::class_embeddings/word2vec_zsi_65_15.json'
# The split covers all 80 COCO classes (split_classes_only keeps them, in
# COCO order).
num_classes = 80

model = dict(
    panoptic_head=dict(
        num_things_classes=num_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_classes))

train_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_train2014_seen_zsi_65_15.json',
        zero_shot_split=zero_shot_split))
# The GZSI test file of the ZSI release, evaluated on all 80 classes.
val_dataloader = dict(
    dataset=dict(
        ann_file='annotations/instances_val2014_gzsi_65_15.json',
        zero_shot_split=zero_shot_split))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=_base_.data_root +
    'annotations/instances_val2014_gzsi_65_15.json')
test_evaluator = val_evaluator
