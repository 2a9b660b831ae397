"""Train a model with an mmpading config (mmdet's tools/train.py semantics).

Examples:
    python tools/train.py configs/toy/pading_toy_stage1.py
    python tools/train.py configs/toy/pading_toy_stage2.py --resume
    python tools/train.py CONFIG --work-dir DIR --amp \\
        --cfg-options train_cfg.max_iters=100
    python tools/train.py configs/toy/pading_toy_stage1.py \\
        --data-root /abs/path/to/toy   # data elsewhere than ./data/toy

Before any work it refuses, with one line naming the file and the fix: a
data root that is not a folder, a ``load_from`` / ``--resume`` checkpoint
that is missing, unreadable or of the other stage (``--resume`` of a
stage-2 run from a stage-1 checkpoint, ...).

A config with ``global_batch_size`` (the COCO stage-2 configs: 12) gives
the images of an iteration over all processes; each process's
``train_dataloader.batch_size`` is set from it
(``mmpading/utils/global_batch.py``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

import mmpading  # noqa: F401  (registers components, torch.load compat)
from mmpading.apis.checkpoint_checks import (
    CheckpointMismatchError,
    check_config_checkpoint,
)
from mmpading.datasets.class_count_checks import (
    ClassCountError,
    check_head_class_counts,
)
from mmpading.datasets.training_checks import (
    ZeroShotTrainingDataError,
    check_zero_shot_training_data,
)
from mmpading.utils import process_group_cleanup, setup_cpu_distributed
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import (
    DataRootError,
    check_dataset_roots,
    enable_amp,
    load_tool_config,
)
from mmpading.utils.global_batch import (
    GlobalBatchError,
    apply_global_batch_size,
    launcher_rank_and_world_size,
)

# Bad input the checks below name with its fix: shown without a traceback.
INPUT_ERRORS = (DataRootError, CheckpointMismatchError, CheckpointLoadError,
                FileNotFoundError, ZeroShotTrainingDataError,
                GlobalBatchError, ClassCountError)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a path from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--data-root',
        help='read the data set from this folder: every path of the config '
        'under its data_root (data sets, split, class embeddings, metric '
        'annotation files) is re-rooted here; --cfg-options data_root=DIR '
        'does the same')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs in xxx=yyy '
        'format, e.g. train_cfg.max_iters=100')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_tool_config(args.config, args.data_root, args.cfg_options)
    cfg.launcher = args.launcher
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
    # Stage 2: the images of an iteration over all processes.
    rank, world_size = launcher_rank_and_world_size(args.launcher)
    note = apply_global_batch_size(cfg, rank, world_size)
    if note is not None and rank == 0:
        print(note, flush=True)
    if args.resume == 'auto':
        if find_latest_checkpoint(cfg.work_dir) is None:
            # Nothing to resume yet: start the run as without --resume, so a
            # stage-2 run keeps its stage-1 `load_from`.
            print(f'--resume: no checkpoint in {cfg.work_dir} yet; '
                  'starting from the beginning', flush=True)
        else:
            cfg.resume = True
            cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_checkpoints(cfg: Config) -> None:
    """Refuse a missing, unreadable or other-stage start checkpoint.

    ``--resume`` must name a checkpoint of this config's stage (without a
    path: the work dir's latest); ``load_from`` must exist and be readable
    (a stage-2 ``load_from`` is stage 1's checkpoint, or a stage-2 one to
    continue its learner: said on the console).
    """
    if cfg.get('resume', False):
        checkpoint = cfg.get('load_from', None)
        work_dir = None
        if not checkpoint:
            work_dir = cfg.work_dir
            checkpoint = find_latest_checkpoint(work_dir)
        if not checkpoint:
            return
        source = '--resume' if work_dir is None else (
            f'--resume (the latest checkpoint of the work dir {work_dir})')
        note = check_config_checkpoint(cfg, checkpoint, 'resume', source,
                                       work_dir=work_dir)
    elif cfg.get('load_from', None):
        note = check_config_checkpoint(cfg, cfg.load_from, 'load_from',
                                       'load_from')
    else:
        return
    if note is not None:
        print(f'note: {note}', flush=True)


def check_inputs(cfg: Config) -> None:
    """Refuse bad input before the Runner builds anything."""
    loaders = ['train_dataloader']
    if cfg.get('val_cfg', None):
        loaders.append('val_dataloader')
    check_dataset_roots(cfg, loaders)
    # Seen-only training data: no unseen class leaks into training.
    check_zero_shot_training_data(cfg)
    # A head sized for other classes would train on wrong labels silently.
    check_head_class_counts(cfg, loaders)
    check_checkpoints(cfg)


def main() -> None:
    args = parse_args()
    # Process-wide: mmengine's launchers and DDP wrappers on a machine
    # without a GPU (with one they run unchanged).
    setup_cpu_distributed()
    try:
        cfg = build_config(args)
        check_inputs(cfg)
    except INPUT_ERRORS as error:
        raise SystemExit(f'error: {error}') from None
    with process_group_cleanup():
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        runner.train()


if __name__ == '__main__':
    main()
