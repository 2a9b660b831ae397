"""Time a PADing stage-1 training iteration against upstream Mask2Former.

Stage 1 is upstream's Mask2Former trained on the seen classes; a config
may still name mmpading classes (e.g. ``UniversalFusionHead`` or the earlier
``ZeroShotMask2FormerHead``). This script builds the stage-1 model of a
config with random weights and the upstream mmdet ``Mask2Former`` of the
same config (see ``benchmark_setup.to_upstream_config``) with the same
weights, and times
``model.train_step`` (forward, losses, backward, optimizer step with the
config's optimizer, gradient clipping and parameter-wise learning rates)
of both on the same synthetic batches, in turn (A B, B A, ...). It prints
the median seconds per iteration, their ratio, the peak CUDA memory of
each model's step and whether every loss stayed finite.

Images are random with rectangular thing segments and striped stuff
(``benchmark_setup.synthetic_sample``), of every class, at
``--image-size`` (default: the config's ``BatchFixedSizePad`` size; an
explicit size is also what that pads to, e.g. 1024 as upstream's LSJ
config where ``zsp_r50_pretrain.py`` uses the reference's 928).
``--amp`` trains both with ``AmpOptimWrapper`` (``tools/train.py --amp``).
Nothing is downloaded: ``Pretrained`` initialisations are dropped.

Examples::

    # ZSP R-50 stage 1, 2 images of 1024 px per iteration, on a GPU
    python tools/analysis_tools/benchmark_stage1.py --device cuda \\
        --image-size 1024 --repeats 5 --warmup 2
    python tools/analysis_tools/benchmark_stage1.py --device cuda --amp \\
        --image-size 1024 --json work_dirs/bench_stage1_amp.json
    # the same on the CPU at a tiny size (a smoke test)
    python tools/analysis_tools/benchmark_stage1.py --image-size 64 \\
        --batch-size 1 --repeats 1 --warmup 0
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from typing import Any

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar
from torch import nn

from mmpading.apis import config_path
from mmpading.utils.benchmarking import (
    loss_values,
    mib,
    print_table,
    synchronize,
)
from mmpading.utils.config_utils import enable_amp

from benchmark_setup import (
    fixed_pad_size,
    quiet_init_weights,
    set_fixed_pad_size,
    strip_pretrained,
    synthetic_batches,
    to_upstream_config,
)
from tool_arguments import add_timing_arguments, check_timing_arguments

DEFAULT_CONFIG = 'configs/pading/zsp_r50_pretrain.py'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time a PADing stage-1 training iteration against '
        'upstream Mask2Former with the same weights and batches.')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help=f'stage-1 config (default {DEFAULT_CONFIG})')
    parser.add_argument(
        '--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--batch-size', type=int, default=2,
        help='images per iteration (default 2: one GPU of the reference\'s '
        '8 x 2)')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        metavar='SIZE',
        help='height [width] of the synthetic images, also the size that '
        'the config\'s BatchFixedSizePad pads to (default: that size)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (AmpOptimWrapper) for both models; CUDA only')
    add_timing_arguments(parser, repeats=5, what='iterations of each model')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    check_timing_arguments(parser, args)
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp needs --device cuda (mmengine\'s AmpOptimWrapper '
                     'runs on accelerators only)')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.image_size is not None and (len(args.image_size) not in (1, 2)
                                        or min(args.image_size) < 32):
        parser.error('--image-size takes a height [and a width] of at least '
                     '32 pixels')
    try:
        args.config = config_path(args.config)
    except FileNotFoundError as error:
        parser.error(str(error))
    return args


def load_stage1_config(path: str) -> Config:
    """The config, ready to build offline; refuses a stage-2 config."""
    cfg = Config.fromfile(path)
    if 'zero_shot' in cfg.model:
        raise ValueError(f'{path} is a stage-2 config; give a stage-1 '
                         '(pretrain) config')
    strip_pretrained(cfg.model)
    return cfg


def build_pair(cfg: Config,
               device: torch.device) -> tuple[nn.Module, nn.Module, int]:
    """PADing's stage-1 model and upstream's, with the same weights.

    Returns:
        tuple: ``(ours, upstream, unmatched)``: both in train mode on
        ``device``; ``unmatched`` counts the state-dict keys that one model
        has and the other lacks (0: the weights are the same throughout).
    """
    ours = MODELS.build(cfg.model)
    quiet_init_weights(ours)
    upstream = MODELS.build(to_upstream_config(cfg.model))
    result = upstream.load_state_dict(ours.state_dict(), strict=False)
    unmatched = len(result.missing_keys) + len(result.unexpected_keys)
    return ours.to(device).train(), upstream.to(device).train(), unmatched


def optim_wrapper_of(cfg: Config, model: nn.Module, amp: bool):
    """The config's optimizer wrapper for ``model`` (AMP if asked)."""
    cfg = copy.deepcopy(cfg)
    if amp:
        enable_amp(cfg)
    return build_optim_wrapper(model, cfg.optim_wrapper)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    init_default_scope('mmdet')
    cfg = load_stage1_config(args.config)
    if args.image_size:
        set_fixed_pad_size(cfg, args.image_size)
    ours, upstream, unmatched = build_pair(cfg, device)
    models = dict(pading=ours, upstream=upstream)
    wrappers = {name: optim_wrapper_of(cfg, model, args.amp)
                for name, model in models.items()}
    size = args.image_size or fixed_pad_size(cfg) or (128, )
    height, width = (list(size) * 2)[:2]
    batches = synthetic_batches(ours, args.batch_size, height, width,
                                args.seed, seen_only=False)
    times: dict[str, list[float]] = {name: [] for name in models}
    peaks: dict[str, int] = {name: 0 for name in models}
    finite = {name: True for name in models}
    last: dict[str, dict[str, float]] = {name: {} for name in models}
    progress = ProgressBar(args.warmup + args.repeats, file=sys.stderr)
    for round_index in range(args.warmup + args.repeats):
        batch = next(batches)
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for name in order:
            # The data preprocessor pads the samples in place.
            data = copy.deepcopy(batch)
            synchronize(device)
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            log_vars = models[name].train_step(data, wrappers[name])
            synchronize(device)
            seconds = time.perf_counter() - start
            if device.type == 'cuda':
                peaks[name] = max(peaks[name],
                                  torch.cuda.max_memory_allocated(device))
            last[name] = loss_values(log_vars)
            finite[name] = finite[name] and all(
                math.isfinite(value) for value in last[name].values())
            if round_index >= args.warmup:
                times[name].append(seconds)
        progress.update()
    sys.stderr.write('\n')
    medians = {name: statistics.median(values)
               for name, values in times.items()}
    return dict(
        config=args.config,
        device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type
                     == 'cuda' else f'{torch.get_num_threads()} threads'),
        amp=args.amp,
        batch_size=args.batch_size,
        image_size=[height, width],
        repeats=args.repeats,
        warmup=args.warmup,
        unmatched_weights=unmatched,
        s_per_iter=medians,
        ratio=medians['pading'] / medians['upstream'],
        paired_ratio=statistics.median(
            a / b for a, b in zip(times['pading'], times['upstream'])),
        cuda_peak_bytes=peaks if device.type == 'cuda' else None,
        losses_finite=finite,
        last_loss={name: values.get('loss') for name, values in last.items()})


