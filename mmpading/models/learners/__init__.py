from .zero_shot_learner import ZeroShotLearner

__all__ = ['ZeroShotLearner']
