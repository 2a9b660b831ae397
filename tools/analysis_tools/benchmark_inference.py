"""Inference latency of PADing against upstream mmdet Mask2Former.

Builds the stage-2 ``PADing`` model of a config with random weights and the
upstream ``Mask2Former`` of the same config (see :func:`to_upstream_config`)
with the *same* weights: the upstream ``cls_embed`` holds the weights of
PADing's stage-2 classifier, which replaces ``cls_embed`` at inference. The
script first checks that both compute the same thing on one batch (class
and mask logits within ``--tolerance``, identical panoptic maps and
instances) and stops with exit status 1 if not. It then times
``model.predict`` under ``torch.no_grad()`` on the same random images,
interleaving the two models (A B, B A, ...) so that drift of a shared
machine hits both alike, and prints the median ms per image of each and
their ratio in two settings:

(a) identical outputs: panoptic + instance on both (what upstream
    supports); the target for PADing / upstream is <= 1.03;
(b) PADing's full universal output (panoptic + instance + semantic)
    against upstream's closest (panoptic + instance).

``--breakdown`` also times the three parts of ``predict`` separately
(``extract_feat``, the head's ``predict``, the fusion head's ``predict``)
to locate any overhead.

The upstream parameters are frozen like PADing's stage-2 segmenter, so
that both run the same torch kernels (``--upstream-requires-grad`` leaves
them trainable, as a freshly built model has them; see
:func:`build_model_pair`).

Random weights leave the class scores flat and the masks alike, so few
panoptic segments survive and post-processing is lighter than with
trained weights. The classifier is sharpened (``--classifier-scale``) so
that some pass the score threshold; both models see the same logits
either way, and the post-processing of setting (a) is upstream's code in
both.

CPU figures use one thread unless ``--threads`` says otherwise (see
``benchmark_generator.py``). Nothing is downloaded: ``Pretrained``
initialisations are dropped, and a missing class-embedding file (stage 2
reads it even to build the model) is replaced by random vectors, which do
not affect inference.

Examples::

    # toy stage-2 config (configs/toy/pading_toy_stage2.py), 128 px
    python tools/analysis_tools/benchmark_inference.py
    # real size: ZSP R-50, one 800 x 1216 image
    python tools/analysis_tools/benchmark_inference.py \\
        --config configs/pading/zsp_r50.py --image-size 800 1216 \\
        --repeats 10 --breakdown
    python tools/analysis_tools/benchmark_inference.py --device cuda \\
        --config configs/pading/zsp_r50.py --image-size 800 1216 \\
        --repeats 50 --warmup 5 --json work_dirs/bench_inference.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner import CheckpointLoader
from mmengine.utils import ProgressBar
from torch import nn

import mmpading  # noqa: F401  (registers components)
from mmpading.models.utils.query_features import classify_with
from mmpading.utils.benchmarking import (
    cuda_peak_bytes,
    print_table,
    synchronize,
)
from mmpading.utils.config_utils import TOY_DATA_ROOT

from benchmark_setup import (
    DEFAULT_CONFIG,
    load_benchmark_config,
    quiet_init_weights,
    to_upstream_config,
)
from tool_arguments import add_timing_arguments, check_timing_arguments

RATIO_TARGET = 1.03


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Inference latency of PADing vs upstream Mask2Former '
        'with the same weights and inputs.')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='stage-2 config: a name in configs/toy (default '
        f'{DEFAULT_CONFIG}) or a path, e.g. configs/pading/zsp_r50.py')
    parser.add_argument(
        '--data-root',
        help='toy data set for a configs/toy config (its split and class '
        f'embeddings are read); default {TOY_DATA_ROOT} if present, else a '
        'small one generated in a temporary folder')
    parser.add_argument(
        '--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per predict call')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        default=[128],
        metavar='SIZE',
        help='image height [width] (default 128: the toy size; real size '
        'e.g. 800 1216)')
    add_timing_arguments(parser, repeats=10)
    parser.add_argument(
        '--breakdown',
        action='store_true',
        help='also time extract_feat, the head and the fusion head apart')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-5,
        help='largest |difference| of logits the equivalence check allows, '
        'relative to the largest |logit| where that is above 1')
    parser.add_argument(
        '--upstream-requires-grad',
        action='store_true',
        help='leave the upstream parameters trainable, as a freshly built '
        'model has them (default: frozen like PADing\'s segmenter, so that '
        'both run the same kernels; see build_model_pair)')
    parser.add_argument(
        '--classifier-scale',
        type=float,
        default=10.0,
        help='factor on the random classifier, so that segments pass the '
        'score thresholds as with trained weights (1: leave it)')
    parser.add_argument(
        '--checkpoint',
        help='a stage-2 checkpoint of the config (trained weights; '
        '--classifier-scale is then ignored); default: random weights')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint} does not exist')
    check_timing_arguments(parser, args)
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if len(args.image_size) not in (1, 2) or min(args.image_size) < 32:
        parser.error('--image-size takes a height [and a width] of at least '
                     '32 pixels')
    return args


# ------------------------------------------------------------------ models
def build_model_pair(
        cfg: Config,
        device: torch.device,
        classifier_scale: float,
        upstream_requires_grad: bool = False,
        checkpoint: str | None = None
) -> tuple[nn.Module, nn.Module]:
    """PADing and upstream Mask2Former with the same weights, eval mode.

    Without a checkpoint, the learner's classifier starts as ``cls_embed``
    (as in stage 2), is then perturbed (a trained classifier differs from
    ``cls_embed``) and scaled. With a stage-2 checkpoint, its weights are
    loaded as they are. The upstream ``cls_embed`` receives the classifier.

    Stage 2 freezes the segmenter (``requires_grad=False``). Even under
    ``no_grad`` that changes how torch's ``matmul`` folds batched products
    (it checks ``requires_grad``), hence other kernels, roundings (~1e-6)
    and possibly speed. Unless ``upstream_requires_grad``, the upstream
    parameters get the same ``requires_grad`` flags, so that both models
    run the same kernels and agree bit for bit.
    """
    ours = MODELS.build(cfg.model)
    quiet_init_weights(ours)
    head, learner = ours.segmenter_head, ours.learner
    classifier = learner.classifier
    if not isinstance(classifier, nn.Linear):
        raise TypeError('the upstream model can only take a Linear '
                        f'classifier, got {type(classifier).__name__}')
    if checkpoint is not None:
        state = CheckpointLoader.load_checkpoint(checkpoint, 'cpu')
        state = state.get('state_dict', state)
        if 'zero_shot.classifier.weight' not in state:
            raise ValueError(f'{checkpoint} holds no trained stage-2 '
                             'classifier: give a stage-2 checkpoint')
        ours.load_state_dict(state, strict=True)
    else:
        learner.init_classifier_from(head.cls_embed)
        with torch.no_grad():
            classifier.weight.add_(torch.randn_like(classifier.weight) * 0.1)
            classifier.weight.mul_(classifier_scale)
            classifier.bias.mul_(classifier_scale)

    upstream = MODELS.build(to_upstream_config(cfg.model))
    state = {
        key: value
        for key, value in ours.state_dict().items()
        if not key.startswith('zero_shot.')
    }
    name = next(name for name, module in ours.named_children()
                if module is head)
    state[f'{name}.cls_embed.weight'] = classifier.weight.detach().clone()
    state[f'{name}.cls_embed.bias'] = classifier.bias.detach().clone()
    upstream.load_state_dict(state, strict=True)
    if not upstream_requires_grad:
        flags = {
            name: param.requires_grad
            for name, param in ours.named_parameters()
        }
        for name, param in upstream.named_parameters():
            param.requires_grad_(flags[name])
    return ours.to(device).eval(), upstream.to(device).eval()


def set_outputs(model: nn.Module, **flags: bool) -> None:
    """Switch ``panoptic_on`` / ``instance_on`` / ``semantic_on``."""
    fusion = model.panoptic_fusion_head
    fusion.test_cfg = ConfigDict({**fusion.test_cfg, **flags})


def random_batch(model: nn.Module, batch_size: int, height: int, width: int,
                 seed: int) -> tuple[torch.Tensor, list[DetDataSample]]:
    """Random images through the model's data preprocessor."""
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for index in range(batch_size):
        inputs.append(
            torch.randint(
                0, 256, (3, height, width), generator=generator,
                dtype=torch.uint8))
        samples.append(
            DetDataSample(
                metainfo=dict(
                    img_id=index,
                    img_shape=(height, width),
                    ori_shape=(height, width),
                    scale_factor=(1.0, 1.0))))
    with torch.no_grad():
        data = model.data_preprocessor(
            dict(inputs=inputs, data_samples=samples), False)
    return data['inputs'], data['data_samples']


