from .compat import (
                     CheckpointLoadError,
                     apply_torch_load_compat,
                     mmengine_safe_globals,
)
from .config_utils import DataRootError, load_rebased_config, rebase_data_root
from .dist_compat import process_group_cleanup, setup_cpu_distributed

__all__ = [
    'CheckpointLoadError', 'DataRootError', 'apply_torch_load_compat',
    'load_rebased_config', 'mmengine_safe_globals', 'process_group_cleanup',
    'rebase_data_root', 'setup_cpu_distributed'
]
