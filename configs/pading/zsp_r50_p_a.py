# ZSP ablation "P+A" (the paper's Table 1): primitives and relation
# alignment, no disentanglement (alignment acts on the synthetic features
# themselves).
_base_ = './zsp_r50.py'

model = dict(zero_shot=dict(disentangle_head=None))
