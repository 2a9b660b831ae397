"""The paper's ablation (Tables 1-3) on the toy data set, over seeds.

Trains stage 1 once, then every stage-2 variant from the same stage-1
weights with several seeds, evaluates each on the toy validation set and
writes a Markdown report with mean +- std over seeds:

- Table 1 layout: PQ, SQ and RQ (seen / unseen / HM) per variant
  (projection, GMMN, P, P+A, PADing);
- Table 2 layout: mIoU, mask mAP50 and box mAP50 (seen / unseen / HM) of
  the same panoptic models;
- Table 3 analogue: PADing with 100 / 200 / 400 / 800 primitives;
- the paper's COCO figures beside them, and whether the ordering matches;
- a bar chart (``<out stem>.png``) and a sweep plot
  (``<out stem>_primitives.png``), and every run's metrics
  (``<out stem>.json``).

Every run's metrics are cached in its work dir (``metrics.json``), so an
interrupted ablation continues where it stopped with ``--reuse`` and the
report can be rewritten from the cache with ``--report-only``, or from the
raw metrics beside it (``<out stem>.json``, which records the command,
split and schedule too) with ``--from-json`` when the runs are gone.

The figure section lists the Fig. 5 / Fig. 6 analogues
(``<out stem>_tsne.png``, ``<out stem>_predictions.png``) when they sit
beside the report, with the commands that draw them from this ablation's
seed-0 runs.

Examples::

    # the full report (about 45 min on 2 CPU cores)
    python tools/analysis_tools/run_ablation.py --reuse
    # rewrite the report from finished runs
    python tools/analysis_tools/run_ablation.py --report-only
    # ... or from its raw metrics (docs/results/toy_ablation.json)
    python tools/analysis_tools/run_ablation.py --from-json
    # a quick look: two seeds, short schedules, no sweep
    python tools/analysis_tools/run_ablation.py --seeds 0 1 \\
        --stage1-iters 100 --stage2-iters 50 --primitives \\
        --work-dir work_dirs/ablation_quick --out /tmp/quick.md
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from seed_statistics import ALPHA, MeanCI, paired_comparison

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import evaluate_toy_config, train_toy_config
from mmpading.apis.feature_cache_builder import build_feature_cache
from mmpading.datasets.toy_generator import generate_toy_dataset
from mmpading.utils.config_utils import toy_config


@dataclass(frozen=True)
class Variant:
    """One stage-2 run setting.

    Attributes:
        key (str): Short name, also the work-dir folder.
        label (str): Row label in the report.
        config (str): Toy config name.
        options (dict): Dotted config overrides.
    """
    key: str
    label: str
    config: str
    options: dict = field(default_factory=dict)


# Table 1 rows, in the paper's order: each row adds one component.
ABLATION_VARIANTS = (
    Variant('projection', 'Projection', 'pading_toy_stage2_projection'),
    Variant('gmmn', 'GMMN', 'pading_toy_stage2_gmmn'),
    Variant('p', 'P', 'pading_toy_stage2_p'),
    Variant('p_a', 'P + A', 'pading_toy_stage2_p_a'),
    Variant('pading', 'PADing (P + A + D)', 'pading_toy_stage2'),
)
DEFAULT_PRIMITIVES = 400  # the PADing config's bank size
DEFAULT_LAMBDA = 1e-4  # ZeroShotLearner's lambda_weight (panoptic)
# The variants whose A (and D) the lambda sweep scales.
LAMBDA_BASES = ('p_a', 'pading')
# Logged by GradientShareHook every logger interval; averaged per run.
GRADIENT_SHARES = ('grad_share/ad_ratio', 'grad_share/align',
                   'grad_share/disentangle')

TABLE1 = (('PQ', 'gzsl_panoptic/PQ'), ('SQ', 'gzsl_panoptic/SQ'),
          ('RQ', 'gzsl_panoptic/RQ'))
TABLE2 = (('mIoU', 'gzsl_semseg/mIoU'),
          ('mask mAP50', 'gzsl_instance/segm_mAP50'),
          ('box mAP50', 'gzsl_instance/bbox_mAP50'))
GROUPS = ('seen', 'unseen', 'hm')
HM_PQ = 'gzsl_panoptic/PQ_hm'

# The paper's COCO figures (R-50). Table 1 is ZSP; the paper
# reports ZSS / ZSI with dedicated models, quoted as reference only.
PAPER_TABLE1 = {
    'Projection': {'PQ': (None, None, 0.0)},
    'GMMN': {'PQ': (None, None, 8.7)},
    'PADing (P + A + D)': {'PQ': (41.5, 15.3, 22.3)},
}
PAPER_OTHER_TASKS = (
    ('ZSS (COCO-Stuff 156/15)', 'mIoU', (40.4, 24.8, 30.7)),
    ('ZSI 48/17 (COCO 2014)', 'mask mAP50', (53.0, 8.0, 13.9)),
    ('ZSI 48/17 (COCO 2014)', 'Recall@100', (75.1, 47.5, 58.2)),
    ('ZSI 65/15 (COCO 2014)', 'mask mAP50', (41.8, 13.9, 20.9)),
)


def primitive_variant(num_primitives: int) -> Variant:
    """PADing with another primitive bank size (Table 3 analogue)."""
    if num_primitives == DEFAULT_PRIMITIVES:
        return ABLATION_VARIANTS[-1]
    return Variant(
        f'pading_prim{num_primitives}', f'PADing, {num_primitives} prim.',
        'pading_toy_stage2',
        {'model.zero_shot.generator.num_primitives': num_primitives})


def lambda_variant(base: str, lambda_weight: float) -> Variant:
    """P + A or PADing with another lambda (the weight of A and D)."""
    variant = next(v for v in ABLATION_VARIANTS if v.key == base)
    if lambda_weight == DEFAULT_LAMBDA:
        return variant
    return Variant(
        f'{base}_lambda{lambda_weight:g}',
        f'{variant.label}, λ = {lambda_weight:g}', variant.config,
        {**variant.options, 'model.zero_shot.lambda_weight': lambda_weight})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--data-root', default='data/toy')
    parser.add_argument('--work-dir', default='work_dirs/ablation')
    parser.add_argument(
        '--out',
        default='docs/results/toy_ablation.md',
        help='the report; the charts and raw metrics go beside it')
    parser.add_argument(
        '--seeds', type=int, nargs='+', default=[0, 1, 2],
        help='stage-2 seeds (stage 1 is trained once, with the first)')
    parser.add_argument(
        '--sweep-seeds',
        type=int,
        nargs='+',
        help='seeds of the primitive sweep (default: --seeds)')
    parser.add_argument(
        '--variants',
        nargs='+',
        default=[v.key for v in ABLATION_VARIANTS],
        choices=[v.key for v in ABLATION_VARIANTS])
    parser.add_argument(
        '--primitives',
        type=int,
        nargs='*',
        default=[100, 200, 400, 800],
        help='primitive bank sizes of the sweep; none: no sweep')
    parser.add_argument(
        '--lambdas',
        type=float,
        nargs='*',
        default=[],
        help='lambda values (the weight of A and D) of a sweep of P + A and '
        f'PADing; {DEFAULT_LAMBDA:g} is the configs\' (default: no sweep)')
    parser.add_argument(
        '--lambda-seeds',
        type=int,
        nargs='+',
        help='seeds of the lambda sweep (default: --sweep-seeds)')
    parser.add_argument(
        '--stage1-iters', type=int, help='default: the stage-1 config')
    parser.add_argument(
        '--stage2-iters', type=int, help='default: the stage-2 configs')
    parser.add_argument(
        '--feature-cache',
        action='store_true',
        help='train and evaluate every stage-2 run from one feature cache of '
        'the stage-1 segmenter (<work-dir>/feature_cache, built once: '
        'docs/feature_cache.md) instead of recomputing its forward')
    parser.add_argument(
        '--reuse',
        action='store_true',
        help='keep finished runs (checkpoint and metrics) of the work dir')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train nothing: write the report from the cached metrics')
    parser.add_argument(
        '--from-json',
        action='store_true',
        help='train nothing, read no work dir: rewrite the report from the '
        'raw metrics beside --out (<out stem>.json) with the command, split '
        'and schedule recorded there')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.sweep_seeds is None:
        args.sweep_seeds = args.seeds
    if args.lambda_seeds is None:
        args.lambda_seeds = args.sweep_seeds
    if min(len(args.seeds), len(args.sweep_seeds),
           len(args.lambda_seeds)) < 2:
        parser.error('--seeds, --sweep-seeds and --lambda-seeds need at '
                     'least two seeds each, for a confidence interval')
    if any(n < 1 for n in args.primitives):
        parser.error('--primitives must be positive')
    if any(not 0 < value <= 100 for value in args.lambdas):
        parser.error('--lambdas must be in (0, 100]')
    return args


def banner(text: str) -> None:
    print(f'\n{"=" * 78}\n{text}\n{"=" * 78}', flush=True)


def run_dir(work_dir: str, variant: Variant, seed: int) -> str:
    return osp.join(work_dir, variant.key, f'seed{seed}')


def load_cached(path: str) -> dict | None:
    metrics = osp.join(path, 'metrics.json')
    if not osp.isfile(metrics):
        return None
    with open(metrics) as f:
        return json.load(f)


def feature_cache_dir(args: argparse.Namespace) -> str | None:
    return osp.join(args.work_dir, 'feature_cache') \
        if args.feature_cache else None


def build_stage1_feature_cache(args: argparse.Namespace,
                               stage1_checkpoint: str) -> None:
    """The feature cache of the stage-1 segmenter (once; resumed if
    interrupted), with as many passes as the stage-2 schedule draws."""
    cfg = toy_config('pading_toy_stage2', args.data_root)
    if args.stage2_iters:
        cfg.train_cfg.max_iters = args.stage2_iters
    manifest = build_feature_cache(
        cfg, stage1_checkpoint, feature_cache_dir(args), seed=args.seeds[0],
        config_name='pading_toy_stage2')
    print(f'feature cache: {manifest.epochs} x {manifest.num_images} '
          f'training rows, {manifest.num_val_images} validation images',
          flush=True)


def run_variant(variant: Variant, seed: int, stage1: str,
                args: argparse.Namespace) -> dict[str, float]:
    """Train and evaluate one variant with one seed (cached)."""
    path = run_dir(args.work_dir, variant, seed)
    if args.reuse and (cached := load_cached(path)) is not None:
        print(f'reusing {path}/metrics.json', flush=True)
        return cached
    start = time.time()
    checkpoint = train_toy_config(
        variant.config, path, args.data_root, seed, args.stage2_iters,
        load_from=stage1, reuse=args.reuse, options=variant.options,
        feature_cache=feature_cache_dir(args))
    metrics = evaluate_toy_config(variant.config, checkpoint, path,
                                  args.data_root, options=variant.options,
                                  feature_cache=feature_cache_dir(args))
    metrics = {key: float(value) for key, value in metrics.items()}
    metrics.update(training_gradient_shares(path))
    metrics['wall_time_s'] = time.time() - start
    with open(osp.join(path, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    return metrics


# ------------------------------------------------------------- statistics
def training_gradient_shares(work_dir: str) -> dict[str, float]:
    """The mean over a run's log of each gradient share GradientShareHook
    logged (``scalars.json`` of its latest log folder); none without."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not logs:
        return {}
    values: dict[str, list[float]] = {}
    with open(logs[-1]) as f:
        for line in f:
            record = json.loads(line)
            for key in GRADIENT_SHARES:
                if key in record:
                    values.setdefault(key, []).append(float(record[key]))
    return {key: statistics.fmean(v) for key, v in values.items()}


