"""Options that make a toy config train and evaluate in seconds."""
from __future__ import annotations

import uuid


def tiny_run_options(max_iters: int = 2) -> dict:
    """Dotted overrides (as ``--cfg-options`` takes them) of a toy config
    for a run of ``max_iters`` iterations with small batches."""
    return {
        # A unique name: runners in one process must not share a message
        # hub or visualizer.
        'experiment_name': f'tiny_{uuid.uuid4().hex[:12]}',
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': max_iters,
        'train_dataloader.batch_size': 4,
        'val_dataloader.batch_size': 3,
        'test_dataloader.batch_size': 3,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'randomness': dict(seed=0),
    }
