from .hooks import GradientShareHook, RandomStateHook
from .optimizers import PADingOptimWrapperConstructor

__all__ = [
    'GradientShareHook', 'PADingOptimWrapperConstructor', 'RandomStateHook'
]
