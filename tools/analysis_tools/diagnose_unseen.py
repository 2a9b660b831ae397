"""Why the toy's unseen PQ varies across seeds (a measurement).

Trains the demo's PADing stage 2 (``configs/toy/pading_toy_stage2.py``, or
another stage-2 config with ``--config``) from a feature cache of one
stage-1 checkpoint with seeds 0..N-1, keeping a checkpoint every
``--interval`` iterations, and scores every checkpoint on the cached
validation outputs:

- PQ seen / unseen / HM (the config's GZSL panoptic metric);
- per unseen ground-truth segment, the query whose mask (logit > 0 at the
  head's resolution, upsampled) overlaps it best: the segments some query
  covers with IoU > 0.5 (the segmenter's part; it does not change in
  stage 2), and of those, how the classifier labels that query: its own
  class, another unseen class, a seen class or no object, and whether the
  label's score passes the fusion head's ``object_mask_thr``;
- the margins of those queries' logits: own class minus the best seen
  class, and own class minus no object;
- the predicted panoptic segments with an unseen label (after the fusion
  head's thresholds and overlap filter) against the ground truth's;
- the classifier's class weights: the norm and bias of each unseen class
  against the seen classes' means (a ``Linear`` classifier);
- the generator's features against the real ones: how the classifier
  labels synthetic features of each class, and which real class mean is
  nearest each synthetic unseen mean (:func:`synthetic_check`).

Writes ``<out>.json`` (every seed, every checkpoint) and ``<out>.md``
(per seed at the last checkpoint, and unseen PQ over iterations).

Examples::

    python tools/analysis_tools/diagnose_unseen.py \\
        work_dirs/pading_toy_stage1/iter_600.pth --seeds 10
    python tools/analysis_tools/diagnose_unseen.py STAGE1 --seeds 2 \\
        --stage2-iters 40 --interval 20 --out /tmp/diag.json
"""
from __future__ import annotations

import argparse
import datetime
import os.path as osp
import shlex
import statistics
import sys
import uuid
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.config import DictAction
from mmengine.runner import Runner
from report_files import write_record_and_report
from torch import Tensor

import mmpading  # noqa: F401  (registers components)
from mmpading.apis import toy_config_names, train_toy_config
from mmpading.apis.feature_cache_builder import (
    build_feature_cache,
    cached_stage2_config,
    config_identity,
)
from mmpading.apis.toy_demo import DEFAULT_DATA_ROOT
from mmpading.datasets.feature_cache import FeatureCacheError
from mmpading.models.utils.stage2 import (
    classifier_for_inference,
    set_dataset_meta,
)
from mmpading.utils.config_utils import TOY_CONFIG_DIR, toy_config

