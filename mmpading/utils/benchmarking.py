"""Pieces shared by the benchmark scripts of ``tools/analysis_tools``.

CUDA synchronisation and peak memory, the losses a training step logs, the
process's resident memory, and the plain-text tables they print. (Their
command-line arguments live with the tools:
``tools/analysis_tools/tool_arguments.py``.)
"""
from __future__ import annotations

import resource
import sys
from collections.abc import Callable

import torch


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