def print_result(result: dict[str, Any]) -> None:
    print(f'device: {result["device"]} ({result["device_name"]}), torch '
          f'{torch.__version__}; {result["batch_size"]} x '
          f'{result["image_size"][0]}x{result["image_size"][1]} synthetic '
          f'images per iteration, AMP {"on" if result["amp"] else "off"}; '
          f'median of {result["repeats"]} iterations after '
          f'{result["warmup"]} warm-up; random weights')
    peaks = result['cuda_peak_bytes'] or {}
    rows = [[
        name, f'{result["s_per_iter"][name]:.3f}',
        mib(peaks.get(name), 0),
        'yes' if result['losses_finite'][name] else 'NO',
        f'{result["last_loss"][name]:.3f}'
    ] for name in ('pading', 'upstream')]
    print_table('Stage-1 training iteration (model.train_step):',
                ['model', 's/iter', 'CUDA peak MiB', 'losses finite',
                 'last loss'], rows)
    print(f'PADing / upstream Mask2Former: {result["ratio"]:.3f} (paired '
          f'{result["paired_ratio"]:.3f}); weights not shared: '
          f'{result["unmatched_weights"]}')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print_result(result)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(result, file, indent=2)
        print(f'figures written to {args.json}')
    return 0 if all(result['losses_finite'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
