from .checkpoint_diff import state_differences
from .tool_modules import load_tool_module
from .toy_configs import TOY_DATA_ROOT, tiny_run_options, toy_config

__all__ = [
    'TOY_DATA_ROOT', 'load_tool_module', 'state_differences',
    'tiny_run_options', 'toy_config'
]
