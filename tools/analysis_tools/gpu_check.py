"""Prove mmpading's CUDA path on one machine and measure it, in minutes.

For a machine with a CUDA GPU and no internet, with a wheelhouse beside it
(``make wheelhouse`` where the internet is; ``docs/get_started.md``)::

    python3 tools/analysis_tools/gpu_check.py --wheelhouse ../wheelhouse \\
        --out docs/results/gpu

installs mmpading from the wheelhouse (``MMPADING_WHEELHOUSE=DIR make
install``: mmcv is built with CUDA ops for this GPU's architecture, on all
cores) and then runs each part below in a process of its own, so that one
that fails (its error goes into the report) does not stop the others:

``versions``
    Python, torch, CUDA, cuDNN, driver, GPUs, mmcv (its ops' CUDA and
    compiler versions) and the OpenMMLab stack; the mmcv build time.
``cuda_ops``
    mmcv's ``MultiScaleDeformableAttention`` CUDA kernel against its
    pure-PyTorch path (forward and gradients) at the size of a 1024 px
    image's pixel decoder, and ``point_sample`` on CUDA against the CPU:
    max abs differences, and the two attention paths' times.
``stage1``
    ``benchmark_stage1.py``: ZSP R-50 stage 1 against upstream mmdet
    Mask2Former, same weights, 2 synthetic 1024 px images per iteration,
    AMP off and on: s/iter, peak memory, losses finite, ratio.
``stage2``
    ``benchmark_stage2.py``: ZSP R-50 stage 2 (PADing), 12 synthetic
    928 px images per iteration, AMP off and on: the same figures.
``inference``
    ``benchmark_inference.py``: ZSP R-50 PADing against upstream
    Mask2Former with the same weights, 800 x 1216: ms/image, ratio
    (target <= 1.03), with and without the semantic output.
``nccl``
    Two processes over NCCL (all-reduce, one DDP step, the same weights
    on both ranks after it) if two GPUs are visible; skipped otherwise.

It writes ``gpu_check.json`` and ``gpu_check.md`` (and a log per part)
under ``--out``. The exit status is 0 if every part passed or was skipped.

``--dry-run`` runs every part on the CPU at tiny sizes, without
installing (``make test`` covers it): the attention op runs its PyTorch
path only (there is no CUDA kernel to compare), ``point_sample`` is
compared with itself, stage 1 / 2 run without AMP, and the two processes
of ``nccl`` talk over gloo.

This file runs before anything is installed: it uses the standard
library only, until it runs a part (``--part``, in the environment's
Python).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PARTS = ('versions', 'cuda_ops', 'stage1', 'stage2', 'inference', 'nccl')
STAGE1_CONFIG = 'configs/pading/zsp_r50_pretrain.py'
STAGE2_CONFIG = 'configs/pading/zsp_r50.py'
# What each part may take before it is stopped, in seconds (GPU run).
TIMEOUTS = dict(versions=120, cuda_ops=180, stage1=420, stage2=300,
                inference=300, nccl=180)
INFERENCE_TARGET = 1.03


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Install from a wheelhouse, check the CUDA ops and '
        'measure ZSP R-50 training and inference on this GPU.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--wheelhouse',
        help='install from this wheelhouse first (MMPADING_WHEELHOUSE)')
    parser.add_argument(
        '--skip-install',
        action='store_true',
        help='use the environment as it is (no make install)')
    parser.add_argument(
        '--python',
        help='the environment\'s interpreter (default: $VIRTUAL_ENV\'s, '
        'else .venv\'s)')
    parser.add_argument(
        '--out',
        default='work_dirs/gpu_check',
        help='folder of the report (gpu_check.md, gpu_check.json) and logs')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='CPU, tiny sizes, no install: checks the script itself')
    parser.add_argument(
        '--parts', nargs='+', choices=PARTS, default=list(PARTS),
        help='parts to run (default: all)')
    parser.add_argument('--stage1-config', default=STAGE1_CONFIG)
    parser.add_argument('--stage2-config', default=STAGE2_CONFIG)
    parser.add_argument(
        '--timeout-scale',
        type=float,
        default=1.0,
        help='factor on each part\'s time limit')
    # Internal: run one part in this process, its figures to this file.
    parser.add_argument('--part', choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument('--part-output', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.wheelhouse and (args.skip_install or args.dry_run):
        parser.error('--wheelhouse installs; it goes with neither '
                     '--skip-install nor --dry-run')
    if args.part and not args.part_output:
        parser.error('--part needs --part-output')
    return args


def environment_python(args: argparse.Namespace) -> str:
    if args.python:
        return args.python
    if os.environ.get('VIRTUAL_ENV'):
        return osp.join(os.environ['VIRTUAL_ENV'], 'bin', 'python')
    return str(REPO / '.venv' / 'bin' / 'python')


def say(message: str) -> None:
    print(f'[gpu_check] {message}', flush=True)


# ---------------------------------------------------------------- install
def install(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """``make install`` (from the wheelhouse if given), timed and logged."""
    env = dict(os.environ)
    if args.wheelhouse:
        env['MMPADING_WHEELHOUSE'] = str(Path(args.wheelhouse).resolve())
    log = out / 'install.log'
    source = (f'wheelhouse {args.wheelhouse}' if args.wheelhouse else
              'package index')
    say(f'installing ({source}); log: {log}')
    start = time.time()
    with open(log, 'w') as file:
        result = subprocess.run(
            [sys.executable, str(REPO / 'tools' / 'install.py')], env=env,
            stdout=file, stderr=subprocess.STDOUT, cwd=REPO)
    seconds = time.time() - start
    record: dict[str, Any] = dict(status='ok' if result.returncode == 0
                                  else 'failed', seconds=round(seconds, 1))
    if result.returncode != 0:
        record['error'] = tail(log.read_text())
    say(f'install {record["status"]} in {seconds:.0f} s')
    return record


def tail(text: str, lines: int = 15) -> str:
    return '\n'.join(text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------ parts
def run_parts(args: argparse.Namespace, out: Path,
              python: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for part in args.parts:
        output = out / f'{part}.json'
        log = out / f'{part}.log'
        output.unlink(missing_ok=True)
        command = [python, str(Path(__file__).resolve()), '--part', part,
                   '--part-output', str(output), '--stage1-config',
                   args.stage1_config, '--stage2-config', args.stage2_config]
        if args.dry_run:
            command.append('--dry-run')
        limit = TIMEOUTS[part] * args.timeout_scale
        say(f'{part}: running (limit {limit:.0f} s, log {log})')
        start = time.time()
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        try:
            with open(log, 'w') as file:
                returncode = subprocess.run(
                    command, stdout=file, stderr=subprocess.STDOUT, cwd=REPO,
                    env=env, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            returncode = None
        seconds = round(time.time() - start, 1)
        if output.is_file():
            result = json.loads(output.read_text())
        else:
            result = dict(status='failed')
        if returncode is None:
            result = dict(status='failed',
                          error=f'stopped after {limit:.0f} s\n' +
                          tail(log.read_text()))
        elif returncode != 0 and result.get('status') != 'failed':
            result = dict(result, status='failed')
        if result['status'] == 'failed' and 'error' not in result:
            result['error'] = tail(log.read_text())
        result['seconds'] = seconds
        results[part] = result
        say(f'{part}: {result["status"]} in {seconds:.0f} s' + (
            f' ({result.get("reason")})' if result.get('reason') else ''))
    return results


def run_part(args: argparse.Namespace) -> int:
    """One part, in the environment's Python; figures to --part-output."""
    function = globals()[f'part_{args.part}']
    try:
        result = function(args)
    except Exception as error:  # the report says what failed, and why
        import traceback
        traceback.print_exc()
        result = dict(status='failed',
                      error=f'{type(error).__name__}: {error}')
    with open(args.part_output, 'w') as file:
        json.dump(result, file, indent=2, default=str)
    return 0 if result['status'] in ('ok', 'skipped') else 1


