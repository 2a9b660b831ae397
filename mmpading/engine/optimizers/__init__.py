from .pading_optim_wrapper_constructor import PADingOptimWrapperConstructor

__all__ = ['PADingOptimWrapperConstructor']
