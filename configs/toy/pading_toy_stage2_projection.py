# Ablation "projection": no generator; the classifier scores queries against
# the fixed class embeddings through a learned projection (seen data only).
_base_ = './pading_toy_stage2.py'

model = dict(
    zero_shot=dict(
        classifier=dict(type='SemanticProjectionClassifier'),
        generator=None,
        disentangle_head=None,
        relation_align_loss=None))
param_scheduler = dict(_delete_=True, classifier=[])