DEFAULT_CONFIG = 'pading_toy_stage2'
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_OUT = osp.join(REPO_ROOT, 'docs', 'results', 'unseen_diagnosis.json')
# mmdet's panoptic label encoding: label + instance id * INSTANCE_OFFSET.
INSTANCE_OFFSET = 1000
OUTCOMES = ('own', 'other_unseen', 'seen', 'no_object')
# Synthetic features per class in the generator check.
SYNTHETIC_PER_CLASS = 64


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('stage1_checkpoint',
                        help='the stage-1 checkpoint stage 2 starts from')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG,
        help='the stage-2 config, a name in configs/toy (default '
        f'{DEFAULT_CONFIG}, the demo\'s PADing)')
    parser.add_argument('--seeds', type=int, default=10,
                        help='stage-2 seeds 0 .. N-1 (default 10)')
    parser.add_argument('--stage2-iters', type=int,
                        help="default: the config's (as the demo)")
    parser.add_argument('--interval', type=int, default=50,
                        help='iterations between scored checkpoints')
    parser.add_argument('--data-root', default=DEFAULT_DATA_ROOT)
    parser.add_argument('--work-dir', default='work_dirs/diagnose_unseen',
                        help='seed k trains into <work-dir>/seed<k>')
    parser.add_argument(
        '--feature-cache',
        help='a feature cache of the stage-1 checkpoint (default '
        '<work-dir>/feature_cache, built when missing)')
    parser.add_argument(
        '--cache-epochs', type=int,
        help='passes over the training set in the cache (default: as many '
        'as the schedule draws images; fewer are cycled)')
    parser.add_argument('--reuse', action='store_true',
                        help='keep finished seeds, resume interrupted ones')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        metavar='KEY=VALUE',
        help='dotted overrides of the stage-2 config for every seed, as '
        'tools/train.py takes them (e.g. '
        'model.zero_shot.num_unseen_per_iter=10)')
    parser.add_argument(
        '--threads', type=int, default=0,
        help="torch CPU threads (default 0: torch's default)")
    parser.add_argument('--out', default=DEFAULT_OUT,
                        help='the JSON; the Markdown report goes beside it')
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f'--seeds must be at least 1, got {args.seeds}')
    if args.threads < 0:
        parser.error(f'--threads must be >= 0, got {args.threads}')
    if args.cache_epochs is not None and args.cache_epochs < 1:
        parser.error('--cache-epochs must be at least 1')
    if args.interval < 1:
        parser.error(f'--interval must be at least 1, got {args.interval}')
    if not osp.isfile(osp.join(TOY_CONFIG_DIR, f'{args.config}.py')):
        names = [name for name in toy_config_names()
                 if name.startswith('pading_toy_stage2')]
        parser.error(f'--config {args.config}: no configs/toy/'
                     f'{args.config}.py; stage-2 configs: {", ".join(names)}')
    if not osp.isfile(args.stage1_checkpoint):
        parser.error(f'stage-1 checkpoint {args.stage1_checkpoint} does not '
                     'exist (tools/train.py configs/toy/pading_toy_stage1.py'
                     ' writes one)')
    if not osp.isfile(osp.join(args.data_root, 'split.json')):
        parser.error(f'--data-root {args.data_root} holds no toy data set '
                     '(tools/dataset_converters/make_toy_dataset.py)')
    if not osp.isdir(osp.dirname(osp.abspath(args.out))):
        parser.error(f'--out {args.out}: folder '
                     f'{osp.dirname(osp.abspath(args.out))} does not exist')
    args.options = dict(args.cfg_options)
    return args


def ground_truth_segments(sample, num_things: int) -> list[tuple[int, Tensor]]:
    """(label, mask (H, W) bool) of each thing instance and stuff region."""
    segments = []
    instances = sample.gt_instances
    if len(instances) > 0:
        masks = instances.masks.to_tensor(torch.bool, 'cpu')
        for label, mask in zip(instances.labels.tolist(), masks):
            segments.append((int(label), mask))
    semantic = sample.gt_sem_seg.sem_seg[0]
    for label in semantic.unique().tolist():
        if num_things <= label < 255:
            segments.append((int(label), semantic == label))
    return segments


def query_masks(mask_logits: Tensor, sample) -> Tensor:
    """Binary query masks (Q, H, W) at the image's size, as the fusion head
    sees them: logits upsampled to the padded input, then cropped."""
    height, width = sample.metainfo['img_shape'][:2]
    logits = F.interpolate(mask_logits[None],
                           size=tuple(sample.metainfo['batch_input_shape']),
                           mode='bilinear', align_corners=False)[0]
    return logits[:, :height, :width] > 0


def covering_queries(mask_logits: Tensor, sample,
                     num_things: int) -> list[tuple[int, int | None]]:
    """(label, the query covering it or None) of each GT segment.

    A query covers a segment when its mask has the best IoU with it and
    that IoU is above 0.5.
    """
    masks = query_masks(mask_logits, sample)
    areas = masks.flatten(1).sum(1)
    segments = []
    for label, mask in ground_truth_segments(sample, num_things):
        intersection = (masks & mask).flatten(1).sum(1)
        iou = intersection / (areas + mask.sum() - intersection).clamp(min=1)
        best = int(iou.argmax())
        segments.append((label, best if float(iou[best]) > 0.5 else None))
    return segments


