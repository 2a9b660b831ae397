# ZSP ablation "projection" (the paper's Table 1): no generator; queries are
# scored against the fixed CLIP class embeddings through a learned
# projection, fitted on seen classes only. Paper: HM PQ 0.0.
_base_ = './zsp_r50.py'

model = dict(
    zero_shot=dict(
        classifier=dict(type='SemanticProjectionClassifier'),
        generator=None,
        disentangle_head=None,
        relation_align_loss=None))
# Only the classifier trains: no generator schedule.
param_scheduler = dict(_delete_=True, classifier=[])
