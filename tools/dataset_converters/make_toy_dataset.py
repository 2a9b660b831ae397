"""Write the toy zero-shot segmentation data set (COCO formats).

Things are flat-coloured shapes, stuff classes are textured background
bands; unseen classes are new combinations of attributes seen classes show.
The defaults are the data set the demo configs use::

    python tools/dataset_converters/make_toy_dataset.py            # data/toy
    python tools/dataset_converters/make_toy_dataset.py --preview  # + overlays

See docs/data_preparation.md for the layout and the attribute vectors.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from mmpading.datasets.toy_generator import (
    CLASS_SETS,
    COLOURS,
    SHAPES,
    TEXTURES,
    generate_toy_dataset,
)


def class_list(text: str) -> list[str]:
    """Comma-separated class names."""
    names = [name.strip() for name in text.split(',') if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError('expected at least one class name')
    return names


def image_size(text: str) -> int | tuple[int, int]:
    """``128`` or ``96x128`` (height x width)."""
    try:
        if 'x' in text:
            height, width = (int(v) for v in text.lower().split('x'))
            return height, width
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a size: use 128 or HEIGHTxWIDTH') from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(f'Colours: {", ".join(COLOURS)}. Shapes (things): '
                f'{", ".join(SHAPES)}. Textures (stuff): '
                f'{", ".join(TEXTURES)}.'))
    parser.add_argument('--out-dir', default='data/toy',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed; the same seed writes the same '
                        'bytes (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=400,
                        help='training images (default: %(default)s)')
    parser.add_argument('--num-val', type=int, default=200,
                        help='validation images (default: %(default)s)')
    parser.add_argument('--size', type=image_size, default=128,
                        help='image size, 128 or HEIGHTxWIDTH '
                        '(default: %(default)s)')
    parser.add_argument(
        '--class-set', choices=list(CLASS_SETS), default='grid',
        help='named classes: grid (every colour x shape and colour x '
        'texture of 5 + 3 colours: 20 things, 9 stuff; the toy configs\') '
        'or classic (10 things, 5 stuff, the default before the grid); the '
        'same 3 unseen classes. --things, --stuff and --unseen replace its '
        'lists (default: %(default)s)')
    parser.add_argument('--things', type=class_list,
                        help='thing classes, "<colour> <shape>", comma-'
                        'separated (default: the class set\'s)')
    parser.add_argument('--stuff', type=class_list,
                        help='stuff classes, "<colour> <texture>", comma-'
                        'separated (default: the class set\'s)')
    parser.add_argument('--unseen', type=class_list,
                        help='unseen classes among the above (default: the '
                        'class set\'s)')
    parser.add_argument('--min-things', type=int, default=3,
                        help='fewest things per image (default: %(default)s)')
    parser.add_argument('--max-things', type=int, default=5,
                        help='most things per image (default: %(default)s)')
    parser.add_argument('--train-unseen-fraction', type=float, default=0.3,
                        help='share of training images drawn with unseen '
                        'classes (default: %(default)s)')
    parser.add_argument('--val-unseen-fraction', type=float, default=0.5,
                        help='share of validation images drawn with unseen '
                        'classes (default: %(default)s)')
    parser.add_argument('--noise', type=float, default=0.0,
                        help='std of Gaussian pixel noise, 0 = flat colours '
                        '(default: %(default)s)')
    parser.add_argument('--preview', type=int, nargs='?', const=8, default=0,
                        metavar='N',
                        help='write N colour overlays per split to '
                        'OUT_DIR/preview (N defaults to 8)')
    parser.add_argument('--quiet', action='store_true',
                        help='no progress bar')
    args = parser.parse_args(argv)
    things, stuff, unseen = CLASS_SETS[args.class_set]
    args.things = list(things) if args.things is None else args.things
    args.stuff = list(stuff) if args.stuff is None else args.stuff
    args.unseen = list(unseen) if args.unseen is None else args.unseen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = generate_toy_dataset(
            args.out_dir,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            image_size=args.size,
            thing_classes=args.things,
            stuff_classes=args.stuff,
            unseen_classes=args.unseen,
            min_things=args.min_things,
            max_things=args.max_things,
            train_unseen_fraction=args.train_unseen_fraction,
            val_unseen_fraction=args.val_unseen_fraction,
            noise_std=args.noise,
            num_preview=args.preview,
            progress=not args.quiet)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    print(f'Wrote the toy data set to {args.out_dir} in {elapsed:.1f} s')
    print(f'  seen classes   ({len(summary["seen"])}): '
          f'{", ".join(summary["seen"])}')
    print(f'  unseen classes ({len(summary["unseen"])}): '
          f'{", ".join(summary["unseen"])}')
    for split, counts in summary['splits'].items():
        print(f'  {split}: {json.dumps(counts)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