def summarise(runs: dict[int, dict[str, float]], key: str) -> MeanCI:
    """Mean, std and 95% CI of one metric over a variant's seeds."""
    return MeanCI.of([m.get(key, math.nan) for m in runs.values()])


def per_seed(runs: dict[int, dict[str, float]], key: str) -> dict[int, float]:
    return {seed: m[key] for seed, m in runs.items() if key in m}


def ordering_verdict(results: dict[str, dict[int, dict[str, float]]],
                     labels: dict[str, str]) -> list[str]:
    """Plain-language comparison of our HM-PQ ordering with the paper's.

    The paper's Table 1 adds one component per row and each raises HM-PQ:
    projection < GMMN < P < P + A < PADing. Every variant shares the seeds
    and the stage-1 weights, so each adjacent pair is compared seed by seed
    (:func:`seed_statistics.paired_comparison`): a step holds when the
    paired t-test finds HM-PQ higher (p < 0.05), is broken when it finds it
    lower, and does not show when it finds no significant difference.

    Args:
        results: ``{variant key: {seed: metrics}}`` in Table 1 order.
        labels: ``{variant key: row label}``.

    Returns:
        list[str]: Markdown lines.
    """
    keys = list(results)
    stats = {k: summarise(results[k], HM_PQ) for k in keys}
    lines = []
    verdicts = []
    for lower, upper in zip(keys, keys[1:]):
        comparison = paired_comparison(per_seed(results[upper], HM_PQ),
                                       per_seed(results[lower], HM_PQ))
        verdicts.append(comparison.verdict())
        relation = {'higher': '>', 'lower': '<'}.get(comparison.verdict(),
                                                      '≈')
        meaning = {
            'higher': 'as in the paper.',
            'lower': '**unlike the paper**: significantly lower.',
        }.get(comparison.verdict(),
              'no significant difference: the paper\'s step does not show '
              'here.')
        lines.append(
            f'- {labels[upper]} {relation} {labels[lower]}: HM-PQ '
            f'{stats[upper].mean:.1f} vs {stats[lower].mean:.1f}, '
            f'difference {comparison.mean_diff:+.1f} ± '
            f'{comparison.half_width:.1f} (95% CI), paired t-test p = '
            f'{comparison.p_value:.3f}, higher in {comparison.wins} of '
            f'{comparison.n} seeds'
            + (f', equal in {comparison.ties}' if comparison.ties else '')
            + f' — {meaning}')
    steps = len(keys) - 1
    rises = verdicts.count('higher')
    drops = verdicts.count('lower')
    ranked = sorted(keys, key=lambda k: stats[k].mean)
    if rises == steps:
        head = ('**The ordering matches the paper**: every added component '
                'raises HM-PQ significantly')
    elif rises == 0:
        head = ('**The ordering does not match the paper**: no added '
                'component raises HM-PQ significantly')
    else:
        head = (f'**The ordering partly matches the paper**: {rises} of '
                f'{steps} added components raise HM-PQ significantly')
    head += (f' (paired t-test over seeds, p < {ALPHA}); {drops} of {steps} '
             'lower it significantly. Ranked by mean HM-PQ: '
             + ' < '.join(f'{labels[k]} ({stats[k].mean:.1f})'
                          for k in ranked) + '.')
    return [head, ''] + lines


