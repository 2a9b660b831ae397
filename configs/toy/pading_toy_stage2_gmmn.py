# Ablation "GMMN": an MLP generator on (semantic embedding, noise), MMD only.
_base_ = './pading_toy_stage2.py'

model = dict(
    zero_shot=dict(
        generator=dict(type='GMMNGenerator'),
        disentangle_head=None,
        relation_align_loss=None))
