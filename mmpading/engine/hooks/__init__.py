from .dataset_meta_hook import DatasetMetaHook
from .gradient_share_hook import GradientShareHook
from .random_state_hook import (
    RandomStateHook,
    StateRestoringIterator,
    capture_random_state,
    restore_random_state,
)

__all__ = [
    'DatasetMetaHook', 'GradientShareHook', 'RandomStateHook',
    'StateRestoringIterator', 'capture_random_state', 'restore_random_state'
]