def score_image(logits: Tensor, covering: list[tuple[int, int | None]],
                prediction, seen_ids: list[int], unseen_ids: list[int],
                threshold: float) -> dict:
    """One validation image's unseen diagnostics (counts and margins).

    Args:
        logits (Tensor): The classifier's logits of its queries, (Q, K + 1).
        covering (list): :func:`covering_queries` of the image.
        prediction: Its output data sample (``pred_panoptic_seg``).
    """
    no_object = logits.shape[-1] - 1
    scores = logits.softmax(-1)
    unseen = set(unseen_ids)
    result = dict(gt_segments=0, covered=0,
                  **{outcome: 0 for outcome in OUTCOMES},
                  own_passing=0, margin_seen=[], margin_no_object=[],
                  labelled_as=[])
    for label, best in covering:
        if label not in unseen:
            continue
        result['gt_segments'] += 1
        if best is None:
            continue
        result['covered'] += 1
        row = logits[best]
        predicted = int(row.argmax())
        if predicted == label:
            outcome = 'own'
            result['own_passing'] += int(float(scores[best, label]) >
                                         threshold)
        elif predicted in unseen:
            outcome = 'other_unseen'
        elif predicted == no_object:
            outcome = 'no_object'
        else:
            outcome = 'seen'
        result[outcome] += 1
        result['labelled_as'].append((label, predicted))
        result['margin_seen'].append(
            float(row[label] - row[seen_ids].max()))
        result['margin_no_object'].append(float(row[label] - row[no_object]))
    panoptic = prediction.pred_panoptic_seg.sem_seg[0]
    labels = [int(value) % INSTANCE_OFFSET for value in panoptic.unique()]
    result['predicted_unseen_segments'] = sum(label in unseen
                                              for label in labels)
    return result


def classifier_weights(classifier: torch.nn.Module, seen_ids: list[int],
                       unseen_ids: list[int], classes: Sequence[str]
                       ) -> dict | None:
    """Norms and biases of a Linear classifier's class rows."""
    if not isinstance(classifier, torch.nn.Linear):
        return None
    norms = classifier.weight.detach().norm(dim=1)
    bias = classifier.bias.detach()
    return dict(
        seen_norm_mean=float(norms[seen_ids].mean()),
        seen_bias_mean=float(bias[seen_ids].mean()),
        no_object_norm=float(norms[-1]),
        no_object_bias=float(bias[-1]),
        unseen={classes[i]: dict(norm=float(norms[i]), bias=float(bias[i]))
                for i in unseen_ids})


def nearest_class(feature: Tensor, class_means: dict[int, Tensor],
                  exclude: int | None = None) -> int | None:
    """The class whose mean feature is closest (cosine) to ``feature``."""
    candidates = [label for label in class_means if label != exclude]
    if not candidates:
        return None
    means = torch.stack([class_means[label] for label in candidates])
    similarity = F.cosine_similarity(means, feature[None], dim=1)
    return candidates[int(similarity.argmax())]


@torch.no_grad()
def synthetic_check(learner: torch.nn.Module, classifier: torch.nn.Module,
                    real_features: dict[int, list[Tensor]],
                    seen_ids: list[int], unseen_ids: list[int],
                    classes: Sequence[str],
                    per_class: int = SYNTHETIC_PER_CLASS) -> dict | None:
    """How the generator's features of each class compare with real ones.

    Draws ``per_class`` synthetic features of every class as the classifier
    step does (the generator in training mode, a fixed random stream), and
    reports for each unseen class: the share the classifier gives its own
    label, the real class (mean of the validation queries covering that
    class's segments) nearest the synthetic mean, and the seen class nearest
    the real unseen mean; for the seen classes the mean own-label share and
    how many have their own real mean nearest their synthetic mean.

    Returns:
        dict | None: None for a learner without a generator.
    """
    generator = learner.generator
    if generator is None:
        return None
    num_classes = len(classes)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    was_training = generator.training
    generator.train()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            synthetic = generator(learner.class_semantic_embeddings[labels])
    finally:
        generator.train(was_training)
    predicted = classifier(synthetic.float()).argmax(-1)
    synthetic = synthetic.float().view(num_classes, per_class, -1)
    own = (predicted.view(num_classes, per_class)
           == torch.arange(num_classes)[:, None]).float().mean(1)
    real_means = {label: torch.stack(rows).mean(0)
                  for label, rows in real_features.items() if rows}
    seen_means = {label: mean for label, mean in real_means.items()
                  if label not in unseen_ids}

    def name(label: int | None) -> str | None:
        return None if label is None else classes[label]

    seen_fit = sum(
        nearest_class(synthetic[k].mean(0), real_means) == k
        for k in seen_ids if k in real_means)
    return dict(
        per_class=per_class,
        seen_own_share=float(own[seen_ids].mean()),
        seen_nearest_own=int(seen_fit),
        seen_with_real=sum(k in real_means for k in seen_ids),
        unseen={
            classes[k]: dict(
                own_share=float(own[k]),
                synthetic_nearest_real=name(
                    nearest_class(synthetic[k].mean(0), real_means)),
                real_nearest_seen=name(
                    nearest_class(real_means[k], seen_means))
                if k in real_means else None)
            for k in unseen_ids
        })


