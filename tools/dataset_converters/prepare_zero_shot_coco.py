"""Write seen-only training annotations for zero-shot COCO.

From an official COCO annotation file, drop every image that shows an unseen
class of the split (the PADing / ZSI protocol), or keep the images and remove
the unseen annotations (``--mode ignore_unseen``), and print the counts.

- ZSP (panoptic 2017)::

    python tools/dataset_converters/prepare_zero_shot_coco.py \\
        data/coco/annotations/panoptic_train2017.json --split zsp_coco
    # -> panoptic_train2017_seen_zsp_coco.json (45,617 images)

- ZSI (instances 2014)::

    python tools/dataset_converters/prepare_zero_shot_coco.py \\
        data/coco/annotations/instances_train2014.json --split zsi_48_17

- ZSS (COCO-Stuff label maps): give the folder of label PNGs; writes the
  names of the images without unseen pixels, an mmseg ``ann_file``::

    python tools/dataset_converters/prepare_zero_shot_coco.py \\
        data/coco_stuff164k/annotations/train2017 --split zss_cocostuff

The toy data set works the same way (``--split toy`` or its split.json).

Nothing is written unless everything succeeds: the output goes to a
temporary file in the output folder and is renamed into place at the end.
The input is never overwritten (``--out`` naming it, by any spelling or
link, is refused), nor is an existing output unless ``--overwrite`` is
given.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from collections.abc import Callable
from typing import TextIO

from mmengine.utils import track_iter_progress

from mmpading.datasets.file_checks import load_json_file
from mmpading.datasets.splits import list_splits, resolve_split
from mmpading.datasets.zero_shot_annotations import filter_unseen
from mmpading.datasets.zero_shot_mixin import resolve_metainfo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('source', metavar='ANN_FILE_OR_SEG_DIR',
                        help='COCO instances / panoptic JSON file, or a '
                        'folder of semantic label PNGs')
    parser.add_argument('--split', required=True, metavar='NAME',
                        help='split name (' + ', '.join(list_splits()) +
                        ') or split JSON file')
    parser.add_argument('--mode', choices=('drop_unseen', 'ignore_unseen'),
                        default='drop_unseen',
                        help='drop images with unseen classes, or keep them '
                        'and remove the unseen annotations (JSON only; '
                        'default: %(default)s)')
    parser.add_argument('--out', metavar='PATH',
                        help='output file (default: next to the input, '
                        'NAME_seen_SPLIT.json / .txt); never the input')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the output file if it exists')
    parser.add_argument('--seg-map-suffix', default='_labelTrainIds.png',
                        help='label PNG suffix for a folder input '
                        '(default: %(default)s; the toy set uses .png)')
    parser.add_argument('--metainfo', metavar='JSON',
                        help='classes of the label PNGs (a metainfo.json, '
                        'e.g. the toy set\'s); default: COCO-Stuff 171')
    parser.add_argument('--reduce-zero-label', action='store_true',
                        help='label PNGs use 0 for ignore and 1..K '
                        '(COCO-Stuff 10k)')
    return parser.parse_args(argv)


def default_out(source: str, split_name: str, mode: str, ext: str) -> str:
    stem = osp.splitext(osp.basename(osp.normpath(source)))[0]
    tag = 'seen' if mode == 'drop_unseen' else 'ignore_unseen'
    return osp.join(osp.dirname(osp.normpath(source)),
                    f'{stem}_{tag}_{split_name}{ext}')


def check_output(source: str, out: str, overwrite: bool) -> None:
    """Refuse an output that is the input, a folder, in a missing folder,
    or (without ``--overwrite``) an existing file; before any work."""
    folder = osp.dirname(osp.abspath(out))
    if osp.isdir(out):
        raise ValueError(f'--out {out!r} is a folder; give a file name.')
    if not osp.isdir(folder):
        raise ValueError(f'--out {out!r}: folder {folder!r} does not exist; '
                         'create it first.')
    if osp.exists(out):
        if osp.samefile(source, out) or \
                osp.realpath(source) == osp.realpath(out):
            raise ValueError(
                f'--out {out!r} is the input file {source!r}; refusing to '
                'overwrite the input. Give another --out (or leave it out '
                'for NAME_seen_SPLIT.json next to the input).')
        if not overwrite:
            raise ValueError(f'--out {out!r} exists; pass --overwrite to '
                             'replace it, or give another --out.')


def write_atomically(out: str, write: Callable[[TextIO], None]) -> None:
    """Write ``out`` through a temporary file in its folder, renamed into
    place only once ``write`` succeeded; on failure nothing is left."""
    folder = osp.dirname(osp.abspath(out))
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f'.{osp.basename(out)}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file private; give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, out)
    except BaseException:
        if osp.exists(temporary):
            os.remove(temporary)
        raise


def prepare_json(args: argparse.Namespace, split) -> int:
    out = args.out or default_out(args.source, split.name, args.mode,
                                  '.json')
    check_output(args.source, out, args.overwrite)
    content = load_json_file(args.source)
    try:
        result, stats = filter_unseen(content, split, args.mode)
    except ValueError as error:
        raise ValueError(f'{args.source}: {error}') from None
    print(f'{stats["kind"]} file {args.source}, split {split.name!r} '
          f'({len(split.seen)} seen / {len(split.unseen)} unseen), '
          f'mode {args.mode}:')
    print(f'  images:      {stats["images_before"]} -> '
          f'{stats["images_after"]} ({stats["images_with_unseen"]} show '
          'unseen classes)')
    print(f'  annotations: {stats["annotations_before"]} -> '
          f'{stats["annotations_after"]}')
    print('  images per unseen class:')
    for name, count in stats['images_per_unseen_class'].items():
        print(f'    {name}: {count}')
    if not result['images']:
        print(f'error: no image is left, nothing written to {out}; is this '
              'a training file of the data set the split belongs to?',
              file=sys.stderr)
        return 1
    write_atomically(out, lambda file: json.dump(result, file))
    print(f'Wrote {out}')
    return 0


def prepare_seg_dir(args: argparse.Namespace, split) -> int:
    from mmpading.datasets.zero_shot_coco_stuff import seg_map_labels
    if args.mode != 'drop_unseen':
        raise ValueError('A folder of label maps needs no ignore_unseen file: '
                         'use zero_shot_mode="ignore_unseen" in the data set.')
    out = args.out or default_out(args.source, split.name, args.mode, '.txt')
    check_output(args.source, out, args.overwrite)
    if args.metainfo:
        classes = resolve_metainfo(args.metainfo)['classes']
    else:
        from mmseg.datasets import COCOStuffDataset
        classes = COCOStuffDataset.METAINFO['classes']
    unseen = set(split.unseen_ids(classes))
    names = sorted(name for name in os.listdir(args.source)
                   if name.endswith(args.seg_map_suffix))
    if not names:
        raise ValueError(f'No *{args.seg_map_suffix} file in {args.source}; '
                         'set --seg-map-suffix.')
    kept, per_class = [], dict.fromkeys(split.unseen, 0)
    for name in track_iter_progress(names):
        labels = seg_map_labels(osp.join(args.source, name),
                                args.reduce_zero_label)
        shown = labels & unseen
        for label in shown:
            per_class[classes[label]] += 1
        if not shown:
            kept.append(name[:-len(args.seg_map_suffix)])
    print(f'\nlabel maps in {args.source}, split {split.name!r}:')
    print(f'  images: {len(names)} -> {len(kept)} '
          f'({len(names) - len(kept)} show unseen classes)')
    print('  images per unseen class:')
    for name, count in per_class.items():
        print(f'    {name}: {count}')
    if not kept:
        print(f'error: every label map shows an unseen class, nothing '
              f'written to {out}', file=sys.stderr)
        return 1
    write_atomically(out, lambda file: file.writelines(
        f'{stem}\n' for stem in kept))
    print(f'Wrote {out} (use it as the ann_file of the data set)')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not osp.exists(args.source):
            raise ValueError(f'{args.source!r} does not exist (give a COCO '
                             'JSON file or a folder of label PNGs).')
        split = resolve_split(args.split)
        if osp.isdir(args.source):
            return prepare_seg_dir(args, split)
        return prepare_json(args, split)
    except (OSError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else error
        print(f'error: {message}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
