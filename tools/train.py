"""Train a model with an mmpading config (mmdet's tools/train.py semantics).

Examples:
    python tools/train.py configs/toy/pading_toy_stage1.py
    python tools/train.py configs/toy/pading_toy_stage2.py --resume
    python tools/train.py CONFIG --work-dir DIR --amp \\
        --cfg-options train_cfg.max_iters=100
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

import mmpading  # noqa: F401  (registers components, torch.load compat)
from mmpading.utils import process_group_cleanup


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


def enable_amp(cfg: Config) -> None:
    """Switch every optimizer wrapper of ``cfg`` to AmpOptimWrapper."""
    optim_wrapper = cfg.optim_wrapper
    named = [
        value for key, value in optim_wrapper.items()
        if isinstance(value, dict) and 'optimizer' in value
    ] if 'optimizer' not in optim_wrapper else [optim_wrapper]
    for wrapper in named:
        if wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            continue
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')


def build_config(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg)
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


def main() -> None:
    args = parse_args()
    cfg = build_config(args)
    with process_group_cleanup():
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        runner.train()


if __name__ == '__main__':
    main()