# -------------------------------------------------------------- equivalence
def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


def _close(a: torch.Tensor, b: torch.Tensor, tolerance: float) -> bool:
    """max |a - b| <= tolerance x max(1, max |b|): relative for large."""
    scale = max(1.0, b.float().abs().max().item()) if b.numel() else 1.0
    return _max_diff(a, b) <= tolerance * scale


@torch.no_grad()
def check_equivalence(ours: nn.Module, upstream: nn.Module,
                      inputs: torch.Tensor, samples: list[DetDataSample],
                      tolerance: float) -> dict[str, Any]:
    """Compare logits and post-processed outputs of the two models.

    Returns:
        dict: Largest differences of class and mask logits, whether the
        panoptic maps and instances are identical, the number of panoptic
        segments and instances, and ``ok``.
    """
    set_outputs(ours, panoptic_on=True, instance_on=True, semantic_on=False)
    set_outputs(upstream, panoptic_on=True, instance_on=True)
    with classify_with(ours.panoptic_head.cls_embed, ours.learner.classifier):
        ours_cls, ours_mask = ours.panoptic_head.predict(
            ours.extract_feat(inputs), samples)
    up_cls, up_mask = upstream.panoptic_head.predict(
        upstream.extract_feat(inputs), samples)
    ours_out = ours.predict(inputs, copy.deepcopy(samples))
    up_out = upstream.predict(inputs, copy.deepcopy(samples))

    panoptic_same = instances_same = True
    segments = instances = 0
    for mine, theirs in zip(ours_out, up_out):
        pan_a = mine.pred_panoptic_seg.sem_seg
        pan_b = theirs.pred_panoptic_seg.sem_seg
        panoptic_same &= torch.equal(pan_a, pan_b)
        # The void label is num_classes.
        segments += int(
            (torch.unique(pan_a) != ours.panoptic_head.num_classes).sum())
        ins_a, ins_b = mine.pred_instances, theirs.pred_instances
        instances_same &= (
            torch.equal(ins_a.labels, ins_b.labels)
            and torch.equal(ins_a.masks, ins_b.masks)
            and _close(ins_a.scores, ins_b.scores, tolerance)
            and _close(ins_a.bboxes, ins_b.bboxes, tolerance))
        instances += len(ins_a.labels)
    result = dict(
        cls_logits_max_diff=_max_diff(ours_cls, up_cls),
        mask_logits_max_diff=_max_diff(ours_mask, up_mask),
        panoptic_identical=bool(panoptic_same),
        instances_identical=bool(instances_same),
        panoptic_segments=segments,
        instances=instances)
    result['ok'] = (
        _close(ours_cls, up_cls, tolerance)
        and _close(ours_mask, up_mask, tolerance) and panoptic_same
        and instances_same)
    return result


