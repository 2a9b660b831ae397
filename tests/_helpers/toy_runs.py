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


def tiny_stage2_runner(root: str, work_dir, checkpoint: str | None,
                       hooks: list, max_iters: int = 2,
                       name: str = 'pading_toy_stage2'):
    """A runner of a tiny toy stage-2 run without evaluation (the weights
    are what the tests compare), with ``hooks`` after RandomStateHook."""
    from mmengine.runner import Runner

    from mmpading.utils.config_utils import toy_config
    cfg = toy_config(name, root, str(work_dir), **tiny_run_options(max_iters))
    cfg.load_from = checkpoint
    cfg.custom_hooks = [dict(type='RandomStateHook'), *hooks]
    # A visualizer of its own (the configs name it 'visualizer'; a second
    # runner in this process would get the first one, writing scalars.json
    # into the first run's folder).
    cfg.visualizer.name = cfg.experiment_name
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return Runner.from_cfg(cfg)
