from .optimizers import PADingOptimWrapperConstructor

__all__ = ['PADingOptimWrapperConstructor']
