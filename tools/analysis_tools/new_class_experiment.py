"""Add a class to trained toy models that never met it, and measure it.

The experiment of ``tools/misc/add_classes.py`` (docs/results/new_classes.md):

1. a toy data root without the held-out class (:func:`mmpading.datasets.
   held_out_classes.write_data_root_without`: not in the class list, the
   split or the embedding file; no training image that shows it);
2. stage 1 on it, the feature cache of that segmenter (its validation
   outputs on the *full* validation set: the segmenter is class-agnostic
   there), and PADing's stage 2 from the cache, one run per seed;
3. per seed, the class added with :func:`mmpading.apis.class_extension.
   add_classes` (its embedding read from the full root's file), timed;
4. both models evaluated on the full validation set: *before* is the
   trained model with the new class's classifier row switched off (it
   never predicts it, and predicts everything else exactly as before),
   *after* the extended model.

It writes ``<out stem>.md`` / ``.json``: the new class's PQ, the other
classes' PQ change (per class and their mean |Δ|, against the bound stated
before the runs), seen / unseen / HM PQ before and after, the wall time
of the extension, all over the seeds with 95% confidence intervals.

Example::

    python tools/analysis_tools/new_class_experiment.py \\
        --hold-out "yellow square" --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import shlex
import sys
import time
from collections.abc import Sequence

from seed_statistics import MeanCI, paired_comparison

import mmpading  # noqa: F401  (registers components)
from mmpading.apis.class_extension import add_classes
from mmpading.apis.feature_cache_builder import build_feature_cache
from mmpading.apis.toy_experiments import (
    evaluate_toy_config,
    train_toy_config,
)
from mmpading.datasets.held_out_classes import write_data_root_without
from mmpading.utils.config_utils import toy_class_count_options, toy_config

STAGE2_CONFIG = 'pading_toy_stage2'
PQ_KEY = 'gzsl_panoptic/PQ'
# Stated before any run: adding a class may move the other classes' PQ
# (its segments were some other class's false positives before; the
# classifier trains again), but by less than this mean absolute change,
# in PQ points, over the other classes of each seed.
OTHER_CLASSES_BOUND = 3.0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--data-root', default='data/toy',
                        help='the full toy data set')
    parser.add_argument('--hold-out', nargs='+', default=['yellow square'],
                        metavar='CLASS', help='classes to hold out and add')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='stage-2 seeds (one stage 1 for all)')
    parser.add_argument('--stage1-iters', type=int,
                        help="stage 1's iterations (default: the config's)")
    parser.add_argument('--stage2-iters', type=int,
                        help="stage 2's iterations (default: the config's)")
    parser.add_argument('--work-dir', default='work_dirs/new_class')
    parser.add_argument('--out', default='docs/results/new_classes.md')
    parser.add_argument('--reuse', action='store_true',
                        help='reuse the runs of an earlier call')
    parser.add_argument(
        '--from-json', action='store_true',
        help='rewrite --out from its JSON (<out stem>.json) without running')
    return parser.parse_args(argv)


def held_out_root(args: argparse.Namespace) -> str:
    return osp.join(args.work_dir, 'data_without')


def prepare(args: argparse.Namespace) -> tuple[str, str]:
    """Steps 1-2 up to the cache: the held-out root, stage 1, the cache.

    Returns:
        tuple[str, str]: The stage-1 checkpoint and the cache folder.
    """
    root = held_out_root(args)
    if not (args.reuse and osp.isdir(root)):
        counts = write_data_root_without(args.data_root, args.hold_out, root)
        print(f'{root}: {counts}', flush=True)
    options = toy_class_count_options(root)
    stage1 = train_toy_config(
        'pading_toy_stage1', osp.join(args.work_dir, 'stage1'), root,
        max_iters=args.stage1_iters, reuse=args.reuse, options=options,
        quiet_console=True)
    cache_dir = osp.join(args.work_dir, 'feature_cache')
    cfg = held_out_stage2_config(args)
    build_feature_cache(cfg, stage1, cache_dir, seed=args.seeds[0],
                        config_name=STAGE2_CONFIG)
    return stage1, cache_dir


def held_out_stage2_config(args: argparse.Namespace):
    """The stage-2 config on the held-out root, validated on the full
    validation set (for the cache's validation pass)."""
    root = held_out_root(args)
    cfg = toy_config(STAGE2_CONFIG, root, **toy_class_count_options(root))
    if args.stage2_iters:
        cfg.train_cfg.max_iters = args.stage2_iters
    full = toy_config(STAGE2_CONFIG, args.data_root)
    cfg.val_dataloader = full.val_dataloader
    cfg.test_dataloader = full.test_dataloader
    return cfg


def train_stage2(args: argparse.Namespace, seed: int, stage1: str,
                 cache_dir: str) -> str:
    """PADing's stage 2 on the held-out root, from the cache."""
    root = held_out_root(args)
    return train_toy_config(
        STAGE2_CONFIG, osp.join(args.work_dir, 'pading', f'seed{seed}'),
        root, seed, args.stage2_iters, load_from=stage1, reuse=args.reuse,
        options=toy_class_count_options(root), quiet_console=True,
        feature_cache=cache_dir)


def full_class_order(data_root: str) -> list[str]:
    with open(osp.join(data_root, 'metainfo.json')) as f:
        return list(json.load(f)['classes'])


def extend(args: argparse.Namespace, seed: int, checkpoint: str,
           cache_dir: str, trained: bool) -> tuple[str, dict]:
    """The seed's model with the held-out classes added (``trained``) or
    with their rows switched off (the model as it was, in the full class
    set's labels). Returns the checkpoint and ``seconds`` / ``iterations``
    of the extension."""
    name = 'after' if trained else 'before'
    out = osp.join(args.work_dir, 'extended', f'seed{seed}_{name}.pth')
    record = out + '.json'
    if args.reuse and osp.isfile(out) and osp.isfile(record):
        with open(record) as f:
            return out, json.load(f)
    os.makedirs(osp.dirname(out), exist_ok=True)
    cfg = held_out_stage2_config(args)
    result = add_classes(
        cfg, checkpoint, cache_dir, args.hold_out,
        osp.join(args.data_root, 'class_embeddings.json'), out,
        class_order=full_class_order(args.data_root),
        iterations=None if trained else 0, seed=seed,
        train_new_rows=trained)
    done = dict(seconds=result.seconds, iterations=result.iterations)
    with open(record, 'w') as f:
        json.dump(done, f)
    return out, done


def evaluate(args: argparse.Namespace, checkpoint: str,
             cache_dir: str) -> dict[str, float]:
    """Full validation set metrics, per class too (cached beside it)."""
    metrics_file = checkpoint + '.metrics.json'
    if args.reuse and osp.isfile(metrics_file):
        with open(metrics_file) as f:
            return json.load(f)
    metrics = evaluate_toy_config(
        STAGE2_CONFIG, checkpoint,
        osp.join(args.work_dir, 'eval', osp.basename(checkpoint)),
        args.data_root, options={'test_evaluator.0.classwise': True},
        quiet_console=True, feature_cache=cache_dir)
    metrics = {key: float(value) for key, value in metrics.items()}
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f, indent=1)
    return metrics


