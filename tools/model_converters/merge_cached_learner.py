"""Merge a stage-2 run trained from a feature cache into a full checkpoint.

A run of a stage-2 config from the feature cache
(``PADingFromCache``, ``docs/feature_cache.md``) saves the learner only;
``tools/test.py``, the visualisation tools and the inferencer need the
stage-1 segmenter beside it. This writes the stage-1 weights with the
trained learner as a checkpoint of the (online) stage-2 config::

    python tools/model_converters/merge_cached_learner.py \\
        work_dirs/ablation/stage1/iter_600.pth \\
        work_dirs/ablation/pading/seed0/iter_1000.pth \\
        work_dirs/ablation/pading/seed0/merged.pth

STAGE1 must be the checkpoint the cache was built from (its manifest
names it). Exit status: 0 = written, 1 = OUT exists (nothing is
overwritten), 2 = an input cannot be merged (the message says why).
"""
from __future__ import annotations

import argparse
import os.path as osp
import pickle
import sys

from mmpading.apis.feature_cache_builder import merge_learner_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('stage1', help='the stage-1 checkpoint the feature '
                        'cache was built from')
    parser.add_argument('cached', help='a checkpoint of the run trained '
                        'from that cache (learner weights only)')
    parser.add_argument('out', help='the merged stage-2 checkpoint to write')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if osp.exists(args.out):
        print(f'{args.out} exists; nothing is overwritten (choose another '
              'OUT or remove it)', file=sys.stderr)
        return 1
    for name in ('stage1', 'cached'):
        path = getattr(args, name)
        if not osp.isfile(path):
            print(f'{name.upper()} {path} is not a file', file=sys.stderr)
            return 2
    try:
        merge_learner_checkpoint(args.stage1, args.cached, args.out)
    except (ValueError, KeyError, RuntimeError, EOFError,
            pickle.UnpicklingError) as error:
        print(f'cannot merge {args.stage1} with {args.cached}: {error}',
              file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {args.stage1} with the learner of '
          f'{args.cached}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
