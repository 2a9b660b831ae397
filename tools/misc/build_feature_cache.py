"""Cache the frozen segmenter's features of a stage-2 config, once.

Runs the stage-1 segmenter of a stage-2 config over its training set
``--epochs`` times with the training pipeline's augmentation, and over its
validation set once, and stores the query class embeddings with their
matched labels (training) and the class embeddings with the mask logits
(validation), float16 and memory-mapped (``docs/feature_cache.md``). Every
learner variant of the same segmenter and data then trains and evaluates
from the cache: ``--feature-cache DIR`` of tools/analysis_tools/
run_ablation.py, or :func:`mmpading.apis.feature_cache_builder.
cached_stage2_config` with a Runner. An interrupted build continues where
it stopped when run again with the same arguments; a folder holding
another cache or other files is refused (nothing is deleted).

Examples::

    python tools/misc/build_feature_cache.py \\
        configs/toy/pading_toy_stage2.py \\
        work_dirs/pading_toy_stage1/iter_600.pth \\
        --out work_dirs/feature_cache_toy
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time

from mmengine.config import DictAction

import mmpading  # noqa: F401  (registers components)
from mmpading.apis.feature_cache_builder import build_feature_cache
from mmpading.datasets.feature_cache import CACHE_DTYPES, FeatureCacheError
from mmpading.datasets.training_checks import ZeroShotTrainingDataError
from mmpading.utils.config_utils import DataRootError, load_tool_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='a stage-2 config')
    parser.add_argument('checkpoint', help='its stage-1 checkpoint')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='the cache folder (new, empty, or an '
                        'unfinished cache of the same arguments)')
    parser.add_argument('--epochs', type=int, metavar='E',
                        help='passes over the training set, each with its '
                        'own augmentation draws (default: as many as the '
                        "config's schedule draws images)")
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the augmentation draws')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per frozen forward')
    parser.add_argument('--dtype', choices=CACHE_DTYPES, default='float16')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='frozen forward under autocast (as --amp '
                        'training)')
    parser.add_argument('--no-val', action='store_true',
                        help='no validation pass (evaluate online)')
    parser.add_argument('--data-root', help='as tools/train.py')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, as tools/train.py')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        cfg = load_tool_config(args.config, args.data_root, args.cfg_options)
        manifest = build_feature_cache(
            cfg, args.checkpoint, args.out, epochs=args.epochs,
            seed=args.seed, batch_size=args.batch_size, dtype=args.dtype,
            device=args.device, amp=args.amp, val=not args.no_val,
            config_name=osp.basename(args.config))
    except (FeatureCacheError, FileNotFoundError, DataRootError,
            ZeroShotTrainingDataError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'{args.out}: {manifest.num_rows} training rows ({manifest.epochs}'
          f' x {manifest.num_images} images) and {manifest.num_val_images} '
          f'validation images, {time.time() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
