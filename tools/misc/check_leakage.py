"""Check that a training annotation file holds no unseen class.

Reads a COCO instances or panoptic JSON file, matches its categories to the
split by name, and lists every image that shows an unseen class (crowd
regions included). Exit status: 0 = clean, 1 = unseen classes found,
2 = the file or the split could not be used.

Example::

    python tools/misc/check_leakage.py \\
        data/coco/annotations/panoptic_train2017_seen_zsp_coco.json \\
        --split zsp_coco
"""
from __future__ import annotations

import argparse
import json
import sys

from mmpading.datasets.splits import list_splits, resolve_split
from mmpading.datasets.zero_shot_annotations import (
    annotation_kind,
    find_unseen,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('ann_file', metavar='ANN_FILE',
                        help='COCO instances or panoptic JSON file')
    parser.add_argument('--split', required=True, metavar='NAME',
                        help='split name (' + ', '.join(list_splits()) +
                        ') or split JSON file')
    parser.add_argument('--max-list', type=int, default=50, metavar='N',
                        help='list at most N offending images, 0 = all '
                        '(default: %(default)s)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        split = resolve_split(args.split)
        with open(args.ann_file, encoding='utf-8') as file:
            content = json.load(file)
        kind = annotation_kind(content)
        leaks = find_unseen(content, split)
    except (OSError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) else error
        print(f'error: {message}', file=sys.stderr)
        return 2

    num_images = len(content['images'])
    if not leaks:
        print(f'OK: no unseen class of split {split.name!r} in {kind} file '
              f'{args.ann_file} ({num_images} images).')
        return 0
    file_names = {image['id']: image.get('file_name', '')
                  for image in content['images']}
    print(f'LEAK: {len(leaks)} of {num_images} images in {args.ann_file} '
          f'show unseen classes of split {split.name!r}:')
    shown = list(leaks.items())
    if args.max_list > 0:
        shown = shown[:args.max_list]
    for image_id, names in shown:
        print(f'  image {image_id} ({file_names.get(image_id, "?")}): '
              f'{", ".join(names)}')
    if len(shown) < len(leaks):
        print(f'  ... and {len(leaks) - len(shown)} more '
              '(--max-list 0 lists all)')
    print('Write a seen-only file with '
          'tools/dataset_converters/prepare_zero_shot_coco.py.')
    return 1


if __name__ == '__main__':
    sys.exit(main())
