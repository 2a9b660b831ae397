"""Toy configs pointed at another data root, shrunk for tests and tools."""
from __future__ import annotations

import os.path as osp
import uuid
from typing import Any

from mmengine.config import Config

# Re-exported: tests and tools import them from here.
from mmpading.utils.config_utils import (  # noqa: F401
    PACKAGE_ROOT,
    TOY_CONFIG_DIR,
    TOY_DATA_ROOT,
    load_rebased_config,
)


def toy_config(name: str,
               data_root: str | None = None,
               work_dir: str | None = None,
               **options: Any) -> Config:
    """Load ``configs/toy/<name>.py`` for another data root.

    Args:
        name (str): Config name without ``.py``, e.g.
            ``'pading_toy_stage1'``.
        data_root (str, optional): Folder of a generated toy data set that
            replaces ``data/toy/`` everywhere in the config
            (:func:`mmpading.utils.config_utils.rebase_data_root`).
        work_dir (str, optional): Work directory.
        **options: Dotted overrides, as ``--cfg-options`` takes them.

    Returns:
        Config: The loaded config.
    """
    return load_rebased_config(
        osp.join(TOY_CONFIG_DIR, f'{name}.py'), data_root, work_dir,
        **options)


def tiny_run_options(max_iters: int = 2) -> dict:
    """Overrides that make a toy config train and evaluate in seconds."""
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
