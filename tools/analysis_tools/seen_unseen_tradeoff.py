"""The seen / unseen trade-off curve of toy stage-2 models, and its AUSUC.

For each model and each calibration γ (``UniversalFusionHead``'s
``calibration_gamma``: subtracted from the seen classes' probabilities;
γ < 0 favours the seen classes, γ > 0 the unseen ones) the model is
evaluated on the toy validation set, from the feature cache's validation
outputs when ``--feature-cache`` names the cache the models were trained
from (one evaluation takes seconds there) or online otherwise. It writes

- ``<out stem>.png``: seen against unseen PQ, mIoU and mask mAP50, one
  curve per model, γ = 0 marked;
- ``<out stem>.json``: every evaluation's metrics, and per model and
  metric the area under the curve (AUSUC, Chao et al., ECCV 2016:
  :func:`mmpading.evaluation.area_under_seen_unseen_curve`) and the γ with
  the highest harmonic mean;
- ``<out stem>.md``: that table, and how to read it.

**The paper reports γ = 0.** Choosing γ by the harmonic mean on the set
one reports is tuning on the test set; the "best γ" column says how far a
calibration could move a model, not a result. To calibrate, choose γ on
held-out data (a validation split disjoint from the reported one, e.g.
the toy set drawn with another ``--seed``) and report the test set at that
γ. AUSUC needs no γ at all.

Example (the toy ablation's seed-0 runs, trained from its cache)::

    python tools/analysis_tools/seen_unseen_tradeoff.py \\
        --feature-cache work_dirs/ablation/feature_cache \\
        --model GMMN pading_toy_stage2_gmmn \\
            work_dirs/ablation/gmmn/seed0/iter_1000.pth \\
        --model PADing pading_toy_stage2 \\
            work_dirs/ablation/pading/seed0/iter_1000.pth
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shlex
import sys
from collections.abc import Sequence

from mmengine.registry import init_default_scope
from seed_statistics import MeanCI, paired_comparison

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import evaluate_toy_config
from mmpading.evaluation import (
    SeenUnseenPoint,
    area_under_seen_unseen_curve,
    best_harmonic_mean,
)
from mmpading.registry import DATASETS
from mmpading.utils.config_utils import toy_config

from tool_arguments import check_model_files, check_model_labels

# Dense near 0, where trained models change their predictions; ±1 are the
# ends of the curve for probabilities (no unseen / no seen class wins).
DEFAULT_GAMMAS = (-1.0, -0.5, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3,
                  0.4, 0.5, 0.7, 1.0)
# (name in the report, metric prefix of the GZSL evaluators)
CURVES = (('PQ', 'gzsl_panoptic/PQ'), ('mIoU', 'gzsl_semseg/mIoU'),
          ('mask mAP50', 'gzsl_instance/segm_mAP50'))
GAMMA_KEY = 'model.panoptic_fusion_head.calibration_gamma'
SEEN_KEY = 'model.panoptic_fusion_head.seen_class_ids'


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        '--model', nargs=3, action='append', required=True,
        metavar=('LABEL', 'CONFIG', 'CHECKPOINT'),
        help='a toy stage-2 config name (configs/toy/<name>.py) and its '
        'checkpoint; repeat for several models')
    parser.add_argument('--data-root', default='data/toy')
    parser.add_argument(
        '--feature-cache',
        help='the feature cache the models were trained from: evaluate its '
        'cached validation outputs (else: the models online)')
    parser.add_argument('--gammas', type=float, nargs='+',
                        default=list(DEFAULT_GAMMAS),
                        help='calibrations to evaluate (default: %(default)s)')
    parser.add_argument('--work-dir', default='work_dirs/tradeoff')
    parser.add_argument(
        '--out', default='docs/results/toy_ablation_tradeoff.png',
        help='the figure; the .json and .md go beside it')
    parser.add_argument('--reuse', action='store_true',
                        help='keep evaluations the work dir already holds')
    parser.add_argument(
        '--seeds', type=int, nargs='+',
        help='stage-2 seeds: every CHECKPOINT holds "{seed}", each model is '
        'swept per seed, and the report gives AUSUC mean ± 95%% CI and '
        'paired tests of each model against the one before it')
    parser.add_argument(
        '--dev-data-root',
        help='a held-out toy draw (make_toy_dataset.py --seed 1): γ is '
        'chosen there by HM-PQ (per model and seed), and --data-root is '
        'reported at that γ')
    parser.add_argument(
        '--dev-feature-cache',
        help="the cache of the models' segmenter on --dev-data-root (tools/"
        'misc/build_feature_cache.py --epochs 1): evaluate the draw from it '
        '(else online)')
    args = parser.parse_args(argv)
    check_model_labels(parser, args.model)
    if args.seeds is not None:
        if len(set(args.seeds)) < 2:
            parser.error('--seeds: statistics need at least two seeds')
        missing = [label for label, _, checkpoint in args.model
                   if '{seed}' not in checkpoint]
        if missing:
            parser.error('--seeds: the CHECKPOINT of every --model must '
                         f'hold "{{seed}}"; not that of {missing}')
    if args.dev_feature_cache is not None and args.dev_data_root is None:
        parser.error('--dev-feature-cache needs --dev-data-root')
    if args.dev_data_root is not None and args.seeds is None:
        parser.error('--dev-data-root needs --seeds (the choice of γ is '
                     'compared with γ = 0 over the seeds)')
    if args.dev_data_root is not None and 0 not in args.gammas:
        parser.error('--dev-data-root: --gammas must hold 0 (the choice is '
                     'compared with the uncalibrated model)')
    if len(set(args.gammas)) < 2:
        parser.error('--gammas: a curve needs at least two values')
    if not osp.isfile(osp.join(args.data_root, 'split.json')):
        parser.error(f'--data-root {args.data_root!r} holds no toy data set '
                     '(split.json); generate it with tools/'
                     'dataset_converters/make_toy_dataset.py')
    if args.feature_cache is not None and not osp.isfile(
            osp.join(args.feature_cache, 'manifest.json')):
        parser.error(f'--feature-cache {args.feature_cache!r} has no '
                     'manifest.json; build it with tools/misc/'
                     'build_feature_cache.py')
    # Toy config names only: evaluate_toy_config takes a name.
    check_model_files(parser, [
        (label, config, checkpoint.format(seed=seed))
        for label, config, checkpoint in args.model
        for seed in (args.seeds or [None])
    ], lambda config: toy_config(config, args.data_root))
    args.gammas = sorted(set(args.gammas))
    return args


def seen_class_ids(config: str, data_root: str) -> list[int]:
    """Label ids of the seen classes, in the test data set's class order
    (its metainfo, which the metrics use too)."""
    init_default_scope('mmdet')
    dataset = DATASETS.build(
        toy_config(config, data_root).test_dataloader.dataset)
    seen = set(dataset.metainfo['seen_classes'])
    return [i for i, name in enumerate(dataset.metainfo['classes'])
            if name in seen]


def evaluate(label: str, config: str, checkpoint: str, gamma: float,
             args: argparse.Namespace, seen_ids: list[int],
             dev: bool = False) -> dict[str, float]:
    """One model at one calibration (cached in the work dir), on the
    reported set or (``dev``) on the held-out draw."""
    work_dir = osp.join(args.work_dir, *(['dev'] if dev else []), label,
                        f'gamma{gamma:g}')
    metrics_file = osp.join(work_dir, 'metrics.json')
    if args.reuse and osp.isfile(metrics_file):
        with open(metrics_file) as f:
            return json.load(f)
    metrics = evaluate_toy_config(
        config, checkpoint, work_dir,
        args.dev_data_root if dev else args.data_root,
        options={GAMMA_KEY: gamma, SEEN_KEY: seen_ids},
        quiet_console=True,
        feature_cache=args.dev_feature_cache if dev else args.feature_cache)
    metrics = {key: float(value) for key, value in metrics.items()}
    os.makedirs(work_dir, exist_ok=True)
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f, indent=1)
    return metrics


def curve_points(runs: dict[float, dict[str, float]],
                 prefix: str) -> list[SeenUnseenPoint]:
    return [SeenUnseenPoint(gamma, m[f'{prefix}_seen'], m[f'{prefix}_unseen'])
            for gamma, m in sorted(runs.items())]


def summarise(results: dict[str, dict[float, dict[str, float]]]) -> dict:
    """Per model and curve: AUSUC, HM at γ = 0, the best HM and its γ."""
    summary = {}
    for label, runs in results.items():
        summary[label] = {}
        for name, prefix in CURVES:
            points = curve_points(runs, prefix)
            best = best_harmonic_mean(points)
            at_zero = next((p for p in points if p.gamma == 0), None)
            summary[label][name] = dict(
                ausuc=area_under_seen_unseen_curve(points),
                hm_at_0=None if at_zero is None else at_zero.hm,
                best_hm=best.hm, best_gamma=best.gamma)
    return summary


def plot(results: dict[str, dict[float, dict[str, float]]],
         summary: dict, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 4.4))
    for ax, (name, prefix) in zip(axes, CURVES):
        for label, runs in results.items():
            points = sorted(curve_points(runs, prefix),
                            key=lambda p: p.gamma)
            line, = ax.plot([p.unseen for p in points],
                            [p.seen for p in points], marker='.',
                            label=f'{label} (AUSUC '
                            f'{summary[label][name]["ausuc"]:.3f})')
            for p in points:
                if p.gamma == 0:
                    ax.plot(p.unseen, p.seen, marker='o', markersize=9,
                            fillstyle='none', color=line.get_color())
        ax.set_xlabel(f'{name} unseen')
        ax.set_ylabel(f'{name} seen')
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f'{name}: seen vs unseen over γ (circle: γ = 0)',
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(summary: dict, args: argparse.Namespace) -> str:
    """The Markdown table of :func:`summarise`, with how to read it."""
    lines = [
        '| model | metric | AUSUC | HM at γ = 0 | best HM | at γ |',
        '|---|---|---|---|---|---|'
    ]
    for label, by_metric in summary.items():
        for name, row in by_metric.items():
            at_zero = 'n/a' if row['hm_at_0'] is None else \
                f'{row["hm_at_0"]:.1f}'
            lines.append(
                f'| {label} | {name} | {row["ausuc"]:.3f} | {at_zero} | '
                f'{row["best_hm"]:.1f} | {row["best_gamma"]:g} |')
    return '\n'.join([
        *lines, '',
        f'Calibrations: γ = {", ".join(f"{g:g}" for g in args.gammas)}; '
        'AUSUC in [0, 1] (scores as fractions). The paper reports γ = 0; '
        'the best γ here is chosen on the evaluated set itself, which is '
        'not a result: it shows how far calibration could move a model. '
        'To calibrate, choose γ on held-out data and report at that γ '
        '(`tools/analysis_tools/seen_unseen_tradeoff.py -h`).'
    ])


def sweep(label: str, config: str, checkpoint: str,
          args: argparse.Namespace, seen_ids: list[int], dev: bool = False
          ) -> dict[float, dict[str, float]]:
    """One model at every γ."""
    runs = {}
    where = ' (dev)' if dev else ''
    for index, gamma in enumerate(args.gammas, start=1):
        metrics = evaluate(label, config, checkpoint, gamma, args, seen_ids,
                           dev)
        runs[gamma] = metrics
        print(f'[{label}{where} {index}/{len(args.gammas)}] γ = {gamma:g}: '
              + ', '.join(
                  f'{name} {metrics[f"{prefix}_seen"]:.1f} / '
                  f'{metrics[f"{prefix}_unseen"]:.1f}'
                  for name, prefix in CURVES), flush=True)
    return runs


def seed_label(label: str, seed: int | None) -> str:
    return label if seed is None else f'{label}/seed{seed}'


# ------------------------------------------------------------ over seeds
def seed_summary(summary: dict, labels: Sequence[str],
                 seeds: Sequence[int]) -> dict:
    """Per model and curve: AUSUC over the seeds (mean, CI, per seed), and
    the means of HM at γ = 0 and of the best HM."""
    out = {}
    for label in labels:
        out[label] = {}
        for name, _ in CURVES:
            rows = {seed: summary[seed_label(label, seed)][name]
                    for seed in seeds}
            ausuc = MeanCI.of([row['ausuc'] for row in rows.values()])
            out[label][name] = dict(
                ausuc=ausuc.mean, ausuc_half_width=ausuc.half_width,
                ausuc_std=ausuc.std,
                ausuc_per_seed={str(s): row['ausuc']
                                for s, row in rows.items()},
                hm_at_0=MeanCI.of([row['hm_at_0'] for row in rows.values()
                                   if row['hm_at_0'] is not None]).mean,
                best_hm=MeanCI.of([row['best_hm']
                                   for row in rows.values()]).mean,
                best_gamma_per_seed={str(s): row['best_gamma']
                                     for s, row in rows.items()})
    return out


def seed_comparisons(by_seed: dict, labels: Sequence[str]) -> list[dict]:
    """AUSUC of each model against the one listed before it, paired by
    seed, for every curve."""
    comparisons = []
    for lower, upper in zip(labels, labels[1:]):
        for name, _ in CURVES:
            values = {
                label: {int(s): v for s, v in
                        by_seed[label][name]['ausuc_per_seed'].items()}
                for label in (lower, upper)
            }
            test = paired_comparison(values[upper], values[lower])
            comparisons.append(dict(
                upper=upper, lower=lower, metric=name,
                mean_diff=test.mean_diff, half_width=test.half_width,
                p_value=test.p_value, wins=test.wins, n=test.n))
    return comparisons


def dev_choice(results: dict, dev_results: dict, labels: Sequence[str],
               seeds: Sequence[int]) -> dict:
    """Per model: γ chosen on the held-out draw (best HM-PQ there) for each
    seed, the reported set's HM-PQ at that γ against γ = 0, and the model
    best at γ = 0 (mean HM-PQ) against this one at its chosen γ: whether
    calibration closes the gap to it."""
    prefix = dict(CURVES)['PQ']
    out, at_zero_of = {}, {}
    for label in labels:
        chosen, at_choice, at_zero = {}, {}, {}
        for seed in seeds:
            name = seed_label(label, seed)
            best = best_harmonic_mean(curve_points(dev_results[name],
                                                   prefix))
            chosen[seed] = best.gamma
            at_choice[seed] = results[name][best.gamma][f'{prefix}_hm']
            at_zero[seed] = results[name][0.0][f'{prefix}_hm']
        at_zero_of[label] = at_zero
        test = paired_comparison(at_choice, at_zero)
        out[label] = dict(
            gamma_per_seed={str(s): g for s, g in chosen.items()},
            hm_at_choice=MeanCI.of(list(at_choice.values())).__dict__,
            hm_at_0=MeanCI.of(list(at_zero.values())).__dict__,
            mean_diff=test.mean_diff, half_width=test.half_width,
            p_value=test.p_value, wins=test.wins, n=test.n,
            at_choice_per_seed={str(s): v for s, v in at_choice.items()})
    leader = max(labels, key=lambda label: out[label]['hm_at_0']['mean'])
    for label in labels:
        if label == leader:
            continue
        gap = paired_comparison(
            at_zero_of[leader],
            {int(s): v for s, v in out[label]['at_choice_per_seed'].items()})
        out[label]['leader_at_0_minus_this'] = dict(
            leader=leader, mean_diff=gap.mean_diff,
            half_width=gap.half_width, p_value=gap.p_value, wins=gap.wins,
            n=gap.n)
    return out


def mean_curves(results: dict, labels: Sequence[str],
                seeds: Sequence[int]) -> dict:
    """Per model, the seen / unseen metrics at each γ averaged over the
    seeds (for the figure; AUSUC is averaged per seed instead)."""
    curves = {}
    for label in labels:
        runs = [results[seed_label(label, seed)] for seed in seeds]
        curves[label] = {
            gamma: {key: sum(run[gamma][key] for run in runs) / len(runs)
                    for key in runs[0][gamma]}
            for gamma in runs[0]
        }
    return curves


def leader_gap(row: dict) -> str:
    """The dev table's last cell: the best model at γ = 0 against this
    one calibrated."""
    gap = row.get('leader_at_0_minus_this')
    if gap is None:
        return '— (the best at γ = 0)'
    return (f'{gap["leader"]}: {gap["mean_diff"]:+.1f} ± '
            f'{gap["half_width"]:.1f} (p = {gap["p_value"]:.2g}, '
            f'{gap["wins"]} of {gap["n"]} seeds)')


def seed_report(by_seed: dict, comparisons: list[dict], dev: dict | None,
                args: argparse.Namespace) -> str:
    """The Markdown tables of the seed sweep."""
    seeds = ', '.join(str(s) for s in args.seeds)
    lines = [
        f'AUSUC over seeds {seeds} (mean ± 95% CI; in [0, 1]):', '',
        '| model | AUSUC PQ | AUSUC mIoU | AUSUC mask mAP50 | '
        'HM-PQ at γ = 0 | best HM-PQ (on this set) |',
        '|---|---|---|---|---|---|'
    ]
    for label, by_metric in by_seed.items():
        cells = [f'{by_metric[name]["ausuc"]:.3f} ± '
                 f'{by_metric[name]["ausuc_half_width"]:.3f}'
                 for name, _ in CURVES]
        pq = by_metric['PQ']
        lines.append(f'| {label} | ' + ' | '.join(cells) +
                     f' | {pq["hm_at_0"]:.1f} | {pq["best_hm"]:.1f} |')
    lines += ['', 'Paired by seed, each model against the one above it '
              '(difference of AUSUC, mean ± 95% CI, two-sided paired t-test, '
              'seeds where it is higher):', '',
              '| comparison | metric | Δ AUSUC | p | higher in |',
              '|---|---|---|---|---|']
    for row in comparisons:
        lines.append(
            f'| {row["upper"]} − {row["lower"]} | {row["metric"]} | '
            f'{row["mean_diff"]:+.3f} ± {row["half_width"]:.3f} | '
            f'{row["p_value"]:.2g} | {row["wins"]} of {row["n"]} |')
    if dev is not None:
        lines += [
            '', f'γ chosen on a held-out draw (`{args.dev_data_root}`: best '
            'HM-PQ there, per model and seed) and the reported set at that '
            'γ, against γ = 0 (paired by seed):', '',
            '| model | γ per seed | HM-PQ at γ = 0 | HM-PQ at the chosen γ | '
            'Δ | p | the best model at γ = 0 minus this one at its γ (p) |',
            '|---|---|---|---|---|---|---|']
        for label, row in dev.items():
            chosen = ', '.join(
                f'{g:g}' for g in row['gamma_per_seed'].values())
            lines.append(
                f'| {label} | {chosen} | '
                f'{row["hm_at_0"]["mean"]:.1f} ± '
                f'{row["hm_at_0"]["half_width"]:.1f} | '
                f'{row["hm_at_choice"]["mean"]:.1f} ± '
                f'{row["hm_at_choice"]["half_width"]:.1f} | '
                f'{row["mean_diff"]:+.1f} ± {row["half_width"]:.1f} | '
                f'{row["p_value"]:.2g} | {leader_gap(row)} |')
    gammas = ', '.join(f'{g:g}' for g in args.gammas)
    lines += ['', f'Calibrations: γ = {gammas}. The figure shows each '
              "model's curve averaged over the seeds (at each γ); AUSUC is "
              'computed per seed and averaged. The paper reports γ = 0; '
              '"best HM-PQ (on this set)" is chosen on the reported set '
              'itself and is not a result.']
    return '\n'.join(lines)


def write_seed_report(results: dict, dev_results: dict, summary: dict,
                      args: argparse.Namespace, argv: list[str]) -> dict:
    """Figure, JSON and Markdown of a sweep over seeds."""
    labels = [label for label, _, _ in args.model]
    by_seed = seed_summary(summary, labels, args.seeds)
    comparisons = seed_comparisons(by_seed, labels)
    dev = dev_choice(results, dev_results, labels, args.seeds) \
        if dev_results else None
    stem = osp.splitext(args.out)[0]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    curves = mean_curves(results, labels, args.seeds)
    plot(curves, by_seed, stem + '.png')
    text = seed_report(by_seed, comparisons, dev, args)
    command = ('python tools/analysis_tools/seen_unseen_tradeoff.py '
               + shlex.join(argv))
    with open(stem + '.md', 'w') as f:
        # What the docs' snippet test gives the command block.
        marker = ('<!-- snippet: needs=default_toy,trained_checkpoints'
                  + (',feature_cache' if args.feature_cache else '')
                  + ' -->\n') if args.data_root == 'data/toy' else ''
        f.write(f'# Seen / unseen trade-off over seeds\n\n{marker}```bash\n'
                f'{command}\n```\n\n![trade-off]({osp.basename(stem)}.png)'
                f'\n\n{text}\n')
    with open(stem + '.json', 'w') as f:
        json.dump({'command': command, 'gammas': args.gammas,
                   'seeds': args.seeds, 'summary': by_seed,
                   'comparisons': comparisons, 'dev': dev,
                   'runs': {label: {f'{g:g}': m for g, m in runs.items()}
                            for label, runs in results.items()},
                   'dev_runs': {label: {f'{g:g}': m for g, m in runs.items()}
                                for label, runs in dev_results.items()}},
                  f, indent=1)
    print(text)
    return by_seed


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    results: dict[str, dict[float, dict[str, float]]] = {}
    dev_results: dict[str, dict[float, dict[str, float]]] = {}
    for label, config, checkpoint in args.model:
        seen_ids = seen_class_ids(config, args.data_root)
        for seed in args.seeds or [None]:
            name = seed_label(label, seed)
            path = checkpoint.format(seed=seed)
            results[name] = sweep(name, config, path, args, seen_ids)
            if args.dev_data_root is not None:
                dev_results[name] = sweep(name, config, path, args,
                                          seen_class_ids(
                                              config, args.dev_data_root),
                                          dev=True)
    summary = summarise(results)
    if args.seeds is not None:
        return write_seed_report(results, dev_results, summary, args, argv)
    stem = osp.splitext(args.out)[0]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    plot(results, summary, stem + '.png')
    text = report(summary, args)
    command = ('python tools/analysis_tools/seen_unseen_tradeoff.py '
               + shlex.join(argv))
    # What the docs' snippet test gives the command block.
    needs = ['default_toy', 'trained_checkpoints'] + (
        ['feature_cache'] if args.feature_cache else [])
    marker = (f'<!-- snippet: needs={",".join(needs)} -->\n'
              if args.data_root == 'data/toy' else '')
    with open(stem + '.md', 'w') as f:
        f.write(f'# Seen / unseen trade-off\n\n{marker}```bash\n{command}'
                f'\n```\n\n![trade-off]({osp.basename(stem)}.png)\n\n'
                f'{text}\n')
    with open(stem + '.json', 'w') as f:
        json.dump({'command': command, 'gammas': args.gammas,
                   'summary': summary,
                   'runs': {label: {f'{g:g}': m for g, m in runs.items()}
                            for label, runs in results.items()}},
                  f, indent=1)
    print(text)
    return summary


if __name__ == '__main__':
    main()
