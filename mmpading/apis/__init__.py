from .model_loading import (
                              build_eval_dataset,
                              collate,
                              config_path,
                              load_model,
                              load_trained_model,
                              resolve_config,
                              toy_config_names,
)
from .pading_inferencer import PADingInferencer
from .toy_experiments import (
                              WorkDirInUseError,
                              evaluate_toy_config,
                              last_checkpoint,
                              scale_schedule,
                              train_toy_config,
)

__all__ = [
    'evaluate_toy_config', 'last_checkpoint', 'scale_schedule',
    'train_toy_config', 'WorkDirInUseError', 'build_eval_dataset',
    'collate', 'load_model',
    'load_trained_model', 'resolve_config', 'toy_config_names',
    'config_path', 'PADingInferencer'
]
