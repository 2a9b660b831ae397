"""The toy demo's pipeline, shared by ``tools/demo.py`` and the seed sweep.

Layout (the command-line tools' own): under a root folder (default
``work_dirs``) each run goes to ``<root>/<config name>``, exactly where
``tools/train.py configs/toy/<config name>.py`` puts it, and the demo's own
outputs (``results.json``, ``run.json``, ``summary.txt``, ``overlays/``) go
to ``<root>/demo``.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mmpading.apis.toy_experiments import evaluate_toy_config, train_toy_config
from mmpading.datasets.splits import load_split
from mmpading.utils.config_utils import TOY_DATA_ROOT, toy_config

STAGE1_CONFIG = 'pading_toy_stage1'
DEFAULT_DATA_ROOT = TOY_DATA_ROOT
# Table label -> stage-2 config, in the order of the table's columns.
VARIANTS = {'PADing': 'pading_toy_stage2', 'GMMN': 'pading_toy_stage2_gmmn'}
DEMO_OUTPUT_DIR = 'demo'
# (row label, metric prefix); each row shows _seen, _unseen and _hm.
TABLE_ROWS = (
    ('PQ', 'gzsl_panoptic/PQ'),
    ('SQ', 'gzsl_panoptic/SQ'),
    ('RQ', 'gzsl_panoptic/RQ'),
    ('mIoU', 'gzsl_semseg/mIoU'),
    ('mAP50 (mask)', 'gzsl_instance/segm_mAP50'),
)
GROUPS = ('seen', 'unseen', 'hm')
# The metrics the table prints, i.e. what a seed sweep records.
TABLE_METRICS = tuple(f'{prefix}_{group}' for _, prefix in TABLE_ROWS
                      for group in GROUPS)
# The headline: the spread printed beside the table.
SPREAD_METRICS = (('PQ unseen', 'gzsl_panoptic/PQ_unseen'),
                  ('PQ HM', 'gzsl_panoptic/PQ_hm'))


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo writes, under one root folder.

    Args:
        root (str): The root (``tools/demo.py --work-dir``).
    """

    root: str

    def run_dir(self, config_name: str) -> str:
        """The work dir of one config's run (the CLI's default)."""
        return osp.join(self.root, config_name)

    @property
    def output_dir(self) -> str:
        """The demo's own outputs."""
        return osp.join(self.root, DEMO_OUTPUT_DIR)

    @property
    def results_json(self) -> str:
        return osp.join(self.output_dir, 'results.json')

    @property
    def run_json(self) -> str:
        return osp.join(self.output_dir, 'run.json')

    @property
    def summary_txt(self) -> str:
        return osp.join(self.output_dir, 'summary.txt')

    @property
    def overlay_dir(self) -> str:
        return osp.join(self.output_dir, 'overlays')

    @property
    def folders(self) -> tuple[str, ...]:
        """Every folder one demo run writes."""
        return (self.run_dir(STAGE1_CONFIG),
                *(self.run_dir(name) for name in VARIANTS.values()),
                self.output_dir)


def banner(text: str) -> None:
    print(f'\n{"=" * 78}\n{text}\n{"=" * 78}', flush=True)