# ------------------------------------------------------------------ timing
def interleaved_timings(steps: dict[str, Callable[[], None]],
                        device: torch.device, repeats: int, warmup: int,
                        progress: ProgressBar) -> dict[str, list[float]]:
    """Seconds of each step per round, run in turn (order reversed each
    round).

    Args:
        steps (dict): Name -> callable; all are run once per round.
        device (torch.device): Synchronised around each call.
        repeats (int): Timed rounds.
        warmup (int): Untimed rounds first.
        progress (ProgressBar): Advanced once per timed round.
    """
    names = list(steps)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            steps[name]()
            synchronize(device)
            if round_index >= warmup:
                timings[name].append(time.perf_counter() - start)
        if round_index >= warmup:
            progress.update()
    return timings


def compare(ours: list[float], upstream: list[float]) -> dict[str, float]:
    """Medians, their ratio and the median of the per-round ratios.

    The per-round (paired) ratio cancels slow drift of a shared machine
    that the ratio of medians only averages out.
    """
    return dict(
        ours=statistics.median(ours),
        upstream=statistics.median(upstream),
        ratio=statistics.median(ours) / statistics.median(upstream),
        paired_ratio=statistics.median(a / b for a, b in zip(ours, upstream)))


def predict_step(model: nn.Module, inputs: torch.Tensor,
                 samples: list[DetDataSample]) -> Callable[[], None]:
    samples = copy.deepcopy(samples)  # each model fills its own

    @torch.no_grad()
    def step() -> None:
        model.predict(inputs, samples)

    return step


