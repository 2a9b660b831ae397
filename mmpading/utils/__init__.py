from .compat import apply_torch_load_compat, mmengine_safe_globals

__all__ = ['apply_torch_load_compat', 'mmengine_safe_globals']