# ----------------------------------------------------------------- report
def table(results: dict[str, dict[int, dict[str, float]]],
          labels: dict[str, str], metrics: Sequence[tuple[str, str]],
          first_column: str = 'variant') -> list[str]:
    header = f'| {first_column} | ' + ' | '.join(
        f'{name} {group}' for name, _ in metrics
        for group in ('seen', 'unseen', 'HM')) + ' |'
    lines = [header, '|---' * (1 + 3 * len(metrics)) + '|']
    for key, runs in results.items():
        cells = [
            summarise(runs, f'{prefix}_{group}').format()
            for _, prefix in metrics for group in GROUPS
        ]
        lines.append(f'| {labels[key]} | ' + ' | '.join(cells) + ' |')
    return lines


def paper_table1() -> list[str]:
    lines = [
        '| variant | PQ seen | PQ unseen | PQ HM |', '|---|---|---|---|'
    ]
    for variant in ABLATION_VARIANTS:
        values = PAPER_TABLE1.get(variant.label, {}).get('PQ')
        cells = ['—'] * 3 if values is None else [
            '—' if v is None else f'{v:.1f}' for v in values
        ]
        lines.append(f'| {variant.label} | ' + ' | '.join(cells) + ' |')
    return lines


def bar_chart(results: dict[str, dict[int, dict[str, float]]],
              labels: dict[str, str], path: str) -> None:
    """HM and unseen figures per variant, error bars = 95% CIs over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    shown = (('PQ HM', 'gzsl_panoptic/PQ_hm'),
             ('PQ unseen', 'gzsl_panoptic/PQ_unseen'),
             ('mIoU HM', 'gzsl_semseg/mIoU_hm'),
             ('mask mAP50 HM', 'gzsl_instance/segm_mAP50_hm'),
             ('box mAP50 HM', 'gzsl_instance/bbox_mAP50_hm'))
    keys = list(results)
    x = np.arange(len(shown))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for i, key in enumerate(keys):
        stats = [summarise(results[key], metric) for _, metric in shown]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width,
               [s.mean for s in stats],
               width,
               yerr=[s.half_width for s in stats],
               capsize=2,
               label=labels[key])
    ax.set_xticks(x, [name for name, _ in shown])
    ax.set_ylabel('score (mean, 95% CI over seeds)')
    seeds = len(next(iter(results.values())))
    ax.set_title(f'Toy data set: stage-2 variants ({seeds} seeds each)')
    ax.legend(fontsize=8, ncol=len(keys))
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_chart(sweep: dict[int, dict[int, dict[str, float]]],
                path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    sizes = sorted(sweep)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, metric in (('PQ HM', HM_PQ),
                         ('PQ unseen', 'gzsl_panoptic/PQ_unseen'),
                         ('PQ seen', 'gzsl_panoptic/PQ_seen')):
        stats = [summarise(sweep[n], metric) for n in sizes]
        ax.errorbar(sizes, [s.mean for s in stats],
                    yerr=[s.half_width for s in stats],
                    marker='o', capsize=3, label=name)
    ax.set_xscale('log', base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel('number of primitives')
    ax.set_ylabel('PQ (mean, 95% CI over seeds)')
    ax.set_title('Toy data set: PADing vs primitive bank size')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def share_of(runs: dict[int, dict[str, float]], key: str) -> str:
    """Mean over seeds of a logged gradient share, three digits."""
    values = [m[key] for m in runs.values() if key in m]
    return f'{statistics.fmean(values):.3g}' if values else 'n/a'


def lambda_section(lambdas: dict[str, dict[float, dict[int, dict]]]
                   ) -> list[str]:
    """The lambda sweep: HM-PQ of P + A and PADing per lambda, the paired
    difference PADing - (P + A) and the gradient share of A + D."""
    values = sorted({v for by_value in lambdas.values() for v in by_value})
    p_a, pading = lambdas.get('p_a', {}), lambdas.get('pading', {})
    lines = [
        '## λ sweep: how strongly A and D act', '',
        'λ weights the alignment (A) and disentanglement (D) losses in the '
        f'generator step ({DEFAULT_LAMBDA:g}: the configs\', the paper\'s '
        'panoptic value). A + D share: the norm of their gradient on the '
        'generator over that of MMD + the synthetic CE '
        '(`grad_share/ad_ratio`, GradientShareHook), mean over the log and '
        'the seeds. PADing − P + A: the paired difference of HM-PQ over the '
        'seeds both ran, with its 95% CI and paired t-test.', '',
        '| λ | P + A HM-PQ | PADing HM-PQ | PADing unseen PQ | '
        'PADing − P + A | p | A + D share (P + A) | A + D share (PADing) |',
        '|---|---|---|---|---|---|---|---|'
    ]
    for value in values:
        cells = [
            summarise(p_a[value], HM_PQ).format() if value in p_a else 'n/a',
            summarise(pading[value], HM_PQ).format()
            if value in pading else 'n/a',
            summarise(pading[value], 'gzsl_panoptic/PQ_unseen').format()
            if value in pading else 'n/a'
        ]
        if value in p_a and value in pading and len(
                set(p_a[value]) & set(pading[value])) > 1:
            diff = paired_comparison(per_seed(pading[value], HM_PQ),
                                     per_seed(p_a[value], HM_PQ))
            cells += [f'{diff.mean_diff:+.1f} ± {diff.half_width:.1f}',
                      f'{diff.p_value:.3f}']
        else:
            cells += ['n/a', 'n/a']
        cells += [share_of(p_a.get(value, {}), GRADIENT_SHARES[0]),
                  share_of(pading.get(value, {}), GRADIENT_SHARES[0])]
        lines.append(f'| {value:g} | ' + ' | '.join(cells) + ' |')
    return lines + ['']


SNIPPET_NEEDS = '<!-- snippet: needs=default_toy,trained_checkpoints -->'
TRADEOFF_NEEDS = ('<!-- snippet: needs=default_toy,trained_checkpoints,'
                  'feature_cache -->')
FIGURES = (
    ('tsne', 'vis_features.py', ('gmmn', 'p', 'pading'),
     'Fig. 5 analogue: t-SNE of real seen, real unseen and synthetic '
     'unseen class embeddings.'),
    ('predictions', 'vis_predictions.py', ('gmmn', 'pading'),
     'Fig. 6 analogue: ground truth | GMMN | PADing panoptic predictions '
     '(`*` marks unseen classes).'),
)


def figure_section(args: argparse.Namespace, record: dict) -> list[str]:
    """Figures 5 and 6 analogues, when they sit beside the report.

    They are ``<out stem>_tsne.png`` and ``<out stem>_predictions.png``,
    drawn from the seed-0 checkpoints of this ablation by their own tools;
    the section gives the commands (runs from the feature cache hold the
    learner only: they are merged with the stage-1 weights first).
    """
    stem = osp.splitext(args.out)[0]
    seed_dir = {key: osp.join(args.work_dir, key, f'seed{args.seeds[0]}')
                for key in ('gmmn', 'p', 'pading')}
    trained = {key: osp.join(folder,
                             f'iter_{record["schedule"]["stage2_iters"]}.pth')
               for key, folder in seed_dir.items()}
    if record['feature_cache']:
        stage1 = osp.join(args.work_dir, 'stage1',
                          f'iter_{record["schedule"]["stage1_iters"]}.pth')
        runs = {key: osp.join(folder, 'merged.pth')
                for key, folder in seed_dir.items()}
        merge = {
            key: 'python tools/model_converters/merge_cached_learner.py '
            f'{stage1} {trained[key]} {runs[key]}' for key in runs
        }
    else:
        runs, merge = trained, {}
    configs = {'gmmn': ('GMMN', 'pading_toy_stage2_gmmn'),
               'p': ('P', 'pading_toy_stage2_p'),
               'pading': ('PADing', 'pading_toy_stage2')}
    lines = []
    for suffix, tool, keys, caption in FIGURES:
        png = f'{stem}_{suffix}.png'
        if not osp.isfile(png):
            continue
        name = osp.basename(png)
        models = ' '.join(
            f'--model {configs[k][0]} {configs[k][1]} {runs[k]}'
            for k in keys)
        lines += [
            f'### {name}', '', caption, '', f'![{name}]({name})', '',
            # What the docs' snippet test gives the block: the default toy
            # data set and stand-ins of the checkpoints it names.
            *([SNIPPET_NEEDS] if record['data_root'] == 'data/toy' else []),
            '```bash', *[merge[k] for k in keys if k in merge],
            f'python tools/analysis_tools/{tool} --data-root '
            f'{record["data_root"]} {models} --out {png}', '```', ''
        ]
    return ['## Figures', ''] + lines if lines else []


def read_split(data_root: str) -> dict | None:
    """The data set's own split (``split.json``), if it has one."""
    path = osp.join(data_root, 'split.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        split = json.load(f)
    return {key: split[key] for key in ('name', 'seen', 'unseen')
            if key in split}


def tradeoff_section(args: argparse.Namespace) -> list[str]:
    """The seen / unseen trade-off of this ablation's runs, when
    ``seen_unseen_tradeoff.py`` has written ``<out stem>_tradeoff.json``
    beside the report: its AUSUC table, figure and command."""
    stem = osp.splitext(args.out)[0] + '_tradeoff'
    if not osp.isfile(stem + '.json'):
        return []
    with open(stem + '.json') as f:
        raw = json.load(f)
    lines = [
        '## Seen / unseen trade-off', '',
        'The models of the command below, each evaluated with the '
        'seen-score calibration γ (`calibration_gamma`: subtracted from '
        'the seen classes\' probabilities; for γ < 0, |γ| from the unseen '
        'classes\' instead) at γ = '
        + ', '.join(f'{g:g}' for g in raw['gammas']) + '. AUSUC: the area '
        'under the seen-against-unseen curve (Chao et al., ECCV 2016), in '
        '[0, 1]. **The tables above are at γ = 0, the paper\'s protocol**; '
        'the best γ is chosen on this validation set itself, so its HM is '
        'not a result, only how far calibration could move the model '
        '(choose γ on held-out data to calibrate).', '',
        '| model | AUSUC PQ | AUSUC mIoU | AUSUC mask mAP50 | HM-PQ at γ = 0 '
        '| best HM-PQ | at γ |', '|---|---|---|---|---|---|---|'
    ]
    for label, by_metric in raw['summary'].items():
        pq = by_metric['PQ']
        lines.append(
            f'| {label} | {pq["ausuc"]:.3f} | '
            f'{by_metric["mIoU"]["ausuc"]:.3f} | '
            f'{by_metric["mask mAP50"]["ausuc"]:.3f} | '
            + ('n/a' if pq['hm_at_0'] is None else f'{pq["hm_at_0"]:.1f}')
            + f' | {pq["best_hm"]:.1f} | {pq["best_gamma"]:g} |')
    name = osp.basename(stem) + '.png'
    return lines + ['', f'![trade-off]({name})', '', TRADEOFF_NEEDS,
                    '```bash', raw['command'], '```', '',
                    *tradeoff_seeds_section(stem + '_seeds')]


def tradeoff_seeds_section(stem: str) -> list[str]:
    """The trade-off over seeds (``seen_unseen_tradeoff.py --seeds``),
    when ``<stem>.json`` exists: AUSUC-PQ with its CI, the paired tests,
    and γ chosen on a held-out draw (the command is in ``<stem>.md``)."""
    if not osp.isfile(stem + '.json'):
        return []
    with open(stem + '.json') as f:
        raw = json.load(f)
    seeds = ', '.join(str(s) for s in raw['seeds'])
    lines = [
        f'Over seeds {seeds} ([{osp.basename(stem)}.md]'
        f'({osp.basename(stem)}.md), which has every curve and the '
        'command), on γ = ' + ', '.join(f'{g:g}' for g in raw['gammas'])
        + ':', '',
        '| model | AUSUC PQ (mean ± 95% CI) | vs the row above: Δ, p |',
        '|---|---|---|'
    ]
    against = {row['upper']: row for row in raw['comparisons']
               if row['metric'] == 'PQ'}
    for label, by_metric in raw['summary'].items():
        pq = by_metric['PQ']
        row = against.get(label)
        test = '—' if row is None else (
            f'{row["mean_diff"]:+.3f} ± {row["half_width"]:.3f}, '
            f'p = {row["p_value"]:.2g} ({row["wins"]} of {row["n"]} seeds '
            'higher)')
        lines.append(f'| {label} | {pq["ausuc"]:.3f} ± '
                     f'{pq["ausuc_half_width"]:.3f} | {test} |')
    if raw.get('dev'):
        lines += [
            '', 'γ chosen per model and seed on a held-out toy draw (best '
            'HM-PQ there), and this validation set at that γ, against '
            'γ = 0 (paired by seed):', '',
            '| model | HM-PQ at γ = 0 | at the chosen γ | Δ, p | the best '
            'model at γ = 0 minus this one at its γ |',
            '|---|---|---|---|---|']
        for label, row in raw['dev'].items():
            gap = row.get('leader_at_0_minus_this')
            gap_text = '—' if gap is None else (
                f'{gap["leader"]}: {gap["mean_diff"]:+.1f} ± '
                f'{gap["half_width"]:.1f}, p = {gap["p_value"]:.2g}')
            lines.append(
                f'| {label} | {row["hm_at_0"]["mean"]:.1f} ± '
                f'{row["hm_at_0"]["half_width"]:.1f} | '
                f'{row["hm_at_choice"]["mean"]:.1f} ± '
                f'{row["hm_at_choice"]["half_width"]:.1f} | '
                f'{row["mean_diff"]:+.1f} ± {row["half_width"]:.1f}, '
                f'p = {row["p_value"]:.2g} | {gap_text} |')
    return lines + ['']


def split_description(data_root: str, split: dict | None = None) -> str:
    """The classes and the unseen ones of the data set's own split."""
    split = split or read_split(data_root)
    if split is None:
        return f'split unknown: {osp.join(data_root, "split.json")} is missing'
    total = len(split['seen']) + len(split['unseen'])
    return (f'`{data_root}`, split {split.get("name", "?")!r}: all {total} '
            f'classes; unseen: {", ".join(split["unseen"])}')


def schedule(args: argparse.Namespace) -> dict[str, int]:
    """Stage-1 and stage-2 iterations of the runs: the options', else
    the toy configs'."""
    return {
        'stage1_iters': args.stage1_iters or toy_config(
            'pading_toy_stage1', args.data_root).train_cfg.max_iters,
        'stage2_iters': args.stage2_iters or toy_config(
            'pading_toy_stage2', args.data_root).train_cfg.max_iters,
    }


def run_record(args: argparse.Namespace, elapsed_s: float | None) -> dict:
    """What the report says about how its runs were made."""
    return {
        'command': 'python tools/analysis_tools/run_ablation.py ' +
        shlex.join(a for a in args.argv if a != '--report-only'),
        'data_root': args.data_root,
        'split': read_split(args.data_root),
        'schedule': schedule(args),
        'feature_cache': bool(args.feature_cache),
        'machine': (f'{platform.machine()}, Python '
                    f'{platform.python_version()}, {os.cpu_count()} CPU '
                    'cores'),
        'elapsed_s': elapsed_s,
    }


def write_report(results: dict[str, dict[int, dict[str, float]]],
                 sweep: dict[int, dict[int, dict[str, float]]],
                 args: argparse.Namespace, stage1: dict[str, float] | None,
                 elapsed_s: float | None,
                 lambdas: dict[str, dict[float, dict[int, dict]]]
                 | None = None,
                 record: dict | None = None) -> str:
    """Write the Markdown report, the charts and the raw metrics.

    Args:
        record (dict, optional): How the runs were made (command, split,
            schedule, machine, wall time: :func:`run_record`); by default
            this invocation's.

    Returns:
        str: The report's text.
    """
    record = record or run_record(args, elapsed_s)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(args.out)[0]
    labels = {v.key: v.label for v in ABLATION_VARIANTS}
    seeds = sorted({s for runs in results.values() for s in runs})
    chart = stem + '.png'
    bar_chart(results, labels, chart)
    sweep_png = stem + '_primitives.png' if len(sweep) > 1 else None
    if sweep_png:
        sweep_chart(sweep, sweep_png)
    sweep_labels = {n: f'{n}' + (' (default)' if n == DEFAULT_PRIMITIVES
                                 else '') for n in sweep}

    iters = (f'stage 1: {record["schedule"]["stage1_iters"]} iterations; '
             f'stage 2: {record["schedule"]["stage2_iters"]} iterations')
    split_text = split_description(record['data_root'], record['split'])
    lines = [
        '# Toy ablation: the paper\'s story on the toy data set', '',
        'Every figure here comes from one command (below); rerun it to '
        'reproduce them. Values are mean ± the half-width of the 95% '
        f'confidence interval (Student t) over {len(seeds)} stage-2 seeds '
        f'({", ".join(map(str, seeds))}; the primitive sweep: its own '
        'seeds, below); every variant starts from the same stage-1 '
        'checkpoint, trained once. Scores are in %, on the toy validation '
        f'set ({split_text}).', '',
        '```bash', record['command'].strip(), '```', '',
        f'- Schedule: {iters}, batch 8, 128 px, CPU'
        + (', stage 2 from the feature cache of the stage-1 segmenter.'
           if record['feature_cache'] else '.'),
        f'- Machine: {record["machine"]}.',
    ]
    # The default entries of the sweeps are the Table 1 rows: count once.
    unique_runs = {json.dumps(m, sort_keys=True): m for runs in (
        *results.values(), *sweep.values(),
        *(r for by_value in (lambdas or {}).values()
          for r in by_value.values())) for m in runs.values()}
    run_times = [m['wall_time_s'] for m in unique_runs.values()
                 if 'wall_time_s' in m]
    if run_times:
        lines.append(
            f'- Stage-2 runs: {len(run_times)}, each training + evaluation '
            f'{statistics.median(run_times) / 60:.1f} min (median), '
            f'{sum(run_times) / 60:.0f} min in all.')
    if record['elapsed_s'] is not None:
        lines.append(
            f'- Wall time of this command: {record["elapsed_s"] / 60:.1f} '
            'min (runs reused from the cache take none).')
    lines += [
        f'- Raw metrics of every run: `{osp.basename(stem)}.json`.', '',
        '## Does the ordering match the paper?', ''
    ]
    lines += ordering_verdict(results, labels)
    lines += [
        '', '## Table 1 layout: panoptic quality', '',
        *table(results, labels, TABLE1), '',
        f'![variants]({osp.basename(chart)})', '',
        '## Table 2 layout: the same panoptic models on semantic and '
        'instance metrics', '', *table(results, labels, TABLE2), '',
        'mIoU comes from the semantic output of the universal model; '
        'mask and box mAP50 from its instance output, scored on the '
        'thing classes only.', ''
    ]
    if stage1 is not None:
        lines += [
            'The stage-1 model alone (seen classifier, no unseen '
            'output) scores seen PQ '
            f'{stage1.get("gzsl_panoptic/PQ_seen", math.nan):.1f}, '
            'unseen PQ '
            f'{stage1.get("gzsl_panoptic/PQ_unseen", math.nan):.1f}.', ''
        ]
    if sweep:
        lines += [
            '## Table 3 analogue: number of primitives (PADing)', '',
            'Mean ± the half-width of the 95% CI over seeds ' + ', '.join(
                map(str, sorted({s for runs in sweep.values()
                                 for s in runs}))) + '.', '',
            *table(sweep, sweep_labels, TABLE1[:1], 'primitives'), ''
        ]
        if sweep_png:
            lines += [f'![primitives]({osp.basename(sweep_png)})', '']
    if lambdas:
        lines += lambda_section(lambdas)
    lines += tradeoff_section(args)
    lines += figure_section(args, record)
    lines += [
        '## The paper\'s COCO figures (R-50)', '',
        'Zero-shot panoptic segmentation, COCO 119 seen / 14 unseen '
        '(Table 1; rows the paper figures we quote do not cover are '
        'marked —):', '', *paper_table1(), '',
        'The paper reports the other tasks with dedicated models '
        '(not the panoptic model of Table 2 above):', '',
        '| task | metric | seen | unseen | HM |', '|---|---|---|---|---|'
    ]
    for task, metric, values in PAPER_OTHER_TASKS:
        lines.append(f'| {task} | {metric} | ' +
                     ' | '.join(f'{v:.1f}' for v in values) + ' |')
    split = record['split']
    classes = ('' if split is None else
               f'{len(split["seen"]) + len(split["unseen"])} ')
    lines += [
        '', f'The toy set is not COCO: {classes}procedural classes, 128 px, '
        'a small model trained from scratch on the CPU. Absolute figures '
        'are not comparable; the ordering of the variants is what the '
        'toy set can test.', ''
    ]
    text = '\n'.join(lines)
    with open(args.out, 'w') as f:
        f.write(text)
    raw = {
        'seeds': seeds,
        'variants': {k: {str(s): m for s, m in runs.items()}
                     for k, runs in results.items()},
        'primitives': {str(n): {str(s): m for s, m in runs.items()}
                       for n, runs in sweep.items()},
        'lambdas': {base: {f'{value:g}': {str(s): m for s, m in runs.items()}
                           for value, runs in by_value.items()}
                    for base, by_value in (lambdas or {}).items()},
        'stage1': stage1,
        'run': record,
    }
    with open(stem + '.json', 'w') as f:
        json.dump(raw, f, indent=1)
    return text


def collect(args: argparse.Namespace,
            stage1_checkpoint: str | None) -> tuple[dict, dict, dict]:
    """Train/evaluate (or read from the cache) every run.

    Returns:
        tuple: Table 1 ``{variant key: {seed: metrics}}``, the primitive
        sweep ``{bank size: {seed: metrics}}`` and the lambda sweep
        ``{base key: {lambda: {seed: metrics}}}``; a run two of them share
        (the defaults) is trained once.
    """
    variants = [v for v in ABLATION_VARIANTS if v.key in args.variants]
    sweep_variants = {n: primitive_variant(n) for n in args.primitives}
    lambda_variants = {(base, value): lambda_variant(base, value)
                       for base in LAMBDA_BASES for value in args.lambdas}
    planned = [(v, s) for v in variants for s in args.seeds]
    planned += [(v, s) for v in sweep_variants.values()
                for s in args.sweep_seeds]
    planned += [(v, s) for v in lambda_variants.values()
                for s in args.lambda_seeds]
    planned = list({(v.key, s): (v, s) for v, s in planned}.values())
    results: dict[str, dict[int, dict]] = {}
    for index, (variant, seed) in enumerate(planned, start=1):
        if args.report_only:
            metrics = load_cached(run_dir(args.work_dir, variant, seed))
            if metrics is None:
                continue
        else:
            banner(f'[{index}/{len(planned)}] {variant.label}, seed {seed}')
            metrics = run_variant(variant, seed, stage1_checkpoint, args)
        results.setdefault(variant.key, {})[seed] = metrics

    def runs_of(variant: Variant, seeds: Sequence[int]) -> dict:
        return {s: m for s, m in results.get(variant.key, {}).items()
                if s in seeds}

    table1 = {v.key: runs_of(v, args.seeds) for v in variants
              if runs_of(v, args.seeds)}
    sweep = {n: runs_of(v, args.sweep_seeds)
             for n, v in sweep_variants.items()
             if runs_of(v, args.sweep_seeds)}
    lambdas: dict[str, dict[float, dict]] = {}
    for (base, value), variant in lambda_variants.items():
        if runs := runs_of(variant, args.lambda_seeds):
            lambdas.setdefault(base, {})[value] = runs
    if not table1:
        raise SystemExit(
            f'No finished runs in {args.work_dir}: run without '
            '--report-only first.')
    return table1, sweep, lambdas


def load_raw_metrics(args: argparse.Namespace
                     ) -> tuple[argparse.Namespace, tuple, dict]:
    """The runs, stage-1 metrics and run record of ``<out stem>.json``.

    Returns:
        tuple: The recorded command's arguments (writing to ``args.out``),
        ``(results, sweep, lambdas, stage1)`` as :func:`collect` and
        :func:`main` have them, and the run record.
    """
    path = osp.splitext(args.out)[0] + '.json'
    if not osp.isfile(path):
        raise SystemExit(f'error: --from-json reads {path}, which does not '
                         'exist; pass the --out of the report to rewrite')
    with open(path) as f:
        raw = json.load(f)
    record = raw.get('run')
    if record is None:
        raise SystemExit(
            f'error: {path} has no run record (command, split, schedule): '
            'it was written before --from-json existed; rerun the command '
            'of its report with --reuse --report-only instead')
    argv = shlex.split(record['command'])[2:]
    recorded = parse_args(argv + ['--out', args.out])
    recorded.argv = argv

    def by_seed(runs: dict) -> dict:
        return {int(seed): metrics for seed, metrics in runs.items()}

    results = {key: by_seed(runs) for key, runs in raw['variants'].items()}
    sweep = {int(n): by_seed(runs) for n, runs in raw['primitives'].items()}
    lambdas = {base: {float(value): by_seed(runs)
                      for value, runs in by_value.items()}
               for base, by_value in raw['lambdas'].items()}
    return recorded, (results, sweep, lambdas, raw['stage1']), record


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        recorded, runs, record = load_raw_metrics(args)
        results, sweep, lambdas, stage1_metrics = runs
        text = write_report(results, sweep, recorded, stage1_metrics,
                            record['elapsed_s'], lambdas, record)
        banner(f'Report: {args.out}')
        print(text)
        return
    start = time.time()
    stage1_dir = osp.join(args.work_dir, 'stage1')
    stage1_checkpoint = None
    stage1_metrics = load_cached(stage1_dir)
    if not args.report_only:
        if not osp.isfile(osp.join(args.data_root, 'split.json')):
            banner(f'Generating the toy data set in {args.data_root}')
            generate_toy_dataset(args.data_root, seed=0, progress=True)
        banner('Stage 1: Mask2Former on seen classes (trained once)')
        stage1_checkpoint = train_toy_config(
            'pading_toy_stage1', stage1_dir, args.data_root, args.seeds[0],
            args.stage1_iters, reuse=args.reuse)
        if stage1_metrics is None or not args.reuse:
            stage1_metrics = {
                k: float(v) for k, v in evaluate_toy_config(
                    'pading_toy_stage1', stage1_checkpoint, stage1_dir,
                    args.data_root).items()
            }
            with open(osp.join(stage1_dir, 'metrics.json'), 'w') as f:
                json.dump(stage1_metrics, f, indent=1)
    if args.feature_cache and not args.report_only:
        banner('Feature cache of the stage-1 segmenter (built once)')
        build_stage1_feature_cache(args, stage1_checkpoint)
    results, sweep, lambdas = collect(args, stage1_checkpoint)
    text = write_report(results, sweep, args, stage1_metrics,
                        None if args.report_only else time.time() - start,
                        lambdas)
    banner(f'Report: {args.out}')
    print(text)


if __name__ == '__main__':
    main()
