"""The toy demo: data, stage 1, PADing and GMMN stage 2, GZSL table.

Runs on the CPU in minutes (``make demo``)::

    python tools/demo.py                    # everything, in work_dirs/demo
    python tools/demo.py --reuse            # keep finished stages
    python tools/demo.py --stage1-iters 100 --stage2-iters 50   # quicker

Steps:
    1. Generate the toy data set into ``data/toy`` (if missing).
    2. Train stage 1 (``configs/toy/pading_toy_stage1.py``).
    3. Train stage 2 twice from the same stage-1 weights: PADing
       (``pading_toy_stage2.py``) and the GMMN baseline
       (``pading_toy_stage2_gmmn.py``).
    4. Evaluate both on all classes and print seen / unseen / HM for PQ, SQ,
       RQ, mIoU and mask mAP50; panoptic overlays of PADing's predictions
       (left: ground truth, right: prediction) go to
       ``<work-dir>/overlays`` (one per validation image).
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import time

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import evaluate_toy_config, train_toy_config
from mmpading.datasets.toy_generator import generate_toy_dataset

DATA_ROOT = 'data/toy'
VARIANTS = {'PADing': 'pading_toy_stage2', 'GMMN': 'pading_toy_stage2_gmmn'}
TABLE_ROWS = (
    ('PQ', 'gzsl_panoptic/PQ'),
    ('SQ', 'gzsl_panoptic/SQ'),
    ('RQ', 'gzsl_panoptic/RQ'),
    ('mIoU', 'gzsl_semseg/mIoU'),
    ('mAP50 (mask)', 'gzsl_instance/segm_mAP50'),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=DATA_ROOT)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--stage1-iters', type=int, help='default: the stage-1 config')
    parser.add_argument(
        '--stage2-iters', type=int, help='default: the stage-2 config')
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='keep a finished stage-1 / stage-2 checkpoint in the work dir '
        'instead of training again')
    parser.add_argument(
        '--no-overlays',
        action='store_true',
        help='do not write overlays of the validation images')
    return parser.parse_args()


def banner(text: str) -> None:
    print(f'\n{"=" * 78}\n{text}\n{"=" * 78}', flush=True)


def ensure_data(data_root: str, seed: int) -> None:
    if osp.isfile(osp.join(data_root, 'split.json')):
        print(f'toy data set found in {data_root}')
        return
    banner(f'1/4 Generating the toy data set in {data_root}')
    summary = generate_toy_dataset(data_root, seed=seed, progress=True)
    print(json.dumps(summary, indent=1)[:800])


def format_table(results: dict[str, dict]) -> str:
    header = f'{"metric":<14}' + ''.join(
        f'| {name:^23}' for name in results)
    sub = f'{"":<14}' + ''.join(
        f'| {"seen":>7}{"unseen":>8}{"HM":>7} ' for _ in results)
    lines = [header, sub, '-' * len(sub)]
    for label, key in TABLE_ROWS:
        row = f'{label:<14}'
        for metrics in results.values():
            values = [metrics.get(f'{key}_{g}', float('nan'))
                      for g in ('seen', 'unseen', 'hm')]
            row += '| ' + ''.join(f'{v:>7.1f} ' if i else f'{v:>7.1f}'
                                  for i, v in enumerate(values))
        lines.append(row)
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    start = time.time()
    ensure_data(args.data_root, args.seed)

    banner('2/4 Stage 1: Mask2Former on seen classes only')
    stage1 = train_toy_config(
        'pading_toy_stage1', osp.join(args.work_dir, 'stage1'),
        args.data_root, args.seed, args.stage1_iters, reuse=args.reuse)

    results = {}
    for step, (label, name) in enumerate(VARIANTS.items(), start=3):
        banner(f'{step}/4 Stage 2 ({label}): frozen segmenter, synthetic '
               'unseen features, new classifier')
        work_dir = osp.join(args.work_dir, name)
        checkpoint = train_toy_config(name, work_dir, args.data_root,
                                      args.seed, args.stage2_iters, stage1,
                                      args.reuse)
        banner(f'Evaluating {label} on all classes')
        overlay_dir = None if args.no_overlays or label != 'PADing' else \
            osp.join(args.work_dir, 'overlays')
        results[label] = evaluate_toy_config(name, checkpoint, work_dir,
                                             args.data_root, overlay_dir)

    banner('Generalized zero-shot results on the toy data set (val)')
    print(format_table(results))
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    pading, gmmn = (results[k].get('gzsl_panoptic/PQ_hm', 0.0)
                    for k in ('PADing', 'GMMN'))
    print(f'\nHM-PQ: PADing {pading:.1f} vs GMMN {gmmn:.1f}; unseen PQ '
          f'PADing {results["PADing"].get("gzsl_panoptic/PQ_unseen", 0):.1f}')
    overlays = osp.join(args.work_dir, 'overlays')
    print(f'Overlays: {overlays}\nMetrics: '
          f'{osp.join(args.work_dir, "results.json")}')
    print(f'Demo finished in {(time.time() - start) / 60:.1f} min')


if __name__ == '__main__':
    main()
