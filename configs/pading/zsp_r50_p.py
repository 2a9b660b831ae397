# ZSP ablation "P" (the paper's Table 1): the primitive generator trained
# with MMD only (no alignment, no disentanglement).
_base_ = './zsp_r50.py'

model = dict(zero_shot=dict(disentangle_head=None, relation_align_loss=None))
