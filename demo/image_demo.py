"""Segment images with a trained PADing model: mmdet's image demo.

The interface of mmdet's ``demo/image_demo.py`` (``inputs``, ``model``,
``--weights``, ``--out-dir``, ...) over
:class:`mmpading.apis.PADingInferencer`, plus ``--task``: which of the
model's outputs the drawings show (the predictions always hold panoptic,
instance and semantic results). Unseen classes are marked ``*`` in the
drawings and ``"unseen": true`` in the panoptic ``segments_info``.

Writes ``OUT_DIR/vis/<image>`` (the drawing) and ``OUT_DIR/preds/<stem>.json``
with ``<stem>_panoptic_seg.png`` and ``<stem>_sem_seg.png`` (files of the
same names are replaced, as mmdet does).

Examples::

    # the toy model on the toy validation images
    python demo/image_demo.py data/toy/val pading_toy_stage2 \\
        --weights work_dirs/pading_toy_stage2/iter_1000.pth
    # one image, the semantic output, a config file and another data root
    python demo/image_demo.py my.png configs/toy/pading_toy_stage2.py \\
        --weights ckpt.pth --task semantic --data-root /data/toy
    # a class the model does not have, added first (seconds): only the
    # classifier is trained again, on the feature cache of its segmenter
    python demo/image_demo.py data/toy/val pading_toy_stage2 \\
        --weights ckpt.pth --texts "navy circle" \\
        --texts-embeddings navy.json --feature-cache work_dirs/cache

``--texts`` plays the part of upstream's text prompts: the names are added
to the checkpoint's classes (as unseen ones) with
``tools/misc/add_classes.py``'s method before the images are segmented; the
extended checkpoint is kept in ``OUT_DIR/extended/``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections.abc import Sequence

from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmengine.config import DictAction

import mmpading  # noqa: F401  (registers the components)
from mmpading.apis import PADingInferencer, config_path
from mmpading.utils.config_utils import cwd_note

TASKS = ('panoptic', 'instance', 'semantic')
PALETTES = ('coco', 'voc', 'citys', 'random', 'none')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='image_demo.py', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument(
        'model', nargs='?',
        help='a toy config name (configs/toy/<name>.py, e.g. '
        'pading_toy_stage2) or a config file; omitted: the config saved in '
        'the checkpoint')
    parser.add_argument('--weights', help='the checkpoint (stage 2)')
    parser.add_argument('--out-dir', default='outputs',
                        help='output folder (vis/ and preds/ in it)')
    parser.add_argument('--device', default='cpu',
                        help='e.g. cpu, cuda:0')
    parser.add_argument('--task', choices=TASKS, default='panoptic',
                        help='the output the drawings show')
    parser.add_argument('--pred-score-thr', type=float, default=0.3,
                        help='instances scoring at most this are not drawn')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward')
    parser.add_argument('--show', action='store_true',
                        help='show each drawing in a window')
    parser.add_argument('--no-save-vis', action='store_true',
                        help='do not write the drawings')
    parser.add_argument('--no-save-pred', action='store_true',
                        help='do not write the predictions')
    parser.add_argument('--print-result', action='store_true',
                        help='print the predictions')
    parser.add_argument('--palette', choices=PALETTES, default='none',
                        help="class colours; 'none': the data set's")
    parser.add_argument(
        '--data-root',
        help="folder that replaces the config's data_root (where the toy "
        'configs read the class embeddings and the metainfo)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, key=value')
    parser.add_argument(
        '--texts', nargs='+', metavar='NAME',
        help="class names to add to the checkpoint's (as unseen classes) "
        'before inference; with --texts-embeddings and --feature-cache')
    parser.add_argument('--stuff-texts', nargs='+', default=[],
                        metavar='NAME',
                        help='the names of --texts that are stuff classes')
    parser.add_argument('--texts-embeddings', metavar='FILE',
                        help='a class embedding file with rows for --texts')
    parser.add_argument('--feature-cache', metavar='DIR',
                        help="the feature cache of the model's segmenter "
                        '(tools/misc/build_feature_cache.py)')
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, parsed only (:func:`check_args` checks it)."""
    return build_parser().parse_args(argv)


