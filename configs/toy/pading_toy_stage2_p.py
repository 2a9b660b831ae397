# Ablation "P": the primitive generator with MMD only.
_base_ = './pading_toy_stage2.py'

model = dict(zero_shot=dict(disentangle_head=None, relation_align_loss=None))