def _device(args: argparse.Namespace):
    import torch
    if args.dry_run:
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise RuntimeError('CUDA is not available to torch '
                           f'{torch.__version__} (torch.version.cuda = '
                           f'{torch.version.cuda}); a CPU machine runs '
                           '--dry-run')
    return torch.device('cuda', 0)


def _tool(name: str):
    """A benchmark script of this folder, imported to run its parts here
    (the folder of a running script is the first entry of sys.path)."""
    import importlib
    return importlib.import_module(name)


def part_versions(args: argparse.Namespace) -> dict[str, Any]:
    import importlib.metadata as metadata

    import torch
    versions = {}
    for name in ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet',
                 'mmsegmentation', 'mmpretrain', 'mmpading', 'numpy'):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    result: dict[str, Any] = dict(
        status='ok',
        python=platform.python_version(),
        platform=platform.platform(),
        cpus=os.cpu_count(),
        versions=versions,
        torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version()
        if torch.backends.cudnn.is_available() else None,
        gpus=[dict(name=torch.cuda.get_device_name(i),
                   capability='{}.{}'.format(
                       *torch.cuda.get_device_capability(i)),
                   memory_gib=round(torch.cuda.get_device_properties(i)
                                    .total_memory / 2**30, 1))
              for i in range(torch.cuda.device_count())])
    try:
        smi = subprocess.run(
            ['nvidia-smi', '--query-gpu=driver_version',
             '--format=csv,noheader'], capture_output=True, text=True,
            timeout=30)
        result['driver'] = smi.stdout.strip().splitlines()[0] \
            if smi.returncode == 0 and smi.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        result['driver'] = None
    from mmcv.ops import get_compiler_version, get_compiling_cuda_version
    result['mmcv_ops'] = dict(compiling_cuda=get_compiling_cuda_version(),
                              compiler=get_compiler_version())
    stamp = Path(sys.prefix) / '.mmpading-install.json'
    if stamp.is_file():
        result['mmcv_build'] = json.loads(stamp.read_text()).get(
            'mmcv_build')
    if not args.dry_run and not result['gpus']:
        result.update(status='failed', error='no CUDA GPU visible to torch')
    return result


