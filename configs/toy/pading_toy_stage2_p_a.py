# Ablation "P+A": primitives and relation alignment, no disentanglement
# (alignment acts on the synthetic features themselves).
_base_ = './pading_toy_stage2.py'

model = dict(zero_shot=dict(disentangle_head=None))
