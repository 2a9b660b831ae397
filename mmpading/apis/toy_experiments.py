"""Train and evaluate toy configs from Python (demo, ablation, figures)."""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import uuid
from typing import Any

from mmengine.config import Config
from mmengine.runner import Runner

from mmpading.datasets.class_count_checks import check_head_class_counts
from mmpading.datasets.training_checks import check_zero_shot_training_data
from mmpading.engine.runners import QuietConsoleRunner
from mmpading.utils.config_utils import toy_config

from .feature_cache_builder import cached_stage2_config


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


class WorkDirInUseError(FileExistsError):
    """A work dir holds a run that training there would mix or overwrite."""


def held_run_entries(work_dir: str) -> list[str]:
    """What an existing work dir holds (empty: no run, or no folder)."""
    if not osp.isdir(work_dir):
        return []
    return sorted(entry.name for entry in os.scandir(work_dir))


def _checkpoint_iteration(checkpoint: str) -> int | None:
    match = re.fullmatch(r'iter_(\d+)\.pth', osp.basename(checkpoint))
    return int(match.group(1)) if match else None


# Overlays of 128 px toy images that a reader can read (see
# PanopticOverlayVisualizer): 4x upscaled, titled, with a legend.
READABLE_OVERLAYS = dict(
    scale=4, gt_title='ground truth', legend=True, min_font_size=11)

# Written into a work dir by train_toy_config: what the run there is, so
# that reusing it with another seed or schedule is refused.
RUN_RECORD = 'toy_run.json'


def _check_run_record(work_dir: str, record: dict[str, Any]) -> None:
    path = osp.join(work_dir, RUN_RECORD)
    if not osp.isfile(path):
        return
    with open(path) as f:
        earlier = json.load(f)
    differences = [
        f'{key} {earlier.get(key)!r} there, {value!r} now'
        for key, value in record.items() if earlier.get(key) != value
    ]
    if differences:
        raise WorkDirInUseError(
            f'reuse: the run in {work_dir} was trained differently ('
            + '; '.join(differences) + f', from {path}); train into another '
            'work dir, or reuse with the settings that wrote it.')


def _runner_class(quiet_console: bool) -> type[Runner]:
    return QuietConsoleRunner if quiet_console else Runner


def _name_uniquely(cfg: Config, name: str) -> None:
    """Give the run its own message hub, logger and visualizer.

    mmengine keeps them by name for the whole process; the visualizer's
    name comes from the config (``'visualizer'`` in mmdet's), so a second
    runner would get the first one's visualizer, with its settings.
    """
    cfg.experiment_name = f'{name}_{uuid.uuid4().hex[:8]}'
    if cfg.get('visualizer') is not None:
        cfg.visualizer.name = cfg.experiment_name