def part_cuda_ops(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from mmcv.ops import point_sample
    from mmcv.ops.multi_scale_deform_attn import (
        MultiScaleDeformableAttnFunction,
        multi_scale_deformable_attn_pytorch,
    )
    device = _device(args)
    torch.manual_seed(0)
    # Mask2Former's pixel decoder: 8 heads of 32 channels, 3 levels (1/8,
    # 1/16, 1/32 of the image), 4 points; every pixel is a query.
    side = 64 if args.dry_run else 1024
    shapes = torch.tensor([[side // 8, side // 8], [side // 16, side // 16],
                           [side // 32, side // 32]], device=device)
    starts = torch.cat([shapes.new_zeros(1),
                        (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
    num_value = int((shapes[:, 0] * shapes[:, 1]).sum())
    batch, heads, channels, levels, points = 2, 8, 32, 3, 4
    value = torch.randn(batch, num_value, heads, channels, device=device,
                        requires_grad=True)
    locations = torch.rand(batch, num_value, heads, levels, points, 2,
                           device=device, requires_grad=True)
    weights = torch.rand(batch, num_value, heads, levels, points,
                         device=device).softmax(-1).requires_grad_()
    grad_out = torch.randn(batch, num_value, heads * channels, device=device)

    def run(function) -> tuple[Any, ...]:
        for tensor in (value, locations, weights):
            tensor.grad = None
        output = function()
        output.backward(grad_out)
        return (output.detach(), value.grad.clone(), locations.grad.clone(),
                weights.grad.clone())

    def timed(function, repeats: int = 5) -> float:
        function()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            function()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats * 1e3

    def reference():
        return multi_scale_deformable_attn_pytorch(value, shapes, locations,
                                                   weights)

    result: dict[str, Any] = dict(status='ok', device=str(device),
                                  msda_queries=num_value)
    ref = run(reference)
    if device.type == 'cuda':
        def kernel():
            return MultiScaleDeformableAttnFunction.apply(
                value, shapes, starts, locations, weights, 64)
        ours = run(kernel)
        result['msda_max_abs_diff'] = dict(
            zip(('output', 'grad_value', 'grad_locations', 'grad_weights'),
                (float((a - b).abs().max()) for a, b in zip(ours, ref))))
        result['msda_ms'] = dict(cuda_kernel=timed(kernel),
                                 pytorch=timed(reference))
    else:
        # No CUDA kernel here: mmcv's module takes this PyTorch path on
        # the CPU.
        result['note'] = ('CPU: the PyTorch path only; no CUDA kernel '
                          'compared')
        result['msda_ms'] = dict(pytorch=timed(reference, repeats=1))
    # point_sample: CUDA (or CPU) against the CPU, on mask logits.
    masks = torch.randn(2, 100, 64, 64, device=device)
    coords = torch.rand(2, 12544, 2, device=device)  # points per mask
    sampled = point_sample(masks, coords, align_corners=False)
    on_cpu = point_sample(masks.cpu(), coords.cpu(), align_corners=False)
    result['point_sample_max_abs_diff'] = float(
        (sampled.cpu() - on_cpu).abs().max())
    tolerance = 1e-3
    worst = max([result['point_sample_max_abs_diff'],
                 *result.get('msda_max_abs_diff', {}).values()])
    result['tolerance'] = tolerance
    if worst > tolerance:
        result.update(status='failed',
                      error=f'max abs diff {worst:.2e} > {tolerance}')
    return result


def _fp32_and_amp(device, benchmark: Callable[[list[str]], dict],
                  options: list[str],
                  finite: Callable[[dict], bool]) -> dict[str, Any]:
    """A training benchmark without AMP, then with it (not on a CPU).

    Args:
        device (torch.device): Where it runs.
        benchmark (Callable): Figures of one run from its options.
        options (list[str]): The options of both runs; ``--amp`` is added
            for the second.
        finite (Callable): Whether a run's losses all stayed finite.
    """
    runs = {}
    for amp in ((False, ) if device.type == 'cpu' else (False, True)):
        runs['amp' if amp else 'fp32'] = benchmark(
            options + (['--amp'] if amp else []))
    ok = all(finite(run) for run in runs.values())
    result = dict(status='ok' if ok else 'failed', runs=runs)
    if device.type == 'cpu':
        result['note'] = 'AMP skipped: CPU'
    if not ok:
        result['error'] = 'a loss was not finite'
    return result


def part_stage1(args: argparse.Namespace) -> dict[str, Any]:
    bench = _tool('benchmark_stage1')
    device = _device(args)
    common = ['--config', args.stage1_config, '--device', str(device)]
    if args.dry_run:
        common += ['--image-size', '64', '--batch-size', '1', '--repeats',
                   '1', '--warmup', '0']
    else:
        common += ['--image-size', '1024', '--batch-size', '2', '--repeats',
                   '5', '--warmup', '2']
    return _fp32_and_amp(
        device, lambda options: bench.run(bench.parse_args(options)),
        common, lambda run: all(run['losses_finite'].values()))


def part_stage2(args: argparse.Namespace) -> dict[str, Any]:
    bench = _tool('benchmark_stage2')
    device = _device(args)
    common = ['--config', args.stage2_config, '--device', str(device),
              '--synthetic']
    if args.dry_run:
        common += ['--image-size', '64', '--batch-size', '2', '--repeats',
                   '1', '--warmup', '0']
    else:
        common += ['--batch-size', '12', '--repeats', '5', '--warmup', '2']
    return _fp32_and_amp(
        device, lambda options: bench.run_worker(bench.parse_args(options)),
        common, lambda run: run['losses_finite'])


def part_inference(args: argparse.Namespace) -> dict[str, Any]:
    bench = _tool('benchmark_inference')
    device = _device(args)
    output = f'{args.part_output}.inference.json'
    options = ['--config', args.stage2_config, '--device', str(device),
               '--json', output]
    if args.dry_run:
        options += ['--image-size', '64', '--repeats', '1', '--warmup', '0']
    else:
        options += ['--image-size', '800', '1216', '--repeats', '20',
                    '--warmup', '5']
    returncode = bench.main(options)
    if not osp.isfile(output):
        return dict(status='failed',
                    error=f'benchmark_inference.py exited {returncode} '
                    'without figures')
    figures = json.loads(Path(output).read_text())
    os.remove(output)
    ok = returncode == 0 and figures['equivalence']['ok']
    return dict(status='ok' if ok else 'failed',
                target=INFERENCE_TARGET,
                target_met=figures['ratio_a'] <= INFERENCE_TARGET,
                **figures)


def _nccl_worker(rank: int, world: int, backend: str, port: int,
                 output: str) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn
    dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world)
    device = torch.device('cuda', rank) if backend == 'nccl' else \
        torch.device('cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    total = torch.full((4, ), float(rank + 1), device=device)
    dist.all_reduce(total)
    torch.manual_seed(rank)  # different data and start on each rank
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(),
                          nn.Conv2d(8, 1, 3)).to(device)
    ddp = nn.parallel.DistributedDataParallel(
        model, device_ids=[rank] if device.type == 'cuda' else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    ddp(torch.randn(2, 3, 16, 16, device=device)).square().mean().backward()
    optimizer.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    seconds = None
    if device.type == 'cuda':
        payload = torch.ones(64 * 2**20, device=device)  # 256 MiB
        dist.all_reduce(payload)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            dist.all_reduce(payload)
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / 5
    if rank == 0:
        with open(output, 'w') as file:
            json.dump(dict(
                all_reduce_ok=bool((total == world * (world + 1) / 2).all()),
                same_weights=all(torch.equal(gathered[0], g)
                                 for g in gathered),
                all_reduce_256mib_ms=None if seconds is None else
                seconds * 1e3), file)
    dist.destroy_process_group()


def part_nccl(args: argparse.Namespace) -> dict[str, Any]:
    import socket

    import torch
    import torch.multiprocessing as mp
    if args.dry_run:
        backend = 'gloo'
    elif torch.cuda.device_count() < 2:
        return dict(status='skipped',
                    reason=f'{torch.cuda.device_count()} GPU visible; the '
                    'NCCL run needs 2')
    else:
        backend = 'nccl'
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    output = f'{args.part_output}.ranks.json'
    mp.spawn(_nccl_worker, args=(2, backend, port, output), nprocs=2,
             join=True)
    figures = json.loads(Path(output).read_text())
    os.remove(output)
    ok = figures['all_reduce_ok'] and figures['same_weights']
    return dict(status='ok' if ok else 'failed', backend=backend,
                processes=2, **figures,
                **({} if ok else dict(error='ranks disagree')))


# ----------------------------------------------------------------- report
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def mib(num_bytes: Any) -> str:
    return 'n/a' if not num_bytes else f'{num_bytes / 2**20:,.0f}'


def markdown(report: dict[str, Any]) -> str:
    lines = ['# GPU check', '']
    lines.append(f'Written by `{report["command"]}` on {report["finished"]}'
                 f' ({report["wall_s"]:.0f} s wall time in all'
                 + (', dry run: CPU, tiny sizes' if report['dry_run'] else '')
                 + ').')
    lines += ['', '| part | status | seconds | note |', '|---|---|---|---|']
    steps = dict(report['parts'])
    if report.get('install'):
        steps = dict(install=report['install'], **steps)
    for name, part in steps.items():
        note = part.get('reason') or part.get('note') or ''
        if part['status'] == 'failed':
            note = part.get('error', '').strip().splitlines()[-1:] or ['']
            note = note[0]
        lines.append(f'| {name} | {part["status"]} | '
                     f'{fmt(part.get("seconds"), 0)} | {note} |')
    parts = report['parts']
    versions = parts.get('versions', {})
    if versions.get('status') == 'ok':
        gpus = ', '.join(f'{g["name"]} (sm {g["capability"]}, '
                         f'{g["memory_gib"]} GiB)'
                         for g in versions['gpus']) or 'none'
        build = versions.get('mmcv_build') or {}
        lines += ['', '## Versions', '',
                  f'- GPUs: {gpus}; driver {versions.get("driver")}',
                  f'- Python {versions["python"]}, torch '
                  f'{versions["versions"]["torch"]} (CUDA '
                  f'{versions["torch_cuda"]}, cuDNN {versions["cudnn"]})',
                  f'- mmcv {versions["versions"]["mmcv"]}: ops compiled '
                  f'with CUDA {versions["mmcv_ops"]["compiling_cuda"]}, '
                  f'{versions["mmcv_ops"]["compiler"]}; build: '
                  + (f'{build.get("seconds")} s, CUDA ops '
                     f'{build.get("cuda_ops")}, arch '
                     f'{build.get("cuda_arch_list")}, {build.get("jobs")} '
                     'jobs' if build else 'not recorded (cached wheel or '
                     'another installer)'),
                  '- ' + ', '.join(f'{k} {v}' for k, v in
                                   versions['versions'].items()
                                   if k not in ('torch', 'mmcv'))]
    ops = parts.get('cuda_ops', {})
    if ops.get('status') in ('ok', 'failed') and 'point_sample_max_abs_diff' \
            in ops:
        lines += ['', '## CUDA ops against PyTorch', '']
        for name, diff in (ops.get('msda_max_abs_diff') or {}).items():
            lines.append(f'- MultiScaleDeformableAttention {name}: max abs '
                         f'diff {diff:.2e}')
        lines.append(f'- point_sample, {ops["device"]} vs CPU: max abs diff '
                     f'{ops["point_sample_max_abs_diff"]:.2e}')
        lines.append('- attention ms ('
                     f'{ops["msda_queries"]} queries): ' + ', '.join(
                         f'{k} {v:.2f}' for k, v in ops['msda_ms'].items()))
    stage1 = parts.get('stage1', {})
    if stage1.get('runs'):
        lines += ['', '## Stage 1 training: PADing vs upstream Mask2Former',
                  '', '| AMP | images | PADing s/iter | upstream s/iter | '
                  'ratio (paired) | PADing peak MiB | upstream peak MiB | '
                  'losses finite |', '|---|---|---|---|---|---|---|---|']
        for mode, run in stage1['runs'].items():
            peaks = run.get('cuda_peak_bytes') or {}
            lines.append(
                f'| {mode} | {run["batch_size"]} x '
                f'{run["image_size"][0]}² | '
                f'{fmt(run["s_per_iter"]["pading"])} | '
                f'{fmt(run["s_per_iter"]["upstream"])} | '
                f'{fmt(run["ratio"])} ({fmt(run["paired_ratio"])}) | '
                f'{mib(peaks.get("pading"))} | {mib(peaks.get("upstream"))} '
                f'| {all(run["losses_finite"].values())} |')
    stage2 = parts.get('stage2', {})
    if stage2.get('runs'):
        lines += ['', '## Stage 2 training (PADing)', '',
                  '| AMP | images | s/iter | frozen / generator / classifier '
                  'ms | peak MiB | losses finite | s/image vs upstream '
                  'stage-1 s/image |', '|---|---|---|---|---|---|---|']
        for mode, run in stage2['runs'].items():
            ms = run['median_ms']
            relative = 'n/a'
            upstream = (stage1.get('runs') or {}).get(mode)
            if upstream:
                per_image = ms['total'] / 1e3 / run['batch_size']
                upstream_image = upstream['s_per_iter']['upstream'] / \
                    upstream['batch_size']
                relative = fmt(per_image / upstream_image)
            lines.append(
                f'| {mode} | {run["batch_size"]} ({run["data"]}) | '
                f'{fmt(ms["total"] / 1e3)} | {ms["frozen"]:.0f} / '
                f'{ms["generator"]:.0f} / {ms["classifier"]:.0f} | '
                f'{mib(run.get("cuda_peak_bytes"))} | '
                f'{run["losses_finite"]} | {relative} |')
    inference = parts.get('inference', {})
    if inference.get('settings'):
        lines += ['', '## Inference: PADing vs upstream Mask2Former, same '
                  'weights', '',
                  f'{inference["batch_size"]} image(s) of '
                  f'{inference["image_size"]}, median of '
                  f'{inference["repeats"]}; equivalence '
                  f'{"PASS" if inference["equivalence"]["ok"] else "FAIL"}.',
                  '', '| setting | PADing ms/img | upstream ms/img | ratio | '
                  'paired |', '|---|---|---|---|---|']
        for setting, row in inference['settings'].items():
            lines.append(f'| {setting} | {row["ours"]:.1f} | '
                         f'{row["upstream"]:.1f} | {row["ratio"]:.3f} | '
                         f'{row["paired_ratio"]:.3f} |')
        lines.append('')
        lines.append(f'Target (a) <= {INFERENCE_TARGET}: '
                     f'{"met" if inference["target_met"] else "NOT met"}.')
    nccl = parts.get('nccl', {})
    if nccl.get('status') == 'ok':
        lines += ['', '## Two processes', '',
                  f'{nccl["backend"]}: all-reduce {nccl["all_reduce_ok"]}, '
                  f'same weights after a DDP step {nccl["same_weights"]}, '
                  '256 MiB all-reduce '
                  f'{fmt(nccl["all_reduce_256mib_ms"], 1)} ms.']
    failed = {name: part for name, part in steps.items()
              if part['status'] == 'failed'}
    if failed:
        lines += ['', '## Errors', '']
        for name, part in failed.items():
            lines += [f'### {name}', '', '```', part.get('error', ''), '```',
                      '']
    return '\n'.join(lines).rstrip('\n') + '\n'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.part:
        return run_part(args)
    start = time.time()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = dict(
        command=' '.join(['python3', 'tools/analysis_tools/gpu_check.py',
                          *(sys.argv[1:] if argv is None else argv)]),
        dry_run=args.dry_run, started=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
    if not (args.dry_run or args.skip_install):
        report['install'] = install(args, out)
    python = environment_python(args)
    if not osp.isfile(python):
        say(f'no interpreter at {python}: make install first, or give '
            '--python')
        return 1
    report['parts'] = run_parts(args, out, python)
    report['finished'] = time.strftime('%Y-%m-%dT%H:%M:%S%z')
    report['wall_s'] = round(time.time() - start, 1)
    (out / 'gpu_check.json').write_text(json.dumps(report, indent=2,
                                                   default=str))
    (out / 'gpu_check.md').write_text(markdown(report))
    steps = list(report['parts'].values()) + (
        [report['install']] if 'install' in report else [])
    failed = [part for part in steps if part['status'] == 'failed']
    say(f'report: {out / "gpu_check.md"} ({report["wall_s"]:.0f} s; '
        f'{len(failed)} failed)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
