"""Command-line arguments shared by the benchmark scripts."""
from __future__ import annotations

import argparse

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
