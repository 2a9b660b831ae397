from .two_stage_mixin import LEARNER_DDP_PREFIX, TwoStageZeroShotMixin

__all__ = ['LEARNER_DDP_PREFIX', 'TwoStageZeroShotMixin']
