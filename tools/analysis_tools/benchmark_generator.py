"""Benchmark the feature generators and the MMD loss.

Prints two tables:

1. Throughput (synthetic features per second) of forward + backward of
   ``PrimitiveGenerator`` and ``GMMNGenerator`` with their default
   architectures, in training mode (dropout and noise on), and the ratio
   between them.
2. Time of forward + backward of ``MMDLoss`` between two sets of N
   256-d features, and its peak memory beside the size of one (N + M)^2
   fp32 kernel matrix. On CUDA the peak comes from
   ``torch.cuda.max_memory_allocated``. On the CPU (Linux, glibc) it is
   measured in a separate process that forces large blocks to ``mmap``, so
   that resident memory follows the live tensors, and reads the increase of
   the resident high-water mark (``tracemalloc`` does not see torch's
   allocations); elsewhere it is left out.

CPU figures use one thread unless ``--threads`` says otherwise: with
several threads, busy neighbours on a shared machine stall the
synchronisation of OpenMP threads and the figures swing tenfold.

Example::

    python tools/analysis_tools/benchmark_generator.py
    python tools/analysis_tools/benchmark_generator.py --threads 0  # all
    python tools/analysis_tools/benchmark_generator.py --device cuda
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from mmengine.utils import ProgressBar

from mmpading.models import GMMNGenerator, MMDLoss, PrimitiveGenerator
from mmpading.utils.benchmarking import (
    cuda_peak_bytes,
    mib,
    print_table,
    proc_status_bytes,
    synchronize,
)

from tool_arguments import add_timing_arguments, check_timing_arguments


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Throughput of PrimitiveGenerator vs GMMNGenerator and '
        'the time and peak memory of MMDLoss.')
    parser.add_argument(
        '--device', default='cpu', help='torch device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[64, 256, 1024, 4096],
        help='numbers N of features generated per step')
    parser.add_argument(
        '--mmd-sizes',
        type=int,
        nargs='+',
        default=[64, 256, 1024, 2048],
        help='sizes N = M of the two sets given to MMDLoss (memory and '
        'time grow as (N + M)^2: 4096 needs about 2.5 GiB and several '
        'seconds per step on a CPU)')
    parser.add_argument(
        '--semantic-dim',
        type=int,
        default=512,
        help='dimension of the semantic embeddings (512: CLIP)')
    parser.add_argument(
        '--feat-dim', type=int, default=256, help='feature dimension')
    add_timing_arguments(parser, repeats=5)
    parser.add_argument('--seed', type=int, default=0)
    # Internal: measure CPU peak memory of MMDLoss in a fresh process.
    parser.add_argument(
        '--mmd-memory-worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_timing_arguments(parser, args)
    if min(args.sizes + args.mmd_sizes) < 1:
        parser.error('sizes must be positive')
    return args


def median_seconds(step: Callable[[], None], device: torch.device,
                   repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def generator_step(generator: torch.nn.Module,
                   embeddings: torch.Tensor) -> Callable[[], None]:

    def step() -> None:
        generator.zero_grad(set_to_none=True)
        features = generator(embeddings)
        # Squares, not a plain sum: a LayerNorm output sums to a constant.
        features.float().square().mean().backward()

    return step


def mmd_inputs(n: int, feat_dim: int,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    source = torch.randn(n, feat_dim, device=device, requires_grad=True)
    return source, torch.randn(n, feat_dim, device=device)


def mmd_step(loss: MMDLoss, source: torch.Tensor,
             target: torch.Tensor) -> Callable[[], None]:

    def step() -> None:
        source.grad = None
        loss(source, target).backward()

    return step


def _reset_resident_high_water_mark() -> None:
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')


def run_memory_worker(args: argparse.Namespace) -> None:
    """Print {N: peak resident increase in bytes} of MMDLoss as JSON."""
    libc = ctypes.CDLL('libc.so.6')
    m_mmap_threshold = -3
    # Every block >= 1 MiB is mmap-ed and unmapped when freed, so resident
    # memory tracks the live tensors. Set before any tensor exists.
    if not libc.mallopt(m_mmap_threshold, 1 << 20):
        raise OSError('mallopt(M_MMAP_THRESHOLD) failed')
    loss = MMDLoss()
    peaks = {}
    for n in args.mmd_sizes:
        step = mmd_step(loss, *mmd_inputs(n, args.feat_dim, 'cpu'))
        step()  # pages in the code of every kernel first
        libc.malloc_trim(0)
        baseline = proc_status_bytes('VmRSS')
        _reset_resident_high_water_mark()
        step()
        peaks[n] = proc_status_bytes('VmHWM') - baseline
    print(json.dumps(peaks))


def cpu_peak_bytes(args: argparse.Namespace) -> dict[int, int | None]:
    """CPU peaks from a fresh process; None where that is not possible."""
    command = [
        sys.executable, __file__, '--mmd-memory-worker', '--feat-dim',
        str(args.feat_dim), '--mmd-sizes', *map(str, args.mmd_sizes)
    ]
    if args.threads:
        command += ['--threads', str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print('peak memory not measured: '
              f'{result.stderr.strip().splitlines()[-1:]}', file=sys.stderr)
        return dict.fromkeys(args.mmd_sizes)
    peaks = json.loads(result.stdout.strip().splitlines()[-1])
    return {n: peaks[str(n)] for n in args.mmd_sizes}


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mmd_memory_worker:
        run_memory_worker(args)
        return
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    generators = {
        'PrimitiveGenerator':
        PrimitiveGenerator(args.semantic_dim, feat_dim=args.feat_dim),
        'GMMNGenerator':
        GMMNGenerator(args.semantic_dim, feat_dim=args.feat_dim),
    }
    for generator in generators.values():
        generator.to(device).train()
    mmd = MMDLoss()
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda'
             else f'{torch.get_num_threads()} threads')
    print(f'device: {device} ({where}), torch {torch.__version__}, median '
          f'of {args.repeats} runs after {args.warmup} warm-up')

    progress = ProgressBar(
        len(args.sizes) * len(generators) + len(args.mmd_sizes),
        file=sys.stderr)
    throughput = {}
    for n in args.sizes:
        embeddings = torch.randn(n, args.semantic_dim, device=device)
        for name, generator in generators.items():
            seconds = median_seconds(
                generator_step(generator, embeddings), device, args.repeats,
                args.warmup)
            throughput[name, n] = n / seconds
            progress.update()

    mmd_seconds, peaks = {}, {}
    for n in args.mmd_sizes:
        step = mmd_step(mmd, *mmd_inputs(n, args.feat_dim, device))
        mmd_seconds[n] = median_seconds(step, device, args.repeats,
                                        args.warmup)
        if device.type == 'cuda':
            peaks[n] = cuda_peak_bytes(step, device)
        progress.update()
    sys.stderr.write('\n')
    if device.type == 'cpu':
        peaks = cpu_peak_bytes(args)

    rows = []
    for n in args.sizes:
        primitive = throughput['PrimitiveGenerator', n]
        gmmn = throughput['GMMNGenerator', n]
        rows.append([
            str(n), f'{primitive:,.0f}', f'{gmmn:,.0f}',
            f'{primitive / gmmn:.3f}', f'{gmmn / primitive:.1f}x'
        ])
    print_table(
        'Generators, forward + backward, training mode '
        f'(semantic_dim={args.semantic_dim}, feat_dim={args.feat_dim}):',
        [
            'N', 'Primitive feat/s', 'GMMN feat/s', 'Primitive/GMMN',
            'GMMN faster by'
        ], rows)

    peak_label = ('peak MiB (cuda allocated)' if device.type == 'cuda' else
                  'peak MiB (resident increase)')
    rows = []
    for n in args.mmd_sizes:
        matrix = 4 * (2 * n)**2
        peak = peaks.get(n)
        rows.append([
            str(n),
            f'{mmd_seconds[n] * 1e3:.1f}',
            mib(peak),
            mib(matrix),
            'n/a' if peak is None else f'{peak / matrix:.1f}',
        ])
    print_table(
        f'MMDLoss, forward + backward, N = M, C = {args.feat_dim}, '
        f'{len(mmd.kernel_variances)} kernels:',
        ['N', 'ms', peak_label, '(N+M)^2 fp32 MiB', 'peak / matrix'], rows)
    if device.type == 'cpu':
        print('(CPU peaks below a few MiB are mostly allocator overhead)')


if __name__ == '__main__':
    main()