def class_pq(metrics: dict[str, float], name: str) -> float:
    return metrics[f'{PQ_KEY}/{name}']


def seed_summary(before: dict[str, float], after: dict[str, float],
                 held_out: Sequence[str], classes: Sequence[str],
                 extension: dict) -> dict:
    """What one seed shows: the new classes' PQ, the others' changes."""
    others = [name for name in classes if name not in set(held_out)
              and f'{PQ_KEY}/{name}' in after]
    changes = {name: class_pq(after, name) - class_pq(before, name)
               for name in others}
    summary = dict(
        new_pq={name: class_pq(after, name) for name in held_out},
        new_pq_before={name: class_pq(before, name) for name in held_out},
        other_changes=changes,
        other_mean_abs_change=sum(map(abs, changes.values())) /
        len(changes),
        other_max_abs_change=max(map(abs, changes.values())),
        seconds=extension['seconds'], iterations=extension['iterations'])
    for group in ('seen', 'unseen', 'hm'):
        summary[f'pq_{group}_before'] = before[f'{PQ_KEY}_{group}']
        summary[f'pq_{group}_after'] = after[f'{PQ_KEY}_{group}']
    return summary


def run(args: argparse.Namespace) -> dict:
    stage1, cache_dir = prepare(args)
    classes = full_class_order(args.data_root)
    seeds = {}
    for seed in args.seeds:
        checkpoint = train_stage2(args, seed, stage1, cache_dir)
        before, _ = extend(args, seed, checkpoint, cache_dir, trained=False)
        after, extension = extend(args, seed, checkpoint, cache_dir,
                                  trained=True)
        seeds[seed] = seed_summary(
            evaluate(args, before, cache_dir),
            evaluate(args, after, cache_dir), args.hold_out, classes,
            extension)
        print(f'seed {seed}: new class PQ {seeds[seed]["new_pq"]}, others '
              f'mean |dPQ| {seeds[seed]["other_mean_abs_change"]:.2f}, '
              f'{extension["seconds"]:.1f} s', flush=True)
    return seeds


