"""Helpers that only the tests use (``tests/`` is on pytest's path:
``pythonpath`` in pyproject.toml)."""
from .checkpoint_diff import state_differences
from .stage2_models import build_with_dataset_meta
from .tool_modules import load_tool_module
from .toy_runs import tiny_run_options, tiny_stage2_runner

__all__ = [
    'build_with_dataset_meta', 'load_tool_module', 'state_differences',
    'tiny_run_options', 'tiny_stage2_runner'
]
