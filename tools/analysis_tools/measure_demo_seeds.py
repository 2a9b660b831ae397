"""How much the toy demo's result moves across seeds (a measurement).

Runs the demo's whole pipeline (``tools/demo.py``: the same configs and
schedules; stage 1, PADing and GMMN stage 2, evaluation) once per training
seed 0..N-1, each into ``<work-dir>/seed<k>`` (the demo's layout below it),
and writes

- ``docs/results/demo_seeds.json``: the command, date, machine (threads),
  schedule, data set and, per seed, the PADing and GMMN metrics the demo
  prints;
- ``docs/results/demo_seeds.md``: per metric the mean ± sample standard
  deviation, min-max and each seed's value.

``tools/demo.py`` prints the spread of this file beside its table.
Overlays are not drawn (they do not change the metrics).

Examples::

    python tools/analysis_tools/measure_demo_seeds.py            # 5 seeds
    python tools/analysis_tools/measure_demo_seeds.py --reuse    # continue
    python tools/analysis_tools/measure_demo_seeds.py --seeds 3 \\
        --stage1-iters 100 --stage2-iters 50 --out work_dirs/seeds.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import os.path as osp
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Sequence

import torch
from report_files import write_record_and_report

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import WorkDirInUseError
from mmpading.apis.toy_demo import (
    DEFAULT_DATA_ROOT,
    GROUPS,
    TABLE_METRICS,
    TABLE_ROWS,
    VARIANTS,
    DemoLayout,
    banner,
    describe_toy_dataset,
    keep_earlier_runs,
    run_toy_demo,
    schedule_of,
    seed_values,
    spread,
)
from mmpading.datasets.toy_generator import generate_toy_dataset

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO_ROOT, 'docs', 'results', 'demo_seeds.json')
GROUP_NAMES = {'seen': 'seen', 'unseen': 'unseen', 'hm': 'HM'}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--seeds', type=int, default=5,
                        help='number of seeds: 0 .. N-1 (default 5)')
    parser.add_argument('--work-dir', default='work_dirs/demo_seeds',
                        help='root of the runs; seed k in <root>/seed<k>')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    parser.add_argument('--stage1-iters', type=int,
                        help='default: the stage-1 config (as the demo)')
    parser.add_argument('--stage2-iters', type=int,
                        help='default: the stage-2 configs (as the demo)')
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='keep finished seeds and stages, resume an interrupted one')
    parser.add_argument(
        '--out',
        default=DEFAULT_OUT,
        help='the JSON to write; the Markdown report goes beside it '
        '(default: docs/results/demo_seeds.json and .md)')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    for option in ('stage1_iters', 'stage2_iters'):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f'--{option.replace("_", "-")} must be at least 1, '
                         f'got {value}')
    if not osp.isdir(osp.dirname(osp.abspath(args.out))):
        parser.error(f'--out {args.out}: folder '
                     f'{osp.dirname(osp.abspath(args.out))} does not exist')
    return args


def finished_run(layout: DemoLayout, seed: int,
                 schedule: dict[str, int]) -> dict | None:
    """A seed's earlier run with this schedule, if it finished."""
    if not osp.isfile(layout.run_json):
        return None
    with open(layout.run_json) as f:
        run = json.load(f)
    if run.get('seed') != seed or run.get('schedule') != schedule:
        return None
    return run


def run_seed(seed: int, args: argparse.Namespace,
             schedule: dict[str, int]) -> dict:
    """The demo's pipeline for one seed (or its finished run, reused)."""
    layout = DemoLayout(osp.join(args.work_dir, f'seed{seed}'))
    if args.reuse and (run := finished_run(layout, seed, schedule)):
        print(f'reusing {layout.run_json}', flush=True)
        return run
    if not args.reuse:
        keep_earlier_runs(layout)
    start = time.time()
    run = run_toy_demo(layout, args.data_root, seed, args.stage1_iters,
                       args.stage2_iters, args.reuse, overlays=False)
    run['wall_s'] = time.time() - start
    with open(layout.run_json, 'w') as f:
        json.dump(run, f, indent=1)
    return run


