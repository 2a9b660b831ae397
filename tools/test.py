"""Test (evaluate) a checkpoint with an mmpading config.

mmdet's tools/test.py semantics. Examples:
    python tools/test.py configs/toy/pading_toy_stage2.py \\
        work_dirs/pading_toy_stage2/iter_1000.pth
    python tools/test.py CONFIG CKPT --show-dir overlays --work-dir DIR
    python tools/test.py CONFIG CKPT --data-root /abs/path/to/toy

Before any work it refuses, with one line naming the file and the fix: a
checkpoint that is missing, unreadable or a stage-1 checkpoint for a
stage-2 config (it would evaluate a random classifier), and a data root
that is not a folder. A stage-2 checkpoint tested with a stage-1 config
is evaluated as stage 1, and the console says so.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmpading  # noqa: F401  (registers components, torch.load compat)
from mmpading.apis.checkpoint_checks import (
    CheckpointMismatchError,
    check_config_checkpoint,
)
from mmpading.datasets.class_count_checks import (
    ClassCountError,
    check_head_class_counts,
)
from mmpading.utils import process_group_cleanup, setup_cpu_distributed
from mmpading.utils.compat import CheckpointLoadError
from mmpading.utils.config_utils import (
    DataRootError,
    check_dataset_roots,
    cwd_note,
    load_tool_config,
)

# Bad input the checks below name with its fix: shown without a traceback.
INPUT_ERRORS = (DataRootError, CheckpointMismatchError, CheckpointLoadError,
                FileNotFoundError, ClassCountError)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint with the GZSL metrics')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='write prediction overlays to this folder (inside the work '
        'dir\'s timestamped folder, as mmdet does)')
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
        help='override settings of the config, key=value pairs')
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
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'error: checkpoint {args.checkpoint!r} does not '
                         f'exist{cwd_note(args.checkpoint)}')
    cfg = load_tool_config(args.config, args.data_root, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    # Testing starts from the given weights; never resume training state.
    cfg.resume = False
    if args.show_dir:
        visualization = cfg.default_hooks.get('visualization', None)
        if visualization is None:
            raise SystemExit('--show-dir needs default_hooks.visualization '
                             'in the config')
        visualization.update(draw=True, test_out_dir=args.show_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must be a .pkl file')
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(
            dict(type='DumpDetResults', out_file_path=args.out))
    return cfg


def check_inputs(cfg: Config, checkpoint: str) -> str | None:
    """Refuse bad input before the Runner builds anything.

    Returns:
        str | None: A note for the console: the checkpoint fits with a
        caveat (a stage-2 checkpoint evaluated as stage 1).
    """
    note = check_config_checkpoint(cfg, checkpoint, 'test')
    check_dataset_roots(cfg, ['test_dataloader'])
    check_head_class_counts(cfg, ['test_dataloader'])
    return note


def main() -> None:
    args = parse_args()
    # Process-wide: mmengine's launchers and DDP wrappers on a machine
    # without a GPU (with one they run unchanged).
    setup_cpu_distributed()
    try:
        cfg = build_config(args)
        note = check_inputs(cfg, args.checkpoint)
    except INPUT_ERRORS as error:
        raise SystemExit(f'error: {error}') from None
    if note is not None:
        print(f'warning: {note}', file=sys.stderr, flush=True)
    with process_group_cleanup():
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        runner.test()
    if note is not None:
        # Again below the metrics, where the reader looks.
        print(f'warning: {note}', file=sys.stderr, flush=True)


if __name__ == '__main__':
    main()