def train_toy_config(name: str,
                     work_dir: str,
                     data_root: str,
                     seed: int = 0,
                     max_iters: int | None = None,
                     load_from: str | None = None,
                     reuse: bool = False,
                     options: dict[str, Any] | None = None,
                     quiet_console: bool = False,
                     feature_cache: str | None = None,
                     checkpoint_interval: int | None = None) -> str:
    """Train ``configs/toy/<name>.py`` without evaluation.

    Args:
        name (str): Toy config name, e.g. ``'pading_toy_stage2_gmmn'``.
        work_dir (str): Work directory. Nothing in it is deleted: one that
            already holds files is refused unless ``reuse`` is set.
        data_root (str): Toy data set folder.
        seed (int): ``randomness.seed``.
        max_iters (int, optional): Another schedule length (milestones are
            scaled). None: the config's.
        load_from (str, optional): Checkpoint to start from (stage 2: the
            stage-1 checkpoint).
        reuse (bool): Return the work dir's final checkpoint instead of
            training again, when there is one; resume an interrupted run
            from its last checkpoint; train into a work dir that holds
            files but no checkpoint (nothing there is overwritten:
            mmengine logs into a new timestamped folder).
        options (dict, optional): Dotted config overrides.
        quiet_console (bool): Keep the config dump, environment and
            parameter listings off the console (they stay in the log file);
            see :class:`QuietConsoleRunner`.
        feature_cache (str, optional): A stage-2 config only: train from
            this feature cache of its segmenter (built from ``load_from``,
            which is checked; :func:`~mmpading.apis.feature_cache_builder.
            cached_stage2_config`).
        checkpoint_interval (int, optional): Keep a checkpoint every this
            many iterations (all of them, and the last). None: the
            config's, or only the last one with ``max_iters``.

    Returns:
        str: The final checkpoint.

    Raises:
        WorkDirInUseError: (a FileExistsError) ``work_dir`` is a file,
            holds files and ``reuse`` is not set, or holds a checkpoint past
            ``max_iters`` (a longer schedule's run).
    """
    cfg = toy_config(name, data_root, work_dir, **(options or {}))
    _name_uniquely(cfg, name)
    cfg.randomness = dict(seed=seed)
    if max_iters is not None:
        scale_schedule(cfg, max_iters)
    if checkpoint_interval is not None:
        cfg.default_hooks.checkpoint.update(interval=checkpoint_interval,
                                            max_keep_ckpts=-1)
    check_zero_shot_training_data(cfg)  # seen-only training data
    check_head_class_counts(cfg, ['train_dataloader'])
    if feature_cache is not None:
        cfg = cached_stage2_config(cfg, feature_cache, load_from)
        load_from = None
    if osp.exists(work_dir) and not osp.isdir(work_dir):
        raise WorkDirInUseError(f'work dir {work_dir} is a file; choose '
                                'another work dir')
    held = held_run_entries(work_dir)
    if held and not reuse:
        shown = ', '.join(held[:5]) + (', ...' if len(held) > 5 else '')
        raise WorkDirInUseError(
            f'work dir {work_dir} already holds a run ({shown}); nothing '
            'is deleted. Reuse or resume it with reuse=True (tools: '
            '--reuse), or train into another work dir (or move this one '
            'away first).')
    max_iters = cfg.train_cfg.max_iters
    # Through JSON, as it is stored (tuples become lists).
    record = dict(config=name, seed=seed, max_iters=max_iters,
                  options=options or {})
    if feature_cache is not None:
        record['feature_cache'] = osp.abspath(feature_cache)
    record = json.loads(json.dumps(record, default=repr))
    if reuse:
        _check_run_record(work_dir, record)
    checkpoint = last_checkpoint(work_dir) if reuse else None
    done = None if checkpoint is None else _checkpoint_iteration(checkpoint)
    if done is not None and done > max_iters:
        raise WorkDirInUseError(
            f'reuse: {checkpoint} is past this schedule\'s {max_iters} '
            'iterations (a longer run); train into another work dir, or '
            'reuse with the schedule that wrote it.')
    if done == max_iters:
        print(f'reusing {checkpoint}', flush=True)
        return checkpoint
    if checkpoint is not None:
        print(f'resuming from {checkpoint}', flush=True)
        cfg.resume = True
        cfg.load_from = checkpoint
    # Evaluation comes later, once per model. mmengine's iteration loop
    # validates at max_iters whatever val_interval says, so the validation
    # loop is removed altogether.
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if load_from is not None and not cfg.get('resume', False):
        cfg.load_from = load_from
    runner = _runner_class(quiet_console).from_cfg(cfg)
    with open(osp.join(work_dir, RUN_RECORD), 'w') as f:
        json.dump(record, f, indent=1)
    runner.train()
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
                        options: dict[str, Any] | None = None,
                        quiet_console: bool = False,
                        overlay_title: str | None = None,
                        feature_cache: str | None = None
                        ) -> dict[str, float]:
    """Test a checkpoint of ``configs/toy/<name>.py`` on the toy val set.

    Args:
        name (str): Toy config name.
        checkpoint (str): Checkpoint to evaluate.
        work_dir (str): Work directory (logs).
        data_root (str): Toy data set folder.
        overlay_dir (str, optional): Write ground truth | prediction
            overlays of every validation image here (upscaled, titled,
            with a legend of the classes present; unseen ones marked).
        options (dict, optional): Dotted config overrides (those that
            change the model, e.g. ``num_primitives``, must match
            training).
        quiet_console (bool): As in :func:`train_toy_config`.
        overlay_title (str, optional): The model's name in the overlays'
            title, ``prediction: <overlay_title>``. Defaults to ``name``.
        feature_cache (str, optional): Evaluate a checkpoint trained from
            this feature cache on its cached validation outputs.

    Returns:
        dict[str, float]: The evaluators' flat metrics.
    """
    cfg = toy_config(name, data_root, work_dir, **(options or {}))
    check_head_class_counts(cfg, ['test_dataloader'])
    if feature_cache is not None:
        cfg = cached_stage2_config(cfg, feature_cache)
    _name_uniquely(cfg, f'{name}_test')
    cfg.load_from = checkpoint
    cfg.resume = False
    if overlay_dir is not None:
        cfg.default_hooks.visualization.update(
            draw=True, test_out_dir=osp.abspath(overlay_dir))
        cfg.visualizer.update(
            READABLE_OVERLAYS,
            pred_title=f'prediction: {overlay_title or name}')
    return _runner_class(quiet_console).from_cfg(cfg).test()
