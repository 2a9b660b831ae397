"""Add classes to a trained PADing stage-2 model in seconds.

The segmenter stays as it is; the trained generator synthesises features
of the new classes from their embeddings, and only the classifier is
trained again (stage 2's classifier step, on the feature cache's real
features; :mod:`mmpading.apis.class_extension`)::

    python tools/misc/add_classes.py pading_toy_stage2 \\
        work_dirs/new_class/pading/seed0/iter_1000.pth \\
        --feature-cache work_dirs/new_class/feature_cache \\
        --classes "yellow square" \\
        --embeddings data/toy/class_embeddings.json \\
        --out work_dirs/new_class/with_yellow_square.pth

CONFIG is the model's stage-2 config (a path, or a toy config name with
``--data-root``), CHECKPOINT a stage-2 checkpoint of it (trained online, from
the cache, or merged), ``--feature-cache`` the cache of its segmenter
(tools/misc/build_feature_cache.py). The new classes become unseen
classes. The new checkpoint's ``meta['dataset_meta']`` lists the new class
set; the class set's embedding file is written beside it
(``<out stem>.class_embeddings.json``): evaluate or train with a config
whose data set has these classes and whose ``class_embeddings`` is a file
with all of them.

Exit status: 0 = written, 1 = OUT exists (nothing is overwritten),
2 = bad input (the message names it and the fix).
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import pickle
import sys

from mmengine.config import DictAction

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import config_path
from mmpading.apis.class_extension import ClassExtensionError, add_classes
from mmpading.datasets.feature_cache import FeatureCacheError
from mmpading.utils.config_utils import DataRootError, load_tool_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help="the model's stage-2 config")
    parser.add_argument('checkpoint', help='a stage-2 checkpoint of it')
    parser.add_argument('--feature-cache', required=True, metavar='DIR',
                        help="the feature cache of the model's segmenter")
    parser.add_argument('--classes', nargs='+', required=True,
                        metavar='NAME', help='class names to add')
    parser.add_argument('--embeddings', required=True, metavar='FILE',
                        help='a class embedding file with their rows')
    parser.add_argument('--out', required=True,
                        help='the new checkpoint (must not exist)')
    parser.add_argument('--stuff', nargs='+', default=[], metavar='NAME',
                        help='the new classes that are stuff (default: '
                        'things)')
    parser.add_argument('--class-order', metavar='METAINFO',
                        help='a metainfo JSON ({"classes": [...]}) whose '
                        'class order the new class set takes, e.g. that of '
                        'the data set to evaluate on')
    parser.add_argument('--iters', type=int,
                        help="classifier steps (default: the config's "
                        'stage-2 iterations)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help='as tools/train.py')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, as tools/train.py')
    return parser.parse_args(argv)


def read_class_order(path: str | None) -> list[str] | None:
    """The ``classes`` of a metainfo JSON file."""
    if path is None:
        return None
    if not osp.isfile(path):
        raise FileNotFoundError(f'--class-order {path} is not a file')
    with open(path) as f:
        try:
            content = json.load(f)
        except json.JSONDecodeError as error:
            raise ClassExtensionError(
                f'--class-order {path} is not JSON ({error})') from None
    if not isinstance(content, dict) or \
            not isinstance(content.get('classes'), list):
        raise ClassExtensionError(f'--class-order {path} has no "classes" '
                                  'list (a metainfo.json has one)')
    return content['classes']


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if osp.exists(args.out):
        print(f'{args.out} exists; nothing is overwritten (choose another '
              '--out)', file=sys.stderr)
        return 1
    try:
        cfg = load_tool_config(config_path(args.config), args.data_root,
                               args.cfg_options)
        result = add_classes(
            cfg, args.checkpoint, args.feature_cache, args.classes,
            args.embeddings, args.out, new_stuff=args.stuff,
            class_order=read_class_order(args.class_order),
            iterations=args.iters, seed=args.seed)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    except (ClassExtensionError, FeatureCacheError, FileNotFoundError,
            DataRootError, ValueError, KeyError, EOFError,
            pickle.UnpicklingError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(f'wrote {result.checkpoint}: {len(result.classes)} classes '
          f'(added {", ".join(result.added)}), {result.iterations} '
          f'classifier steps, {result.seconds:.1f} s; the class set\'s '
          f'embeddings: {result.class_embeddings}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
