"""Time the phases of one PADing stage-2 training iteration.

A stage-2 iteration (``PADing.train_step``) has three
phases, timed here inside the real ``model.train_step`` (the learner's
``forward`` is wrapped to stamp the time it is entered, after a CUDA
synchronisation):

(i) frozen forward: ``data_preprocessor``, ``extract_feat`` and the head's
    ``query_features`` (forward + Hungarian matching) under ``no_grad``;
(ii) generator step: the learner's generator losses, ``parse_losses``,
     backward and the optimizer step (absent without a generator);
(iii) classifier step: the same for the classifier.

For each config it prints the median ms of each phase, its share of the
iteration, the ratio (generator + classifier) / frozen forward (target
<= 15%) and the peak memory: on CUDA ``torch.cuda.max_memory_allocated``
during one iteration; on the CPU the peak resident set size of the whole
process (``ru_maxrss``: model, data, Python and allocator caches
included) beside its resident size once everything was set up. Each
config runs in a process of its own so that these peaks are its own.

The weights are random (the classifier starts from ``cls_embed`` as in
stage 2). Batches come from the config's training data loader: for a
``configs/toy`` config, ``--data-root`` or ``data/toy`` or a small toy set
generated in a temporary folder, so that the matching sees real ground
truth. Configs whose data is missing (e.g. COCO for
``configs/pading/zsp_r50.py``), or ``--synthetic``, get random images with
rectangular thing segments and striped stuff of seen classes at
``--image-size``. Nothing is downloaded.

CPU figures use one thread unless ``--threads`` says otherwise (see
``benchmark_generator.py``).

Examples::

    # PADing toy stage 2 (batch 8 x 128 px), data/toy or a generated set
    python tools/analysis_tools/benchmark_stage2.py
    # PADing and the GMMN baseline, toy
    python tools/analysis_tools/benchmark_stage2.py \\
        --config pading_toy_stage2 pading_toy_stage2_gmmn
    # real size: ZSP R-50, 12 synthetic 928 x 928 images per iteration
    python tools/analysis_tools/benchmark_stage2.py \\
        --config configs/pading/zsp_r50.py --repeats 5 --warmup 1
    python tools/analysis_tools/benchmark_stage2.py --device cuda \\
        --config configs/pading/zsp_r50.py --repeats 20 --warmup 3 \\
        --json work_dirs/bench_stage2.json
"""
from __future__ import annotations

import argparse
import json
import math
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch import nn

from mmpading.apis import config_path
from mmpading.apis.model_loading import config_dataset_meta
from mmpading.models.utils.stage2 import set_dataset_meta
from mmpading.utils.benchmarking import (
    loss_values,
    max_rss_bytes,
    mib,
    print_table,
    proc_status_bytes,
    synchronize,
)
from mmpading.utils.config_utils import enable_amp

from benchmark_setup import (
    DEFAULT_CONFIG,
    fixed_pad_size,
    load_benchmark_config,
    quiet_init_weights,
    set_fixed_pad_size,
    synthetic_batches,
)
from tool_arguments import add_timing_arguments, check_timing_arguments

