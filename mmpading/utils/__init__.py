from .compat import apply_torch_load_compat, mmengine_safe_globals
from .dist_compat import apply_cpu_dist_compat, process_group_cleanup

__all__ = [
    'apply_cpu_dist_compat', 'apply_torch_load_compat',
    'mmengine_safe_globals', 'process_group_cleanup'
]