class CheckpointScorer:
    """Scores stage-2 checkpoints trained from one feature cache on its
    cached validation outputs (one runner, reused)."""

    def __init__(self, config: str, cache_dir: str, data_root: str,
                 work_dir: str, options: dict) -> None:
        cfg = cached_stage2_config(
            toy_config(config, data_root, work_dir, **options), cache_dir)
        # The runner only loads and scores: no training hooks. An EMAHook
        # would fail on a checkpoint (its copy is made in before_run, which
        # never runs here); its checkpoints' state_dict holds the averaged
        # weights already, which are what is scored.
        cfg.custom_hooks = []
        cfg.experiment_name = f'diagnose_unseen_{uuid.uuid4().hex[:8]}'
        if cfg.get('visualizer') is not None:
            cfg.visualizer.name = cfg.experiment_name
        self.runner = Runner.from_cfg(cfg)
        loop = self.runner.test_loop
        self.dataloader, self.evaluator = loop.dataloader, loop.evaluator
        meta = self.dataloader.dataset.metainfo
        self.classes = list(meta['classes'])
        self.seen_ids = [self.classes.index(c) for c in meta['seen_classes']]
        self.unseen_ids = [
            self.classes.index(c) for c in meta['unseen_classes']
        ]
        self.num_things = len(meta['thing_classes'])
        self.threshold = float(cfg.model.test_cfg.object_mask_thr)
        set_dataset_meta(self.runner.model, meta)

    @torch.no_grad()
    def score(self, checkpoint: str) -> dict:
        """PQ and the unseen diagnostics of one checkpoint."""
        self.runner.load_checkpoint(checkpoint, map_location='cpu')
        model = self.runner.model
        model.eval()
        classifier = classifier_for_inference(model)
        totals: dict = {}
        # Class -> embeddings of the queries covering its GT segments.
        real_features: dict[int, list[Tensor]] = {}
        for batch in self.dataloader:
            outputs = model.test_step(batch)
            self.evaluator.process(data_samples=outputs, data_batch=batch)
            for embeddings, mask_logits, sample, output in zip(
                    batch['embeddings'], batch['mask_logits'],
                    batch['data_samples'], outputs):
                covering = covering_queries(mask_logits.float(), sample,
                                            self.num_things)
                for label, best in covering:
                    if best is not None:
                        real_features.setdefault(label, []).append(
                            embeddings[best].float())
                image = score_image(classifier(embeddings.float()),
                                    covering, output, self.seen_ids,
                                    self.unseen_ids, self.threshold)
                for key, value in image.items():
                    totals[key] = totals.get(key, 0 if isinstance(
                        value, int) else []) + value
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        margins = {
            key: statistics.fmean(totals[key]) if totals[key] else None
            for key in ('margin_seen', 'margin_no_object')
        }
        totals.update(margins)
        # {unseen class: {predicted label: queries}}; K is no object.
        names = self.classes + ['no object']
        confusion: dict = {}
        for label, predicted in totals.pop('labelled_as'):
            row = confusion.setdefault(names[label], {})
            row[names[predicted]] = row.get(names[predicted], 0) + 1
        totals['labelled_as'] = confusion
        return dict(
            pq={group: float(metrics[f'gzsl_panoptic/PQ_{group}'])
                for group in ('seen', 'unseen', 'hm')},
            unseen_segments=totals,
            weights=classifier_weights(classifier, self.seen_ids,
                                       self.unseen_ids, self.classes),
            synthetic=synthetic_check(model.learner, classifier,
                                      real_features, self.seen_ids,
                                      self.unseen_ids, self.classes))


def iteration_of(checkpoint: str) -> int:
    return int(osp.basename(checkpoint)[len('iter_'):-len('.pth')])


def run_seed(seed: int, args: argparse.Namespace, cache_dir: str,
             scorer: CheckpointScorer) -> dict:
    """Train one seed from the cache and score each of its checkpoints."""
    work_dir = osp.join(args.work_dir, f'seed{seed}')
    final = train_toy_config(args.config, work_dir, args.data_root, seed,
                             args.stage2_iters,
                             load_from=args.stage1_checkpoint,
                             reuse=args.reuse, options=args.options,
                             quiet_console=True, feature_cache=cache_dir,
                             checkpoint_interval=args.interval)
    last = iteration_of(final)
    steps = list(range(args.interval, last, args.interval)) + [last]
    curve = []
    for step in steps:
        checkpoint = osp.join(work_dir, f'iter_{step}.pth')
        curve.append(dict(iteration=step, **scorer.score(checkpoint)))
        print(f'seed {seed} iter {step}: PQ unseen '
              f'{curve[-1]["pq"]["unseen"]:.1f}, HM '
              f'{curve[-1]["pq"]["hm"]:.1f}', flush=True)
    return dict(seed=seed, curve=curve)