# ------------------------------------------------------- earlier runs kept
def move_aside(folder: str, stamp: str) -> str:
    """Rename ``folder`` to ``<folder>.<stamp>`` (never deletes anything).

    A ``last_checkpoint`` pointer into the folder is updated to the new
    place, so that the moved run can still be resumed or reused.

    Args:
        folder (str): An existing folder.
        stamp (str): Suffix, e.g. ``time.strftime('%Y%m%d-%H%M%S')``.

    Returns:
        str: Where the folder is now.
    """
    target = f'{folder}.{stamp}'
    index = 1
    while osp.exists(target):
        target = f'{folder}.{stamp}-{index}'
        index += 1
    os.rename(folder, target)
    pointer = osp.join(target, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            checkpoint = f.read().strip()
        old = osp.abspath(folder) + os.sep
        if osp.abspath(checkpoint).startswith(old):
            relative = osp.relpath(osp.abspath(checkpoint), osp.abspath(
                folder))
            moved = osp.join(target if not osp.isabs(checkpoint) else
                             osp.abspath(target), relative)
            with open(pointer, 'w') as f:
                f.write(moved)
    return target


def keep_earlier_runs(layout: DemoLayout,
                      stamp: str | None = None) -> list[tuple[str, str]]:
    """Move every folder the demo is about to write out of the way.

    Args:
        layout (DemoLayout): The demo's folders.
        stamp (str, optional): Suffix; default: the current time,
            ``YYYYmmdd-HHMMSS``.

    Returns:
        list[tuple[str, str]]: (old place, new place) of each moved folder;
        a line saying so has been printed for each.
    """
    stamp = stamp or time.strftime('%Y%m%d-%H%M%S')
    moved = []
    for folder in layout.folders:
        if osp.lexists(folder):
            target = move_aside(folder, stamp)
            print(f'kept the earlier run: {folder} is now {target} '
                  '(--reuse continues a run instead)', flush=True)
            moved.append((folder, target))
    return moved


# ------------------------------------------------------------- data set
def describe_toy_dataset(data_root: str) -> dict:
    """Image and class counts of a generated toy data set.

    Returns:
        dict: ``seen`` and ``unseen`` class names, and per split
        (``train``, ``val``) ``images``, ``images_with_unseen`` and
        ``image_size`` (height, width) of the first image.
    """
    split = load_split(osp.join(data_root, 'split.json'))
    unseen = set(split.unseen)
    description = {'seen': list(split.seen), 'unseen': list(split.unseen),
                   'splits': {}}
    for name in ('train', 'val'):
        path = osp.join(data_root, 'annotations', f'panoptic_{name}.json')
        with open(path) as f:
            content = json.load(f)
        names = {c['id']: c['name'] for c in content['categories']}
        with_unseen = sum(
            any(names[s['category_id']] in unseen
                for s in annotation['segments_info'])
            for annotation in content['annotations'])
        images = content['images']
        description['splits'][name] = {
            'images': len(images),
            'images_with_unseen': with_unseen,
            'image_size': ([images[0]['height'], images[0]['width']]
                           if images else None),
        }
    return description


def format_dataset_summary(data_root: str, description: dict) -> str:
    """A few lines: images per split, classes seen / unseen."""
    train, val = (description['splits'][k] for k in ('train', 'val'))
    size = train['image_size'] or val['image_size']
    size_text = f', {size[0]}x{size[1]} px' if size else ''
    seen, unseen = description['seen'], description['unseen']
    return '\n'.join([
        f'toy data set {data_root}{size_text}',
        f'  train: {train["images"]} images; '
        f'{train["images"] - train["images_with_unseen"]} without unseen '
        'classes (stage 1 and 2 train on these only)',
        f'  val:   {val["images"]} images, {val["images_with_unseen"]} with '
        'unseen classes (evaluated on all classes)',
        f'  classes: {len(seen) + len(unseen)}, {len(seen)} seen, '
        f'{len(unseen)} unseen: {", ".join(unseen)}',
    ])


# ------------------------------------------------------------- pipeline
def schedule_of(stage1_iters: int | None = None,
                stage2_iters: int | None = None) -> dict[str, int]:
    """Iterations per config (None: the config's own), for the record."""
    schedule = {}
    for name, iters in ((STAGE1_CONFIG, stage1_iters),
                        *((n, stage2_iters) for n in VARIANTS.values())):
        schedule[name] = int(iters if iters is not None else
                             toy_config(name).train_cfg.max_iters)
    return schedule


def run_toy_demo(layout: DemoLayout,
                 data_root: str,
                 seed: int = 0,
                 stage1_iters: int | None = None,
                 stage2_iters: int | None = None,
                 reuse: bool = False,
                 overlays: bool = True,
                 quiet_console: bool = True) -> dict:
    """Stage 1, then PADing and GMMN stage 2 from it, then evaluation.

    The caller has made sure the layout's folders are free (see
    :func:`keep_earlier_runs`) unless ``reuse`` is set.

    Args:
        layout (DemoLayout): Where to write.
        data_root (str): A generated toy data set.
        seed (int): Training seed (``randomness.seed``) of every stage.
        stage1_iters (int, optional): Stage-1 iterations (None: config).
        stage2_iters (int, optional): Stage-2 iterations (None: config).
        reuse (bool): Reuse finished stages, resume interrupted ones.
        overlays (bool): Write PADing's overlays of the val images.
        quiet_console (bool): Config dumps, environment and parameter
            listings go to each run's log file only.

    Returns:
        dict: ``seed``, ``schedule`` (iterations per config), ``data_root``,
        ``data`` (:func:`describe_toy_dataset`), ``checkpoints`` and
        ``results`` (flat metrics per table label). Written to
        ``layout.run_json``; ``results`` also to ``layout.results_json``.
    """
    banner('2/4 Stage 1: Mask2Former on seen classes only')
    stage1 = train_toy_config(
        STAGE1_CONFIG, layout.run_dir(STAGE1_CONFIG), data_root, seed,
        stage1_iters, reuse=reuse, quiet_console=quiet_console)
    checkpoints = {STAGE1_CONFIG: stage1}
    results = {}
    for step, (label, name) in enumerate(VARIANTS.items(), start=3):
        banner(f'{step}/4 Stage 2 ({label}): frozen segmenter, synthetic '
               'unseen features, new classifier')
        work_dir = layout.run_dir(name)
        checkpoint = train_toy_config(
            name, work_dir, data_root, seed, stage2_iters, stage1, reuse,
            quiet_console=quiet_console)
        checkpoints[label] = checkpoint
        banner(f'Evaluating {label} on all classes')
        overlay_dir = layout.overlay_dir if overlays and \
            label == 'PADing' else None
        metrics = evaluate_toy_config(name, checkpoint, work_dir, data_root,
                                      overlay_dir,
                                      quiet_console=quiet_console,
                                      overlay_title=label)
        results[label] = {k: float(v) for k, v in metrics.items()}
    os.makedirs(layout.output_dir, exist_ok=True)
    with open(layout.results_json, 'w') as f:
        json.dump(results, f, indent=1)
    run = dict(seed=seed, schedule=schedule_of(stage1_iters, stage2_iters),
               data_root=data_root, data=describe_toy_dataset(data_root),
               checkpoints=checkpoints, results=results)
    with open(layout.run_json, 'w') as f:
        json.dump(run, f, indent=1)
    return run


# ------------------------------------------------------------- reporting
def format_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """Seen / unseen / HM of every table row, one column group per model."""
    header = f'{"metric":<14}' + ''.join(
        f'| {name:^23}' for name in results)
    sub = f'{"":<14}' + ''.join(
        f'| {"seen":>7}{"unseen":>8}{"HM":>7} ' for _ in results)
    lines = [header, sub, '-' * len(sub)]
    for label, key in TABLE_ROWS:
        row = f'{label:<14}'
        for metrics in results.values():
            values = [metrics.get(f'{key}_{g}', float('nan'))
                      for g in GROUPS]
            row += '| ' + ''.join(f'{v:>7.1f} ' if i else f'{v:>7.1f}'
                                  for i, v in enumerate(values))
        lines.append(row)
    return '\n'.join(lines)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (n - 1; 0 for one value), min, max."""
    values = [float(v) for v in values]
    if not values:
        nan = float('nan')
        return dict(mean=nan, std=nan, min=nan, max=nan, n=0)
    return dict(mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                min=min(values), max=max(values), n=len(values))


def seed_values(record: Mapping, label: str, metric: str) -> list[float]:
    """One metric of one model over a sweep's seeds (missing skipped)."""
    values = [run[label][metric] for run in record['seeds']
              if metric in run.get(label, {})]
    return [v for v in values if not math.isnan(v)]


def _load_record(path: str, check: Callable[[dict], None], what: str,
                 option: str) -> dict | None:
    """A JSON record a measurement tool wrote; None if the file is absent.

    Args:
        path (str): The file.
        check (Callable): Raises ValueError, TypeError, KeyError,
            IndexError or AttributeError when the record lacks what the
            demo prints.
        what (str): What the file should be, e.g. ``'a seed sweep of
            tools/analysis_tools/measure_demo_seeds.py'``.
        option (str): The demo's option that names the file.

    Raises:
        ValueError: The file is not such a record (names the file, the
            reason and the fix).
    """
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        check(record)
    except (ValueError, TypeError, KeyError, IndexError,
            AttributeError) as error:
        raise ValueError(
            f'{path} is not {what} ({type(error).__name__}: {error}); write '
            f'it again with that script or pass another {option} file'
        ) from None
    return record


def _check_seed_sweep(record: dict) -> None:
    if not isinstance(record.get('seeds'), list) or \
            not isinstance(record.get('schedule'), dict):
        raise ValueError('no "seeds" list or "schedule"')


def load_seed_sweep(path: str) -> dict | None:
    """A sweep written by ``measure_demo_seeds.py``; None if absent.

    Raises:
        ValueError: The file is not such a sweep (names the file).
    """
    return _load_record(
        path, _check_seed_sweep,
        'a seed sweep of tools/analysis_tools/measure_demo_seeds.py',
        '--seed-spread')


def _image_counts(data: Mapping) -> dict[str, int]:
    return {name: split['images'] for name, split in data['splits'].items()}


def format_seed_spread(record: Mapping | None,
                       source: str,
                       run: Mapping,
                       how_to_measure: str = 'python tools/analysis_tools/'
                       'measure_demo_seeds.py') -> str:
    """The lines printed beside the table: how much the result moves.

    Args:
        record (Mapping, optional): The sweep (None: not measured).
        source (str): The file to cite (its Markdown report).
        run (Mapping): This run, as :func:`run_toy_demo` returns it.
        how_to_measure (str): The command that writes the sweep.

    Returns:
        str: A few lines: per model the mean ± sample std and min-max of
        the headline metrics across the sweep's seeds, whether the sweep
        is comparable with this run, and this run's seed and values.
    """
    results = run['results']
    this_run = '; '.join(
        f'{label} ' + ', '.join(
            f'{name} {results[label].get(key, float("nan")):.1f}'
            for name, key in SPREAD_METRICS) for label in results)
    lines = []
    if record is None:
        lines.append(f'Seed spread: not measured yet ({source} is missing; '
                     f'{how_to_measure} writes it).')
    else:
        seeds = [entry['seed'] for entry in record['seeds']]
        lines.append(f'Across {len(seeds)} seeds ({source}; seeds '
                     f'{", ".join(map(str, seeds))}):')
        for label in VARIANTS:
            parts = []
            for name, key in SPREAD_METRICS:
                stats = spread(seed_values(record, label, key))
                parts.append(
                    f'{name} {stats["mean"]:.1f} ± {stats["std"]:.1f} '
                    f'(min-max {stats["min"]:.1f}-{stats["max"]:.1f})')
            lines.append(f'  {label:<7}' + '; '.join(parts))
        differences = []
        if dict(record['schedule']) != dict(run['schedule']):
            differences.append(
                'iterations ' + ', '.join(
                    f'{k} {v}' for k, v in record['schedule'].items())
                + ' there, ' + ', '.join(
                    f'{k} {v}' for k, v in run['schedule'].items())
                + ' here')
        if 'data' in record and _image_counts(record['data']) != \
                _image_counts(run['data']):
            differences.append(
                'images per split ' + str(_image_counts(record['data']))
                + ' there, ' + str(_image_counts(run['data'])) + ' here')
        if differences:
            lines.append('  Not comparable with this run: '
                         + '; '.join(differences) + '.')
    lines.append(f'This run: seed {run["seed"]}: {this_run}.')
    return '\n'.join(lines)


def _check_stage2_spread(record: dict) -> None:
    # Every seed's last point must hold the PQ the lines print.
    last_pq = [float(entry['curve'][-1]['pq'][key])
               for entry in record['seeds'] for key in ('hm', 'unseen')]
    if not last_pq:
        raise ValueError('no seeds')
    int(record['stage2_iters'])


def load_stage2_spread(path: str) -> dict | None:
    """A diagnosis written by ``diagnose_unseen.py``; None if absent.

    Raises:
        ValueError: The file is not such a diagnosis (names the file).
    """
    return _load_record(
        path, _check_stage2_spread,
        'a diagnosis of tools/analysis_tools/diagnose_unseen.py',
        '--stage2-spread')


def format_stage2_spread(record: Mapping | None, source: str,
                         run: Mapping) -> str:
    """How much PADing moves across stage-2 seeds of one stage-1 model.

    The stability measurement of the toy set: 10 stage-2 seeds trained
    from one stage-1 checkpoint (from its feature cache), each scored at
    the last iteration, as ``diagnose_unseen.py`` writes them.

    Args:
        record (Mapping, optional): The diagnosis (None: not measured).
        source (str): The file to cite (its Markdown report).
        run (Mapping): This run, as :func:`run_toy_demo` returns it.

    Returns:
        str: One or two lines: mean ± sample std and min-max of PADing's
        HM-PQ and unseen PQ, the seeds with unseen PQ 0, and whether the
        diagnosis is comparable with this run.
    """
    if record is None:
        return (f'Stage-2 seed spread: not measured yet ({source} is '
                'missing; tools/analysis_tools/diagnose_unseen.py writes '
                'it).')
    last = [entry['curve'][-1]['pq'] for entry in record['seeds']]
    hm = spread([pq['hm'] for pq in last])
    unseen = spread([pq['unseen'] for pq in last])
    zeros = sum(pq['unseen'] == 0 for pq in last)
    lines = [
        f'PADing across {hm["n"]} stage-2 seeds of one stage-1 model '
        f'({source}; {record["stage2_iters"]} iterations): PQ HM '
        f'{hm["mean"]:.1f} ± {hm["std"]:.1f} (min-max {hm["min"]:.1f}-'
        f'{hm["max"]:.1f}), PQ unseen {unseen["mean"]:.1f} ± '
        f'{unseen["std"]:.1f}; unseen PQ 0 in {zeros} of {hm["n"]} seeds.'
    ]
    iterations = run['schedule'].get(VARIANTS['PADing'])
    differences = []
    if record.get('config', VARIANTS['PADing']) != VARIANTS['PADing']:
        differences.append(f'config {record["config"]} there, '
                           f'{VARIANTS["PADing"]} here')
    if int(record['stage2_iters']) != iterations:
        differences.append(f'{record["stage2_iters"]} stage-2 iterations '
                           f'there, {iterations} here')
    if differences:
        lines.append('  Not comparable with this run: '
                     + '; '.join(differences) + '.')
    return '\n'.join(lines)


def report_paths(layout: DemoLayout, run: Mapping) -> str:
    """Where the demo's outputs are, and the CLI command that tests again.

    Args:
        layout (DemoLayout): The demo's folders.
        run (Mapping): What :func:`run_toy_demo` returned.
    """
    runs = ', '.join(layout.run_dir(name)
                     for name in (STAGE1_CONFIG, *VARIANTS.values()))
    lines = [f'Runs (checkpoints, full logs): {runs}',
             f'Demo outputs: {layout.output_dir} (results.json, '
             'summary.txt, overlays/)']
    if osp.normpath(run['data_root']) == osp.normpath(DEFAULT_DATA_ROOT):
        lines.append('Evaluate again: python tools/test.py configs/toy/'
                     f'{VARIANTS["PADing"]}.py {run["checkpoints"]["PADing"]}')
    return '\n'.join(lines)