def report(seeds: dict, record: dict) -> str:
    """The Markdown report of :func:`run`'s seeds and the run record."""
    values = list(seeds.values())
    held_out = record['hold_out']
    lines = [
        '# New classes at test time (toy set)', '',
        f'Generated by `{record["command"]}` ({record["machine"]}; '
        f'{record["elapsed_s"] / 60:.1f} min'
        + (', reusing the runs of an earlier call' if record['reused'] else
           ' in all') + ').', '',
        f'Held out of everything (class list, split, embedding file, every '
        f'training image that shows it): **{", ".join(held_out)}**. '
        f'One stage 1 on the held-out data root, its feature cache, PADing\'s '
        f'stage 2 from the cache with {len(seeds)} seeds; then per seed '
        '`tools/misc/add_classes.py` adds the class (its embedding from '
        'the full data set\'s file; only the classifier is trained, '
        'stage 2\'s classifier step for the config\'s '
        f'{values[0]["iterations"]:,} iterations). Both models are '
        'evaluated on the full validation set: *before* is the trained '
        'model with the new class\'s row switched off (it predicts exactly '
        'as before), *after* the extended one. Mean ± 95% CI over the '
        'seeds.', '',
        '| | before | after | paired difference (p) |',
        '|---|---|---|---|']
    for name in held_out:
        before = [v['new_pq_before'][name] for v in values]
        after = [v['new_pq'][name] for v in values]
        lines.append(f'| PQ of {name} (new) | {MeanCI.of(before).format()} '
                     f'| {MeanCI.of(after).format()} | '
                     f'{difference(after, before)} |')
    for group, title in (
            ('seen', 'seen PQ'),
            ('unseen', 'unseen PQ (the new class among them)'),
            ('hm', 'HM PQ')):
        before = [v[f'pq_{group}_before'] for v in values]
        after = [v[f'pq_{group}_after'] for v in values]
        lines.append(f'| {title} | {MeanCI.of(before).format()} | '
                     f'{MeanCI.of(after).format()} | '
                     f'{difference(after, before)} |')
    mean_abs = [v['other_mean_abs_change'] for v in values]
    max_abs = [v['other_max_abs_change'] for v in values]
    within = sum(value < record['bound'] for value in mean_abs)
    seconds = [v['seconds'] for v in values]
    lines += [
        '', f'The other classes\' PQ: mean |Δ| per seed '
        f'{MeanCI.of(mean_abs).format()} (max over seeds '
        f'{max(mean_abs):.1f}); the largest single class change per seed '
        f'{MeanCI.of(max_abs).format()}. Bound, stated before the runs: '
        f'mean |Δ| < {record["bound"]:g} points: met in {within} of '
        f'{len(values)} seeds.', '',
        f'Wall time of the extension (loading the checkpoint to writing the '
        f'new one): {MeanCI.of(seconds).format()} s '
        f'(min {min(seconds):.1f}, max {max(seconds):.1f}).', '',
        '## The other classes, per class (mean Δ PQ over the seeds)', '',
        '| class | Δ PQ |', '|---|---|']
    for name in values[0]['other_changes']:
        change = MeanCI.of([v['other_changes'][name] for v in values])
        lines.append(f'| {name} | {change.format()} |')
    return '\n'.join(lines) + '\n'


def difference(upper: Sequence[float], lower: Sequence[float]) -> str:
    if len(upper) < 2:
        return 'n/a (one seed)'
    comparison = paired_comparison(dict(enumerate(upper)),
                                   dict(enumerate(lower)))
    return (f'{comparison.mean_diff:+.1f} ± {comparison.half_width:.1f} '
            f'(p = {comparison.p_value:.2g})')


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stem = osp.splitext(args.out)[0]
    if args.from_json:
        with open(stem + '.json') as f:
            raw = json.load(f)
        with open(args.out, 'w') as f:
            f.write(report(raw['seeds'], raw['run']))
        print(f'wrote {args.out} from {stem}.json')
        return 0
    os.makedirs(args.work_dir, exist_ok=True)
    start = time.time()
    seeds = run(args)
    record = dict(
        command='python tools/analysis_tools/new_class_experiment.py ' +
        ' '.join(shlex.quote(arg) for arg in (argv if argv is not None
                                              else sys.argv[1:])),
        machine=(f'{platform.machine()}, Python '
                 f'{platform.python_version()}, {os.cpu_count()} CPU cores'),
        elapsed_s=time.time() - start,
        hold_out=args.hold_out, seeds=args.seeds, reused=args.reuse,
        bound=OTHER_CLASSES_BOUND)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(stem + '.json', 'w') as f:
        json.dump(dict(run=record, seeds=seeds), f, indent=1)
    with open(args.out, 'w') as f:
        f.write(report(seeds, record))
    print(f'wrote {args.out} and {stem}.json '
          f'({record["elapsed_s"] / 60:.1f} min)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
