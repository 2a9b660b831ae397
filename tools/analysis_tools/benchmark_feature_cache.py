"""Toy stage 2 online against stage 2 from the feature cache.

Times, in one process on the same data and stage-1 checkpoint:

1. one online stage-2 run of ``configs/toy/pading_toy_stage2.py``
   (training, then evaluation on the validation set);
2. building the feature cache of its segmenter (as many passes over the
   training set as the schedule draws images, and the validation set);
3. the same run from the cache (``--feature-cache``).

It prints the times, the cache's size on disk, the speed-up of a run from
the cache, after how many runs the build has paid for itself, and the size
of a cache for COCO ZSP (``configs/pading/zsp_r50.py``: its training set,
the passes its schedule implies, and 5,000 validation images of 640 x 480)
computed from the same per-row sizes. The metrics of the two runs differ
(the cache holds its own augmentation draws, in float16); their equality
on the same features is what ``tests/apis/test_feature_cache_builder.py``
checks.

CPU figures use one torch thread unless ``--threads`` says otherwise.

Example::

    python tools/analysis_tools/benchmark_feature_cache.py \\
        --stage1-checkpoint work_dirs/pading_toy_stage1/iter_600.pth
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import tempfile
import time

import torch
from mmengine.config import Config

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import evaluate_toy_config, train_toy_config
from mmpading.apis.feature_cache_builder import (
    build_feature_cache,
    schedule_epochs,
)
from mmpading.utils.benchmarking import print_table
from mmpading.utils.config_utils import toy_config

from tool_arguments import add_threads_argument, check_threads_argument

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'pading_toy_stage2'
# COCO ZSP: its seen-only training images (configs/pading/README.md) and
# the panoptic validation set.
ZSP_TRAIN_IMAGES = 45617
COCO_VAL_IMAGES = 5000
# A 640 x 480 COCO image through the test resize (1333, 800), padded to a
# multiple of 32, at the head's output stride 4.
COCO_VAL_MASK_SIZE = (800 // 4, 1088 // 4)
FLOAT16_BYTES, LABEL_BYTES = 2, 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--stage1-checkpoint', required=True,
                        help='a toy stage-1 checkpoint')
    parser.add_argument('--data-root', default='data/toy')
    parser.add_argument('--stage2-iters', type=int,
                        help='default: the config\'s schedule')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--work-dir',
                        help='default: a temporary folder, removed after')
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    check_threads_argument(parser, args)
    return args


def folder_bytes(folder: str) -> int:
    return sum(
        osp.getsize(osp.join(root, name))
        for root, _, names in os.walk(folder) for name in names)


def timed_run(work_dir: str, args: argparse.Namespace,
              feature_cache: str | None = None) -> tuple[float, dict]:
    start = time.perf_counter()
    checkpoint = train_toy_config(
        CONFIG, work_dir, args.data_root, args.seed, args.stage2_iters,
        load_from=args.stage1_checkpoint, quiet_console=True,
        feature_cache=feature_cache)
    metrics = evaluate_toy_config(
        CONFIG, checkpoint, work_dir, args.data_root, quiet_console=True,
        feature_cache=feature_cache)
    return time.perf_counter() - start, metrics


def coco_zsp_bytes() -> tuple[int, int, int]:
    """Training and validation bytes of a ZSP cache, and its passes."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'pading', 'zsp_r50.py'))
    head = cfg.model.panoptic_head
    queries, channels = head.num_queries, head.feat_channels
    epochs = schedule_epochs(cfg, ZSP_TRAIN_IMAGES)
    train = ZSP_TRAIN_IMAGES * epochs * queries * (
        channels * FLOAT16_BYTES + LABEL_BYTES)
    height, width = COCO_VAL_MASK_SIZE
    val = COCO_VAL_IMAGES * queries * (channels + height * width) * \
        FLOAT16_BYTES
    return train, val, epochs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch threads: {torch.get_num_threads()}', flush=True)
    temporary = None
    if args.work_dir is None:
        temporary = tempfile.TemporaryDirectory()
        args.work_dir = temporary.name
    online_time, online = timed_run(osp.join(args.work_dir, 'online'), args)
    cfg = toy_config(CONFIG, args.data_root)
    if args.stage2_iters:
        cfg.train_cfg.max_iters = args.stage2_iters
    cache_dir = osp.join(args.work_dir, 'feature_cache')
    start = time.perf_counter()
    manifest = build_feature_cache(cfg, args.stage1_checkpoint, cache_dir,
                                   seed=args.seed, config_name=CONFIG)
    build_time = time.perf_counter() - start
    cached_time, cached = timed_run(
        osp.join(args.work_dir, 'cached'), args, cache_dir)
    size = folder_bytes(cache_dir)
    saved = online_time - cached_time
    break_even = math.ceil(build_time / saved) if saved > 0 else None
    print_table(
        'Toy stage 2, online and from the feature cache', ['', 'seconds'],
        [['online run (train + eval)', f'{online_time:.1f}'],
         [f'cache build ({manifest.epochs} x {manifest.num_images} '
          f'training rows, {manifest.num_val_images} validation images)',
          f'{build_time:.1f}'],
         ['run from the cache (train + eval)', f'{cached_time:.1f}']])
    print(f'\nspeed-up of a run from the cache: '
          f'{online_time / cached_time:.1f}x')
    print('runs after which the build has paid for itself: '
          f'{break_even if break_even is not None else "never"}')
    print(f'cache on disk: {size / 2**20:.1f} MiB')
    for label, metrics in (('online', online), ('from the cache', cached)):
        print(f'PQ seen / unseen / hm, {label}: ' + ' / '.join(
            f'{metrics[f"gzsl_panoptic/PQ_{group}"]:.1f}'
            for group in ('seen', 'unseen', 'hm')))
    train, val, epochs = coco_zsp_bytes()
    print(f'COCO ZSP cache (float16): {train / 2**30:.1f} GiB of training '
          f'rows ({epochs} passes of {ZSP_TRAIN_IMAGES:,} images) + '
          f'{val / 2**30:.1f} GiB of validation outputs '
          f'({COCO_VAL_IMAGES:,} images, masks '
          f'{COCO_VAL_MASK_SIZE[0]} x {COCO_VAL_MASK_SIZE[1]})')
    if temporary is not None:
        temporary.cleanup()


if __name__ == '__main__':
    main()