def part_steps(model: nn.Module, inputs: torch.Tensor,
               samples: list[DetDataSample]) -> dict[str, Callable[[], None]]:
    """The three parts of ``predict``, each on the previous one's output."""
    head_module = model.panoptic_head
    # Ours: the learner's classifier scores the queries (PADing.predict).
    classifier = model.learner.classifier if hasattr(model, 'learner') \
        else None
    with torch.no_grad(), classify_with(head_module.cls_embed, classifier):
        feats = model.extract_feat(inputs)
        mask_cls, mask_pred = head_module.predict(feats, samples)

    @torch.no_grad()
    def backbone() -> None:
        model.extract_feat(inputs)

    @torch.no_grad()
    def head() -> None:
        with classify_with(head_module.cls_embed, classifier):
            head_module.predict(feats, samples)

    @torch.no_grad()
    def fusion() -> None:
        model.panoptic_fusion_head.predict(
            mask_cls, mask_pred, samples, rescale=True)

    return {
        'extract_feat': backbone,
        'head.predict': head,
        'fusion.predict': fusion
    }


SETTING_A = '(a) panoptic + instance, both'
SETTING_B = '(b) ours + semantic vs upstream pan + ins'
SETTINGS = {
    SETTING_A: (
        dict(panoptic_on=True, instance_on=True, semantic_on=False),
        dict(panoptic_on=True, instance_on=True)),
    SETTING_B: (
        dict(panoptic_on=True, instance_on=True, semantic_on=True),
        dict(panoptic_on=True, instance_on=True)),
}


def per_image_figures(figures: dict[str, float],
                      per_image: float) -> dict[str, float]:
    """Medians in ms per image, ratios as they are."""
    return {
        key: value * per_image if key in ('ours', 'upstream') else value
        for key, value in figures.items()
    }


