from .hooks import RandomStateHook
from .optimizers import PADingOptimWrapperConstructor

__all__ = ['PADingOptimWrapperConstructor', 'RandomStateHook']
