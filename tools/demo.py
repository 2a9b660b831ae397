"""The toy demo: data, stage 1, PADing and GMMN stage 2, GZSL table.

Runs on the CPU in minutes (``make demo``)::

    python tools/demo.py                    # everything, under work_dirs
    python tools/demo.py --reuse            # keep finished stages
    python tools/demo.py --stage1-iters 100 --stage2-iters 50   # quicker

Steps:
    1. Generate the toy data set into ``data/toy`` (if missing).
    2. Train stage 1 (``configs/toy/pading_toy_stage1.py``).
    3. Train stage 2 twice from the same stage-1 weights: PADing
       (``pading_toy_stage2.py``) and the GMMN baseline
       (``pading_toy_stage2_gmmn.py``).
    4. Evaluate both on all classes and print seen / unseen / HM for PQ, SQ,
       RQ, mIoU and mask mAP50, with how much the result moves across seeds
       (``docs/results/demo_seeds.md``: the whole pipeline per seed;
       ``docs/results/unseen_diagnosis.md``: PADing's stage 2 per seed from
       one stage-1 model).

Where it writes (the layout of ``tools/train.py``): each run goes to
``<work-dir>/<config name>`` (``pading_toy_stage1``, ``pading_toy_stage2``,
``pading_toy_stage2_gmmn``), so that ``tools/test.py
configs/toy/pading_toy_stage2.py work_dirs/pading_toy_stage2/iter_1000.pth``
evaluates the demo's model; the demo's own outputs (``results.json``,
``summary.txt``, ``overlays/``: ground truth | PADing's panoptic prediction
per validation image) go to ``<work-dir>/demo``. Nothing is deleted: without
``--reuse`` an earlier run's folder is renamed to
``<folder>.<YYYYmmdd-HHMMSS>`` first. The console shows progress and
results; each run's full log (config, environment) is in its work dir.
"""
from __future__ import annotations

import argparse
import os.path as osp
import time
import warnings

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import WorkDirInUseError
from mmpading.apis.toy_demo import (
    DEFAULT_DATA_ROOT,
    DemoLayout,
    banner,
    describe_toy_dataset,
    format_dataset_summary,
    format_seed_spread,
    format_stage2_spread,
    format_table,
    keep_earlier_runs,
    load_seed_sweep,
    load_stage2_spread,
    report_paths,
    run_toy_demo,
)
from mmpading.datasets.toy_generator import generate_toy_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEED_SWEEP = osp.join(REPO_ROOT, 'docs', 'results', 'demo_seeds.json')
STAGE2_SPREAD = osp.join(REPO_ROOT, 'docs', 'results',
                         'unseen_diagnosis.json')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--work-dir',
        default='work_dirs',
        help='root folder: runs go to <root>/<config name>, the demo\'s '
        'outputs to <root>/demo (default: work_dirs, as tools/train.py)')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    parser.add_argument('--seed', type=int, default=0,
                        help='training seed of every stage')
    parser.add_argument(
        '--stage1-iters', type=int, help='default: the stage-1 config')
    parser.add_argument(
        '--stage2-iters', type=int, help='default: the stage-2 config')
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='keep finished stage-1 / stage-2 runs in the work dir and '
        'resume interrupted ones instead of training again')
    parser.add_argument(
        '--no-overlays',
        action='store_true',
        help='do not write overlays of the validation images')
    parser.add_argument(
        '--seed-spread',
        default=SEED_SWEEP,
        help='seed sweep to print beside the table (written by '
        'tools/analysis_tools/measure_demo_seeds.py; default: '
        'docs/results/demo_seeds.json)')
    parser.add_argument(
        '--stage2-spread',
        default=STAGE2_SPREAD,
        help='PADing over stage-2 seeds of one stage-1 model, to print '
        'beside the table (written by tools/analysis_tools/'
        'diagnose_unseen.py; default: docs/results/unseen_diagnosis.json)')
    args = parser.parse_args(argv)
    for option in ('stage1_iters', 'stage2_iters'):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f'--{option.replace("_", "-")} must be at least 1, '
                         f'got {value}')
    return args


def ensure_data(data_root: str) -> None:
    """Generate the toy data set (the generator's default seed) if missing.

    The training seed does not change the data: every seed of a sweep
    trains on the same images.
    """
    if osp.isfile(osp.join(data_root, 'split.json')):
        return  # the summary printed next names it
    banner(f'1/4 Generating the toy data set in {data_root}')
    generate_toy_dataset(data_root, progress=True)


def quiet_python_warnings() -> None:
    """Drop the setuptools deprecation notices (this process only).

    mmengine resolves ``mmdet::`` base configs through ``pkg_resources``;
    setuptools warns at every such import, which says nothing about the run.
    """
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated', category=UserWarning)
    warnings.filterwarnings(
        'ignore', message='Deprecated call to `pkg_resources',
        category=DeprecationWarning)


def sweep_source(path: str) -> str:
    """How to cite a sweep: its Markdown report, relative to the repo."""
    report = osp.splitext(path)[0] + '.md'
    absolute = osp.abspath(report)
    if absolute.startswith(REPO_ROOT + osp.sep):
        return osp.relpath(absolute, REPO_ROOT)
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_python_warnings()
    try:
        # A broken sweep file is reported before the training, not after.
        sweep = load_seed_sweep(args.seed_spread)
        stage2_sweep = load_stage2_spread(args.stage2_spread)
    except ValueError as error:
        raise SystemExit(f'error: {error}') from None
    start = time.time()
    layout = DemoLayout(args.work_dir)
    if not args.reuse:
        keep_earlier_runs(layout)
    ensure_data(args.data_root)
    summary = format_dataset_summary(args.data_root,
                                     describe_toy_dataset(args.data_root))
    print(summary, flush=True)

    try:
        run = run_toy_demo(layout, args.data_root, args.seed,
                           args.stage1_iters, args.stage2_iters, args.reuse,
                           overlays=not args.no_overlays)
    except WorkDirInUseError as error:
        raise SystemExit(f'error: {error}') from None

    title = 'Generalized zero-shot results on the toy data set (val)'
    banner(title)
    table = format_table(run['results'])
    seeds = format_seed_spread(sweep, sweep_source(args.seed_spread), run)
    seeds += '\n' + format_stage2_spread(
        stage2_sweep, sweep_source(args.stage2_spread), run)
    paths = report_paths(layout, run)
    elapsed = f'Demo finished in {(time.time() - start) / 60:.1f} min'
    print(f'{table}\n\n{seeds}\n\n{paths}\n{elapsed}', flush=True)
    with open(layout.summary_txt, 'w') as f:
        f.write(f'{summary}\n\n{title}\n{table}\n\n{seeds}\n\n{paths}\n'
                f'{elapsed}\n')


if __name__ == '__main__':
    main()
