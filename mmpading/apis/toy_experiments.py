"""Train and evaluate toy configs from Python (demo, ablation, figures)."""
from __future__ import annotations

import os.path as osp
import shutil
import uuid
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

from mmpading.testing import toy_config


def last_checkpoint(work_dir: str) -> str | None:
    """The checkpoint named by ``<work_dir>/last_checkpoint``, if any."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        checkpoint = f.read().strip()
    return checkpoint if osp.isfile(checkpoint) else None


def scale_schedule(cfg: Config, max_iters: int) -> None:
    """Shorten or lengthen a toy config's schedule, milestones included.

    Stage 1 has one scheduler; stage 2 a list per optimizer.
    """
    default_iters = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = max_iters
    cfg.default_hooks.checkpoint.interval = max_iters
    schedulers = cfg.param_scheduler
    groups = [[schedulers]] if 'type' in schedulers else schedulers.values()
    for group in groups:
        for scheduler in group:
            scheduler['end'] = max_iters
            scheduler['milestones'] = [
                max(1, round(m * max_iters / default_iters))
                for m in scheduler['milestones']
            ]


def _unique_name(name: str) -> str:
    # Runners in one process must not share a message hub or visualizer.
    return f'{name}_{uuid.uuid4().hex[:8]}'


def train_toy_config(name: str,
                     work_dir: str,
                     data_root: str,
                     seed: int = 0,
                     max_iters: int | None = None,
                     load_from: str | None = None,
                     reuse: bool = False,
                     options: dict[str, Any] | None = None) -> str:
    """Train ``configs/toy/<name>.py`` without evaluation.

    Args:
        name (str): Toy config name, e.g. ``'pading_toy_stage2_gmmn'``.
        work_dir (str): Work directory; emptied first unless reused.
        data_root (str): Toy data set folder.
        seed (int): ``randomness.seed``.
        max_iters (int, optional): Another schedule length (milestones are
            scaled). None: the config's.
        load_from (str, optional): Checkpoint to start from (stage 2: the
            stage-1 checkpoint).
        reuse (bool): Return the work dir's final checkpoint instead of
            training again, when there is one; resume an interrupted run
            from its last checkpoint.
        options (dict, optional): Dotted config overrides.

    Returns:
        str: The final checkpoint.
    """
    cfg = toy_config(name, data_root, work_dir, **(options or {}))
    cfg.experiment_name = _unique_name(name)
    cfg.randomness = dict(seed=seed)
    if max_iters is not None:
        scale_schedule(cfg, max_iters)
    checkpoint = last_checkpoint(work_dir) if reuse else None
    if checkpoint is not None and osp.basename(checkpoint) == \
            f'iter_{cfg.train_cfg.max_iters}.pth':
        print(f'reusing {checkpoint}', flush=True)
        return checkpoint
    if checkpoint is not None:
        print(f'resuming from {checkpoint}', flush=True)
        cfg.resume = True
        cfg.load_from = checkpoint
    elif osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    # Evaluation comes later, once per model. mmengine's iteration loop
    # validates at max_iters whatever val_interval says, so the validation
    # loop is removed altogether.
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if load_from is not None and not cfg.get('resume', False):
        cfg.load_from = load_from
    Runner.from_cfg(cfg).train()
    checkpoint = last_checkpoint(work_dir)
    if checkpoint is None:
        raise RuntimeError(f'training {name} wrote no checkpoint in '
                           f'{work_dir}')
    return checkpoint


def evaluate_toy_config(name: str,
                        checkpoint: str,
                        work_dir: str,
                        data_root: str,
                        overlay_dir: str | None = None,
                        options: dict[str, Any] | None = None
                        ) -> dict[str, float]:
    """Test a checkpoint of ``configs/toy/<name>.py`` on the toy val set.

    Args:
        name (str): Toy config name.
        checkpoint (str): Checkpoint to evaluate.
        work_dir (str): Work directory (logs).
        data_root (str): Toy data set folder.
        overlay_dir (str, optional): Write ground truth | prediction
            overlays of every validation image here.
        options (dict, optional): Dotted config overrides (those that
            change the model, e.g. ``num_primitives``, must match
            training).

    Returns:
        dict[str, float]: The evaluators' flat metrics.
    """
    cfg = toy_config(name, data_root, work_dir, **(options or {}))
    cfg.experiment_name = _unique_name(f'{name}_test')
    cfg.load_from = checkpoint
    cfg.resume = False
    if overlay_dir is not None:
        cfg.default_hooks.visualization.update(
            draw=True, test_out_dir=osp.abspath(overlay_dir))
    return Runner.from_cfg(cfg).test()