def _image_files(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder)
                  if name.lower().endswith(IMG_EXTENSIONS))


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def check_args(parser: argparse.ArgumentParser,
               args: argparse.Namespace) -> None:
    """Refuse bad arguments before any model is built (``parser.error``:
    usage and one line naming the argument and the fix, exit 2)."""
    if not osp.exists(args.inputs):
        parser.error(f'inputs {args.inputs!r}: no such image or folder'
                     f'{cwd_note(args.inputs)}')
    if osp.isdir(args.inputs) and not _image_files(args.inputs):
        parser.error(f'inputs {args.inputs!r}: the folder holds no image '
                     '(.jpg, .png, ...)')
    if args.weights is None:
        parser.error('--weights is required: the checkpoint of a trained '
                     'model (tools/train.py writes work_dirs/<config>/'
                     'iter_*.pth)')
    if not osp.isfile(args.weights):
        parser.error(f'--weights {args.weights!r} does not exist'
                     f'{cwd_note(args.weights)}: check the path of the '
                     'checkpoint')
    if args.model is not None:
        try:
            config_path(args.model)
        except FileNotFoundError as error:
            parser.error(f'model: {error}')
    if not 0 <= args.pred_score_thr <= 1:
        parser.error(f'--pred-score-thr {args.pred_score_thr} is not in '
                     '[0, 1]')
    if args.batch_size < 1:
        parser.error(f'--batch-size {args.batch_size} must be at least 1')
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        parser.error(f'--out-dir {args.out_dir!r} is a file, not a folder')
    if args.texts:
        for option in ('texts_embeddings', 'feature_cache'):
            if getattr(args, option) is None:
                parser.error(f'--texts needs --{option.replace("_", "-")}')
        if not osp.isfile(args.texts_embeddings):
            parser.error(f'--texts-embeddings {args.texts_embeddings!r} does '
                         f'not exist{cwd_note(args.texts_embeddings)}')
        if not osp.isdir(args.feature_cache):
            parser.error(f'--feature-cache {args.feature_cache!r} is not a '
                         f'folder{cwd_note(args.feature_cache)}')
    elif args.stuff_texts or args.texts_embeddings or args.feature_cache:
        parser.error('--stuff-texts, --texts-embeddings and --feature-cache '
                     'are for --texts: give the class names to add')
    for sub in ('vis', 'preds'):
        if _inside(args.inputs, osp.join(args.out_dir, sub)):
            parser.error(
                f'inputs {args.inputs!r} lie in {osp.join(args.out_dir, sub)}'
                ', where the results are written: the images would be '
                'overwritten. Choose another --out-dir')


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    try:
        inferencer = PADingInferencer(
            model=args.model, weights=args.weights, device=args.device,
            palette=args.palette, task=args.task, data_root=args.data_root,
            cfg_options=args.cfg_options, add_classes=args.texts,
            add_stuff=args.stuff_texts,
            class_embeddings=args.texts_embeddings,
            feature_cache=args.feature_cache,
            extension_dir=osp.join(args.out_dir, 'extended'))
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if inferencer.extension is not None:
        added = inferencer.extension
        print(f'added {", ".join(added.added)} in {added.seconds:.1f} s: '
              f'{added.checkpoint}')
    out_dir = '' if args.no_save_vis and args.no_save_pred else args.out_dir
    inferencer(
        args.inputs, batch_size=args.batch_size, show=args.show,
        no_save_vis=args.no_save_vis, no_save_pred=args.no_save_pred,
        print_result=args.print_result, pred_score_thr=args.pred_score_thr,
        out_dir=out_dir)
    if out_dir:
        written = [osp.join(out_dir, sub) for sub, skip in (
            ('vis', args.no_save_vis), ('preds', args.no_save_pred))
                   if not skip]
        print(f'results have been saved at {" and ".join(written)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
