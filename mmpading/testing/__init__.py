from .toy_configs import TOY_DATA_ROOT, tiny_run_options, toy_config

__all__ = ['TOY_DATA_ROOT', 'tiny_run_options', 'toy_config']