RATIO_TARGET = 0.15
PHASES = ('frozen', 'generator', 'classifier')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the frozen forward, generator step and '
        'classifier step of a PADing stage-2 iteration.')
    parser.add_argument(
        '--config',
        nargs='+',
        default=[DEFAULT_CONFIG],
        help='stage-2 configs: names in configs/toy (default '
        f'{DEFAULT_CONFIG}) or paths, e.g. configs/pading/zsp_r50.py')
    parser.add_argument(
        '--data-root',
        help='toy data set for configs/toy configs; default data/toy if '
        'present, else one generated in a temporary folder')
    parser.add_argument(
        '--synthetic',
        action='store_true',
        help='random images and segments instead of the config\'s data '
        '(the default where that data is missing)')
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        metavar='SIZE',
        help='height [width] of synthetic images, also the size that the '
        'config\'s BatchFixedSizePad pads to (default: that size, else 128)')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='images per iteration (default: the config\'s)')
    parser.add_argument(
        '--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: every optimizer wrapper an AmpOptimWrapper, '
        'as tools/train.py --amp (CUDA only)')
    add_timing_arguments(parser, repeats=10, what='iterations')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures to this file')
    # Internal: benchmark one config in this process, figures to this file.
    parser.add_argument('--worker-output', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    check_timing_arguments(parser, args)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if args.image_size is not None and (len(args.image_size) not in (1, 2)
                                        or min(args.image_size) < 32):
        parser.error('--image-size takes a height [and a width] of at least '
                     '32 pixels')
    if args.amp and not args.device.startswith('cuda'):
        parser.error('--amp needs --device cuda (mmengine\'s AmpOptimWrapper '
                     'runs on accelerators only)')
    if args.worker_output and len(args.config) != 1:
        parser.error('a worker benchmarks one config')
    for config in args.config:
        try:
            config_path(config)
        except FileNotFoundError as error:
            parser.error(str(error))
    return args


# ------------------------------------------------------------------ batches
def _has_train_data(cfg: Config) -> bool:
    dataset = cfg.train_dataloader.dataset
    ann_file = osp.join(dataset.get('data_root', ''), dataset.ann_file)
    return osp.isfile(ann_file)


def dataloader_batches(cfg: Config, batch_size: int | None) -> Iterator:
    """Batches of the config's training data loader, endlessly."""
    loader_cfg = cfg.train_dataloader.copy()
    if batch_size is not None:
        loader_cfg.batch_size = batch_size
    loader = Runner.build_dataloader(loader_cfg)
    while True:
        yield from loader


# ------------------------------------------------------------------- timing
class PhaseClock:
    """Stamps the entry of each learner step inside a real ``train_step``.

    Args:
        learner (nn.Module): ``model.zero_shot`` (unwrapped).
        device (torch.device): Synchronised before each stamp.
    """

    def __init__(self, learner: nn.Module, device: torch.device) -> None:
        self.marks: dict[str, float] = {}
        forward = learner.forward

        def stamped_forward(embeddings: torch.Tensor, labels: torch.Tensor,
                            step: str, **kwargs: Any) -> dict:
            synchronize(device)
            self.marks[step] = time.perf_counter()
            return forward(embeddings, labels, step=step, **kwargs)

        # nn.Module.__call__ looks `forward` up on the instance first.
        learner.forward = stamped_forward

    def time_step(self, step: Callable[[], Any],
                  device: torch.device) -> dict[str, float]:
        """Seconds of each phase and ``total`` of one ``step()``."""
        self.marks.clear()
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        end = time.perf_counter()
        first = self.marks.get('generator', self.marks['classifier'])
        return dict(
            frozen=first - start,
            generator=(self.marks['classifier'] - self.marks['generator']
                       if 'generator' in self.marks else 0.0),
            classifier=end - self.marks['classifier'],
            total=end - start)


def resident_bytes() -> int | None:
    """VmRSS of this process (Linux), else None."""
    try:
        return proc_status_bytes('VmRSS')
    except (OSError, KeyError):
        return None


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmark ``args.config[0]`` in this process."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    init_default_scope('mmdet')
    tmp = tempfile.TemporaryDirectory()
    cfg = load_benchmark_config(args.config[0], args.data_root, tmp.name,
                                num_train=16)
    if args.image_size:
        set_fixed_pad_size(cfg, args.image_size)
    model = MODELS.build(cfg.model)
    set_dataset_meta(model, config_dataset_meta(cfg, 'train'))
    quiet_init_weights(model)
    # Stage 2 starts from stage 1's cls_embed; no checkpoint here.
    model.learner.init_classifier_from(model.segmenter_head.cls_embed)
    model.to(device).train()
    if args.amp:
        enable_amp(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if not isinstance(optim_wrapper, OptimWrapperDict):
        raise TypeError(f'{cfg.filename}: optim_wrapper must build an '
                        'OptimWrapperDict (a stage-2 config)')

    synthetic = args.synthetic or not _has_train_data(cfg)
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    if synthetic:
        size = args.image_size or fixed_pad_size(cfg) or (128, )
        height, width = (list(size) * 2)[:2]
        if not args.synthetic:
            print(f'{cfg.filename}: training data not found; synthetic '
                  f'{height}x{width} images instead', file=sys.stderr)
        batches = synthetic_batches(model, batch_size, height, width,
                                    args.seed)
        source = f'synthetic {height}x{width}'
        pad = fixed_pad_size(cfg)
        if pad and (height < pad[0] or width < pad[1]):
            # BatchFixedSizePad pads training batches up to its size.
            source += f' padded to {max(height, pad[0])}x{max(width, pad[1])}'
    else:
        batches = dataloader_batches(cfg, args.batch_size)
        source = cfg.train_dataloader.dataset.data_root

    clock = PhaseClock(model.learner, device)
    batch = next(batches)  # builds the data loader first
    resident_after_setup = resident_bytes()
    total_steps = args.warmup + args.repeats
    progress = ProgressBar(total_steps, file=sys.stderr)
    timings: dict[str, list[float]] = {}
    losses: dict[str, float] = {}
    finite = True

    def step(batch: dict) -> None:
        nonlocal finite
        losses.update(loss_values(model.train_step(batch, optim_wrapper)))
        finite = finite and all(map(math.isfinite, losses.values()))

    for iteration in range(total_steps):
        if iteration:
            batch = next(batches)  # loading is not timed
        times = clock.time_step(partial(step, batch), device)
        if iteration >= args.warmup:
            for phase, seconds in times.items():
                timings.setdefault(phase, []).append(seconds)
        progress.update()
    sys.stderr.write('\n')

    cuda_peak = None
    if device.type == 'cuda':
        batch = next(batches)
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        model.train_step(batch, optim_wrapper)
        synchronize(device)
        cuda_peak = torch.cuda.max_memory_allocated(device)
    tmp.cleanup()
    medians = {
        phase: statistics.median(values)
        for phase, values in timings.items()
    }
    return dict(
        config=cfg.filename,
        has_generator=model.learner.generator is not None,
        batch_size=batch_size,
        data=source,
        device=str(device),
        amp=args.amp,
        losses_finite=finite,
        last_losses=losses,
        device_name=(torch.cuda.get_device_name(device) if device.type
                     == 'cuda' else f'{torch.get_num_threads()} threads'),
        repeats=args.repeats,
        warmup=args.warmup,
        median_ms={phase: value * 1e3
                   for phase, value in medians.items()},
        ratio=(medians['generator'] + medians['classifier']) /
        medians['frozen'],
        cuda_peak_bytes=cuda_peak,
        resident_after_setup_bytes=resident_after_setup,
        peak_resident_bytes=max_rss_bytes(
            resource.getrusage(resource.RUSAGE_SELF)))


def worker_command(args: argparse.Namespace, config: str,
                   output: str) -> list[str]:
    command = [
        sys.executable,
        osp.abspath(__file__), '--config', config, '--worker-output', output,
        '--device', args.device, '--repeats',
        str(args.repeats), '--warmup',
        str(args.warmup), '--threads',
        str(args.threads), '--seed',
        str(args.seed)
    ]
    if args.amp:
        command.append('--amp')
    if args.data_root:
        command += ['--data-root', args.data_root]
    if args.synthetic:
        command.append('--synthetic')
    if args.image_size:
        command += ['--image-size', *map(str, args.image_size)]
    if args.batch_size:
        command += ['--batch-size', str(args.batch_size)]
    return command


def print_results(results: list[dict[str, Any]]) -> None:
    first = results[0]
    print(f'device: {first["device"]} ({first["device_name"]}), torch '
          f'{torch.__version__}; median of {first["repeats"]} iterations '
          f'after {first["warmup"]} warm-up; random weights')
    rows = []
    for result in results:
        ms = result['median_ms']
        rows.append([
            osp.splitext(osp.basename(result['config']))[0] +
            (' (AMP)' if result.get('amp') else ''),
            str(result['batch_size']), result['data'],
            *(f'{ms[phase]:.1f}' if phase != 'generator'
              or result['has_generator'] else 'n/a' for phase in PHASES),
            f'{ms["total"]:.1f}',
            *(f'{100 * ms[phase] / ms["total"]:.1f}%' for phase in PHASES),
            f'{100 * result["ratio"]:.1f}%'
        ])
    print_table(
        'Stage-2 iteration (model.train_step), median ms per iteration:', [
            'config', 'batch', 'data', 'frozen ms', 'generator ms',
            'classifier ms', 'total ms', 'frozen', 'generator',
            'classifier', '(gen+cls)/frozen'
        ], rows)
    for result in results:
        name = osp.splitext(osp.basename(result['config']))[0]
        ratio = result['ratio']
        print(f'ratio (generator + classifier) / frozen forward, {name}: '
              f'{100 * ratio:.1f}% (target <= {100 * RATIO_TARGET:.0f}%: '
              f'{"met" if ratio <= RATIO_TARGET else "NOT met"})')
    rows = []
    for result in results:
        rows.append([
            osp.splitext(osp.basename(result['config']))[0],
            mib(result['cuda_peak_bytes'], 0),
            mib(result['resident_after_setup_bytes'], 0),
            mib(result['peak_resident_bytes'], 0)
        ])
    print_table(
        'Peak memory, MiB (CUDA: max allocated in one iteration; RSS: the '
        'whole benchmark process):',
        ['config', 'CUDA peak', 'RSS after set-up', 'peak RSS'], rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker_output:
        try:
            result = run_worker(args)
        except (FileNotFoundError, ValueError) as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
        with open(args.worker_output, 'w') as file:
            json.dump(result, file)
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        for index, config in enumerate(args.config):
            output = osp.join(tmp_dir, f'{index}.json')
            print(f'benchmarking {config} ...', file=sys.stderr, flush=True)
            # One process per config: its peak RSS is that config's alone.
            returncode = subprocess.run(
                worker_command(args, config, output)).returncode
            if returncode != 0:
                print(f'error: benchmarking {config} failed (exit status '
                      f'{returncode})', file=sys.stderr)
                return 1
            with open(output) as file:
                results.append(json.load(file))
    print_results(results)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(results, file, indent=2)
        print(f'figures written to {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
