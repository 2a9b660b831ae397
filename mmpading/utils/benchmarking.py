"""Pieces shared by the benchmark scripts of ``tools/analysis_tools``.

Command-line timing arguments, CUDA synchronisation and peak memory, the
losses a training step logs, the process's resident memory, and the
plain-text tables they print.
"""
from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Callable

import torch


def add_timing_arguments(parser: argparse.ArgumentParser,
                         repeats: int,
                         what: str = 'runs') -> None:
    """Add ``--repeats``, ``--warmup`` and ``--threads``.

    Args:
        parser (ArgumentParser): The script's parser.
        repeats (int): Default number of timed runs.
        what (str): What is repeated, for the help text.
    """
    parser.add_argument(
        '--repeats',
        type=int,
        default=repeats,
        help=f'timed {what} (median kept)')
    parser.add_argument(
        '--warmup', type=int, default=2, help=f'untimed {what} first')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (default 1: reproducible figures on shared '
        'machines; 0 keeps torch\'s default)')


def check_timing_arguments(parser: argparse.ArgumentParser,
                           args: argparse.Namespace) -> None:
    """Reject a missing CUDA device and bad ``--repeats`` / ``--threads``.

    ``args`` needs ``device`` besides the arguments of
    :func:`add_timing_arguments`; ``parser.error`` exits with a one-line
    message.
    """
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error(f'--device {args.device} was asked for but CUDA is not '
                     'available; use --device cpu')
    if args.threads < 0:
        parser.error('--threads must be >= 0 (0: torch\'s default)')
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer sees it; no-op on CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def cuda_peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Peak CUDA memory ``step`` allocates above what was already there."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - baseline


def loss_values(log_vars: dict) -> dict[str, float]:
    """The floats of a ``train_step``'s log variables (tensors detached)."""
    return {
        name: float(value.detach()) if torch.is_tensor(value) else
        float(value)
        for name, value in log_vars.items()
    }


def proc_status_bytes(key: str) -> int:
    """A figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes.

    Raises:
        OSError: Not on Linux.
        KeyError: No such figure.
    """
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def max_rss_bytes(usage: resource.struct_rusage) -> int:
    """``ru_maxrss`` in bytes (Linux reports KiB, macOS bytes)."""
    return usage.ru_maxrss if sys.platform == 'darwin' else \
        usage.ru_maxrss * 1024


def mib(num_bytes: float | None, digits: int = 1) -> str:
    """Bytes as MiB with ``digits`` decimals; ``'n/a'`` for None."""
    return 'n/a' if num_bytes is None else \
        f'{num_bytes / 2**20:.{digits}f}'


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print right-aligned columns under a title and a rule."""
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows))
        for i in range(len(header))
    ]
    line = '  '.join(h.rjust(w) for h, w in zip(header, widths))
    print(f'\n{title}\n{line}\n{"-" * len(line)}')
    for row in rows:
        print('  '.join(cell.rjust(w) for cell, w in zip(row, widths)))