def comparison_row(label: str, figures: dict[str, float],
                   per_image: float) -> list[str]:
    return [
        label, f'{figures["ours"] * per_image:.2f}',
        f'{figures["upstream"] * per_image:.2f}', f'{figures["ratio"]:.3f}',
        f'{figures["paired_ratio"]:.3f}'
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    height, width = (args.image_size * 2)[:2]
    with tempfile.TemporaryDirectory() as tmp_dir:
        try:
            cfg = load_benchmark_config(args.config, args.data_root, tmp_dir)
        except (FileNotFoundError, ValueError) as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        try:
            ours, upstream = build_model_pair(
                cfg, device, args.classifier_scale,
                args.upstream_requires_grad, args.checkpoint)
        except ValueError as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    inputs, samples = random_batch(ours, args.batch_size, height, width,
                                   args.seed)
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda'
             else f'{torch.get_num_threads()} threads')
    print(f'config: {cfg.filename}\ndevice: {device} ({where}), torch '
          f'{torch.__version__}; batch {args.batch_size} x {height}x{width}'
          f' (padded {tuple(inputs.shape[-2:])}); median of {args.repeats} '
          f'interleaved runs after {args.warmup} warm-up')
    for label, model in (('PADing', ours), ('upstream', upstream)):
        parts = (model, model.panoptic_head, model.panoptic_fusion_head)
        print(f'{label} model: '
              f'{" + ".join(type(part).__name__ for part in parts)}')

    check = check_equivalence(ours, upstream, inputs, samples,
                              args.tolerance)
    print(f'\nequivalence check: class logits max |diff| '
          f'{check["cls_logits_max_diff"]:.2e}, mask logits max |diff| '
          f'{check["mask_logits_max_diff"]:.2e}, panoptic maps '
          f'{"identical" if check["panoptic_identical"] else "DIFFER"} '
          f'({check["panoptic_segments"]} segments), instances '
          f'{"identical" if check["instances_identical"] else "DIFFER"} '
          f'({check["instances"]}): {"PASS" if check["ok"] else "FAIL"}')
    if not check['ok']:
        print('error: PADing and upstream Mask2Former disagree with the '
              'same weights; the timings would not compare like for like',
              file=sys.stderr)
        return 1

    rounds = len(SETTINGS) + (3 if args.breakdown else 0)
    progress = ProgressBar(rounds * args.repeats, file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    for setting, (ours_flags, up_flags) in SETTINGS.items():
        set_outputs(ours, **ours_flags)
        set_outputs(upstream, **up_flags)
        timings = interleaved_timings(
            dict(
                ours=predict_step(ours, inputs, samples),
                upstream=predict_step(upstream, inputs, samples)), device,
            args.repeats, args.warmup, progress)
        results[setting] = compare(timings['ours'], timings['upstream'])
    parts: dict[str, dict[str, float]] = {}
    if args.breakdown:
        set_outputs(ours, **SETTINGS[SETTING_A][0])
        set_outputs(upstream, **SETTINGS[SETTING_A][1])
        ours_parts = part_steps(ours, inputs, samples)
        up_parts = part_steps(upstream, inputs, samples)
        for part in ours_parts:
            timings = interleaved_timings(
                dict(ours=ours_parts[part], upstream=up_parts[part]), device,
                args.repeats, args.warmup, progress)
            parts[part] = compare(timings['ours'], timings['upstream'])
    sys.stderr.write('\n')

    peaks = {}
    if device.type == 'cuda':
        for setting, (ours_flags, up_flags) in SETTINGS.items():
            set_outputs(ours, **ours_flags)
            set_outputs(upstream, **up_flags)
            peaks[setting] = dict(
                ours=cuda_peak_bytes(
                    predict_step(ours, inputs, samples), device),
                upstream=cuda_peak_bytes(
                    predict_step(upstream, inputs, samples), device))

    per_image = 1e3 / args.batch_size
    header = [
        'setting', 'PADing ms/img', 'upstream ms/img', 'ratio',
        'paired ratio'
    ]
    if peaks:
        header += ['PADing peak MiB', 'upstream peak MiB']
    rows = []
    for setting, figures in results.items():
        row = comparison_row(setting, figures, per_image)
        if peaks:
            row += [
                f'{peaks[setting]["ours"] / 2**20:.1f}',
                f'{peaks[setting]["upstream"] / 2**20:.1f}'
            ]
        rows.append(row)
    print_table(
        'model.predict, median per image (paired ratio: median of the '
        'per-round ratios):', header, rows)
    ratio = results[SETTING_A]['ratio']
    print(f'\nratio (a) PADing / upstream: {ratio:.3f}, paired '
          f'{results[SETTING_A]["paired_ratio"]:.3f} (target <= '
          f'{RATIO_TARGET}: {"met" if ratio <= RATIO_TARGET else "NOT met"})')
    if parts:
        print_table('Parts of predict, setting (a), median per image:',
                    ['part', *header[1:5]], [
                        comparison_row(part, figures, per_image)
                        for part, figures in parts.items()
                    ])

    if args.json:
        summary = dict(
            config=cfg.filename,
            device=str(device),
            device_name=where,
            batch_size=args.batch_size,
            image_size=[height, width],
            repeats=args.repeats,
            warmup=args.warmup,
            upstream_requires_grad=args.upstream_requires_grad,
            equivalence=check,
            # ms per image; ratios unitless
            settings={
                setting: per_image_figures(figures, per_image)
                for setting, figures in results.items()
            },
            parts={
                part: per_image_figures(figures, per_image)
                for part, figures in parts.items()
            },
            ratio_a=ratio,
            cuda_peak_bytes=peaks)
        with open(args.json, 'w') as file:
            json.dump(summary, file, indent=2)
        print(f'figures written to {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
