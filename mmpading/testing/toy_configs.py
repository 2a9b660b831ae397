"""Toy configs pointed at another data root, shrunk for tests and tools."""
from __future__ import annotations

import os.path as osp
import uuid
from typing import Any

from mmengine.config import Config

PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# A source checkout has configs/ beside the package; an installed wheel
# ships them as package data for mim.
TOY_CONFIG_DIR = next(
    (path for path in (osp.join(osp.dirname(PACKAGE_ROOT), 'configs', 'toy'),
                       osp.join(PACKAGE_ROOT, '.mim', 'configs', 'toy'))
     if osp.isdir(path)), osp.join(osp.dirname(PACKAGE_ROOT), 'configs',
                                   'toy'))
TOY_DATA_ROOT = 'data/toy/'


def _rebase(value: Any, data_root: str) -> Any:
    """Replace the default toy data root in every string of a config."""
    if isinstance(value, str) and value.startswith(TOY_DATA_ROOT):
        return osp.join(data_root, value[len(TOY_DATA_ROOT):])
    if isinstance(value, dict):
        return type(value)(
            {key: _rebase(item, data_root)
             for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return type(value)(_rebase(item, data_root) for item in value)
    return value


def load_rebased_config(path: str,
                        data_root: str | None = None,
                        work_dir: str | None = None,
                        **options: Any) -> Config:
    """Load a config file, with the toy data root replaced.

    Args:
        path (str): Config file.
        data_root (str, optional): Folder that replaces ``data/toy/`` in
            every string of the config.
        work_dir (str, optional): Work directory.
        **options: Dotted overrides, as ``--cfg-options`` takes them.

    Returns:
        Config: The loaded config.
    """
    cfg = Config.fromfile(path)
    if data_root is not None:
        rebased = _rebase(cfg.to_dict(), data_root.rstrip('/') + '/')
        cfg = Config(rebased, filename=cfg.filename)
    if work_dir is not None:
        cfg.work_dir = work_dir
    if options:
        cfg.merge_from_dict(options)
    return cfg


def toy_config(name: str,
               data_root: str | None = None,
               work_dir: str | None = None,
               **options: Any) -> Config:
    """Load ``configs/toy/<name>.py`` for another data root.

    Args:
        name (str): Config name without ``.py``, e.g.
            ``'pading_toy_stage1'``.
        data_root (str, optional): Folder of a generated toy data set that
            replaces ``data/toy/`` everywhere in the config.
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