def machine() -> dict:
    return dict(torch_threads=torch.get_num_threads(),
                cpu_count=os.cpu_count(),
                platform=platform.platform(),
                processor=platform.processor() or platform.machine(),
                python=platform.python_version(),
                torch=torch.__version__)


def build_record(runs: Sequence[dict], args: argparse.Namespace,
                 argv: Sequence[str], schedule: dict[str, int]) -> dict:
    return dict(
        command=shlex.join(['python', 'tools/analysis_tools/'
                            'measure_demo_seeds.py', *argv]),
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'),
        machine=machine(),
        schedule=schedule,
        data_root=args.data_root,
        data=runs[0]['data'],
        metrics=list(TABLE_METRICS),
        seeds=[
            dict(seed=run['seed'], wall_s=run.get('wall_s'),
                 **{label: {key: run['results'][label].get(key)
                            for key in TABLE_METRICS}
                    for label in VARIANTS})
            for run in runs
        ])


def format_report(record: dict, json_name: str = 'demo_seeds.json') -> str:
    """The Markdown report of a sweep (``json_name``: the file beside it)."""
    seeds = [entry['seed'] for entry in record['seeds']]
    host = record['machine']
    splits = record['data']['splits']
    lines = [
        '# The toy demo across seeds', '',
        f'Written by `{record["command"]}` on {record["date"]} '
        f'({host["torch_threads"]} torch threads, {host["cpu_count"]} CPUs, '
        f'{host["processor"]}, torch {host["torch"]}); the numbers are in '
        f'[{json_name}]({json_name}).', '',
        'Each seed runs the demo\'s whole pipeline (`python tools/demo.py '
        '--seed S`: stage 1, then PADing and GMMN stage 2 from it, '
        'evaluation on all classes) on the same data set '
        f'(`{record["data_root"]}`: {splits["train"]["images"]} train / '
        f'{splits["val"]["images"]} val images); iterations: '
        + ', '.join(f'`{name}` {iters}'
                    for name, iters in record['schedule'].items())
        + '. `tools/demo.py` prints the PQ lines beside its table.', '',
        'std is the sample standard deviation (n - 1).', '',
        '| model | metric | mean ± std | min-max | '
        + ' | '.join(f'seed {s}' for s in seeds) + ' |',
        '|---|---|---|---|' + '---|' * len(seeds),
    ]
    for label in VARIANTS:
        for row, prefix in TABLE_ROWS:
            for group in GROUPS:
                key = f'{prefix}_{group}'
                stats = spread(seed_values(record, label, key))
                values = ' | '.join(
                    '-' if entry[label].get(key) is None else
                    f'{entry[label][key]:.1f}' for entry in record['seeds'])
                lines.append(
                    f'| {label} | {row} {GROUP_NAMES[group]} | '
                    f'{stats["mean"]:.1f} ± {stats["std"]:.1f} | '
                    f'{stats["min"]:.1f}-{stats["max"]:.1f} | {values} |')
    walls = [entry['wall_s'] for entry in record['seeds']
             if entry.get('wall_s') is not None]
    if walls:
        lines += ['', 'Wall time per seed: '
                  f'{spread(walls)["mean"] / 60:.1f} min on average.']
    return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated', category=UserWarning)
    if not osp.isfile(osp.join(args.data_root, 'split.json')):
        banner(f'Generating the toy data set in {args.data_root}')
        generate_toy_dataset(args.data_root, progress=True)
    describe_toy_dataset(args.data_root)  # a broken data set fails here
    schedule = schedule_of(args.stage1_iters, args.stage2_iters)
    runs = []
    for seed in range(args.seeds):
        banner(f'Seed {seed} ({seed + 1} of {args.seeds})')
        try:
            runs.append(run_seed(seed, args, schedule))
        except WorkDirInUseError as error:
            raise SystemExit(f'error: {error}') from None
    record = build_record(runs, args, argv, schedule)
    report, text = write_record_and_report(record, args.out, format_report)
    banner(f'Written: {args.out}, {report}')
    print(text)


if __name__ == '__main__':
    main()
