# ZSP ablation "GMMN" (the paper's Table 1): an MLP generator on (semantic
# embedding, noise) trained with MMD only. Paper: HM PQ 8.7.
_base_ = './zsp_r50.py'

model = dict(
    zero_shot=dict(
        generator=dict(type='GMMNGenerator'),
        disentangle_head=None,
        relation_align_loss=None))