def share(part: int, whole: int) -> str:
    return '-' if whole == 0 else f'{part} ({100 * part / whole:.0f}%)'


def format_report(record: dict, json_name: str) -> str:
    """The Markdown report of a diagnosis."""
    seeds = record['seeds']
    unseen = record['unseen_classes']
    lines = [
        '# Unseen classes on the toy set, per stage-2 seed', '',
        f'Written by `{record["command"]}` on {record["date"]} '
        f'({record["torch_threads"]} torch threads); every figure is in '
        f'[{json_name}]({json_name}). PADing stage 2 '
        f'(`configs/toy/{record.get("config", DEFAULT_CONFIG)}.py`, '
        f'{record["stage2_iters"]} iterations'
        + (', overrides ' + ', '.join(f'`{k}={v}`' for k, v in
                                      record['options'].items())
           if record['options'] else '')
        + f') from one stage-1 checkpoint, trained and scored from its '
        f'feature cache; unseen classes: {", ".join(unseen)}.', '',
        '## At the last iteration', '',
        'GT: unseen ground-truth segments of the validation set; covered: '
        'some query\'s mask has IoU > 0.5 with it (the frozen segmenter); '
        'own / other unseen / seen / no object: how the classifier labels '
        'that query; passing: own label with a score above '
        f'object_mask_thr = {record["object_mask_thr"]}; margins: that '
        "query's own-class logit minus the best seen logit, minus the "
        'no-object logit (means); predicted: panoptic segments with an '
        'unseen label in the output.', '',
        '| seed | PQ seen | PQ unseen | HM | GT | covered | own | other '
        'unseen | seen | no object | passing | margin vs seen | margin vs '
        'no object | predicted |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for entry in seeds:
        last = entry['curve'][-1]
        pq, seg = last['pq'], last['unseen_segments']
        margins = ' | '.join(
            '-' if seg[key] is None else f'{seg[key]:+.2f}'
            for key in ('margin_seen', 'margin_no_object'))
        lines.append(
            f'| {entry["seed"]} | {pq["seen"]:.1f} | {pq["unseen"]:.1f} | '
            f'{pq["hm"]:.1f} | {seg["gt_segments"]} | {seg["covered"]} | '
            + ' | '.join(share(seg[key], seg['covered'])
                         for key in OUTCOMES)
            + f' | {share(seg["own_passing"], seg["covered"])} | {margins} '
            f'| {seg["predicted_unseen_segments"]} |')
    weights = [entry['curve'][-1]['weights'] for entry in seeds]
    if all(weights):
        lines += [
            '', '## Classifier rows at the last iteration', '',
            'Norm and bias of each unseen class\'s row of the Linear '
            'classifier, against the mean of the seen classes\' rows.', '',
            '| seed | seen norm | seen bias | '
            + ' | '.join(f'{name} norm | {name} bias' for name in unseen)
            + ' |', '|---|---|---|' + '---|---|' * len(unseen)
        ]
        for entry, row in zip(seeds, weights):
            lines.append(
                f'| {entry["seed"]} | {row["seen_norm_mean"]:.2f} | '
                f'{row["seen_bias_mean"]:+.2f} | '
                + ' | '.join(f'{row["unseen"][name]["norm"]:.2f} | '
                             f'{row["unseen"][name]["bias"]:+.2f}'
                             for name in unseen) + ' |')
    confusion: dict = {}
    for entry in seeds:
        for name, row in entry['curve'][-1]['unseen_segments'].get(
                'labelled_as', {}).items():
            for predicted, count in row.items():
                confusion.setdefault(name, {})
                confusion[name][predicted] = confusion[name].get(
                    predicted, 0) + count
    if confusion:
        lines += [
            '', '## What the covered unseen segments are called', '',
            'At the last iteration, summed over the seeds: the label the '
            'classifier gives the query covering each unseen segment.', '',
            '| unseen class | labels (queries) |', '|---|---|'
        ]
        for name in unseen:
            row = sorted(confusion.get(name, {}).items(),
                         key=lambda item: -item[1])
            lines.append(f'| {name} | ' + ', '.join(
                f'{predicted} {count}' for predicted, count in row) + ' |')
    checks = [entry['curve'][-1].get('synthetic') for entry in seeds]
    if all(checks):
        lines += [
            '', "## The generator's features against the real ones", '',
            f'At the last iteration, {checks[0]["per_class"]} synthetic '
            'features per class, drawn as the classifier step draws them. '
            'own: the share the classifier labels with their class (seen: '
            'the mean over the seen classes); fit: seen classes whose '
            'synthetic mean is nearest (cosine) their own real mean (the '
            'queries covering their validation segments); per unseen '
            'class, the real class nearest its synthetic mean, and the seen '
            'class nearest its real mean.', '',
            '| seed | seen own | seen fit | '
            + ' | '.join(f'{name}: own | synthetic ~ | real ~'
                         for name in unseen) + ' |',
            '|---|---|---|' + '---|---|---|' * len(unseen)
        ]
        for entry, check in zip(seeds, checks):
            cells = []
            for name in unseen:
                row = check['unseen'][name]
                cells.append(f'{100 * row["own_share"]:.0f}% | '
                             f'{row["synthetic_nearest_real"] or "-"} | '
                             f'{row["real_nearest_seen"] or "-"}')
            lines.append(
                f'| {entry["seed"]} | {100 * check["seen_own_share"]:.0f}% '
                f'| {check["seen_nearest_own"]} / {check["seen_with_real"]}'
                ' | ' + ' | '.join(cells) + ' |')
    steps = [point['iteration'] for point in seeds[0]['curve']]
    lines += [
        '', '## Unseen PQ over stage-2 iterations', '',
        '| seed | ' + ' | '.join(f'iter {s}' for s in steps) + ' |',
        '|---|' + '---|' * len(steps)
    ]
    for entry in seeds:
        lines.append(f'| {entry["seed"]} | ' + ' | '.join(
            f'{point["pq"]["unseen"]:.1f}' for point in entry['curve'])
            + ' |')
    hms = [entry['curve'][-1]['pq']['hm'] for entry in seeds]
    zero = sum(entry['curve'][-1]['pq']['unseen'] == 0 for entry in seeds)
    lines += [
        '', f'HM-PQ at the last iteration: mean {statistics.fmean(hms):.1f}, '
        f'std {statistics.stdev(hms) if len(hms) > 1 else 0.0:.1f} (n - 1), '
        f'min {min(hms):.1f}, max {max(hms):.1f}; unseen PQ 0 in {zero} of '
        f'{len(seeds)} seeds.'
    ]
    return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cache_dir = args.feature_cache or osp.join(args.work_dir,
                                               'feature_cache')
    cfg = toy_config(args.config, args.data_root, **args.options)
    if args.stage2_iters:
        cfg.train_cfg.max_iters = args.stage2_iters
    # A config with the demo's segmenter and training set (the learner
    # variants) shares the demo's cache, as in run_ablation.py.
    shared = config_identity(cfg) == config_identity(
        toy_config(DEFAULT_CONFIG, args.data_root, **args.options))
    try:
        build_feature_cache(
            cfg, args.stage1_checkpoint, cache_dir, epochs=args.cache_epochs,
            config_name=DEFAULT_CONFIG if shared else args.config)
    except FeatureCacheError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    scorer = CheckpointScorer(args.config, cache_dir, args.data_root,
                              osp.join(args.work_dir, 'scoring'),
                              args.options)
    seeds = [run_seed(seed, args, cache_dir, scorer)
             for seed in range(args.seeds)]
    record = dict(
        command=shlex.join(['python', 'tools/analysis_tools/'
                            'diagnose_unseen.py', *argv]),
        date=datetime.datetime.now().astimezone().isoformat(
            timespec='seconds'),
        torch_threads=torch.get_num_threads(),
        config=args.config,
        stage2_iters=seeds[0]['curve'][-1]['iteration'],
        options=args.options,
        object_mask_thr=scorer.threshold,
        unseen_classes=[scorer.classes[i] for i in scorer.unseen_ids],
        seeds=seeds)
    report, text = write_record_and_report(record, args.out, format_report)
    print(text)
    print(f'written: {args.out}, {report}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
