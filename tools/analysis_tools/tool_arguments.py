"""Command-line arguments that several tools of tools/analysis_tools share.

Timing (``--repeats``, ``--warmup``, ``--threads``) for the benchmarks and
the models to compare (``--model LABEL CONFIG CHECKPOINT`` ...) for the
visualisation tools. The scripts import it by its name: a script's own
folder comes first on ``sys.path``.
"""
from __future__ import annotations

import argparse
import os.path as osp
from collections.abc import Callable, Sequence

import torch
from mmengine.config import DictAction

from mmpading.apis import resolve_config
from mmpading.utils.config_utils import DataRootError


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
    add_threads_argument(parser)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads`` (default 1), checked by
    :func:`check_threads_argument`."""
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads (default 1: reproducible figures on shared '
        'machines; 0 keeps torch\'s default)')


def check_threads_argument(parser: argparse.ArgumentParser,
                           args: argparse.Namespace) -> None:
    """Reject a negative ``--threads`` with a one-line message."""
    if args.threads < 0:
        parser.error('--threads must be >= 0 (0: torch\'s default)')


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
    check_threads_argument(parser, args)
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')


def add_model_arguments(parser: argparse.ArgumentParser, item: str) -> None:
    """The command-line arguments of the tools that compare models.

    Adds ``--model LABEL CONFIG CHECKPOINT`` (repeatable), ``--data-root``,
    ``--split``, ``--batch-size``, ``--device`` and ``--cfg-options``.

    Args:
        parser (ArgumentParser): The tool's parser.
        item (str): What one ``--model`` becomes, e.g. ``'a panel'``.
    """
    parser.add_argument(
        '--model',
        nargs=3,
        action='append',
        required=True,
        metavar=('LABEL', 'CONFIG', 'CHECKPOINT'),
        help=f'{item}: its title, a toy config name or config file, and '
        'the checkpoint (repeat for several)')
    parser.add_argument(
        '--data-root',
        help='data folder replacing each config\'s data_root (data/toy/ '
        'in the toy configs) in all its paths (default: the configs\' '
        'own)')
    parser.add_argument(
        '--split',
        default='val',
        choices=('val', 'test', 'train'),
        help='the data set whose images are used')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='dotted overrides applied to every config')


def check_model_arguments(parser: argparse.ArgumentParser,
                          args: argparse.Namespace,
                          positive: Sequence[str] = ()) -> None:
    """Reject bad input of :func:`add_model_arguments` before any build.

    Args:
        parser (ArgumentParser): The parser, whose ``error`` exits with a
            one-line message.
        args (Namespace): Parsed arguments.
        positive (Sequence[str]): Integer arguments that must be >= 1
            (attribute names, e.g. ``'num_images'``).
    """
    for name in ('batch_size', *positive):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    check_model_labels(parser, args.model)
    if args.data_root is not None and not osp.isdir(args.data_root):
        parser.error(f'--data-root {args.data_root!r} is not a folder; '
                     'generate the toy data set with tools/'
                     'dataset_converters/make_toy_dataset.py')
    check_model_files(
        parser, args.model,
        lambda config: resolve_config(config, args.data_root,
                                      args.cfg_options))


def check_model_labels(parser: argparse.ArgumentParser,
                       models: Sequence[Sequence[str]]) -> None:
    """Refuse ``--model`` triples that share a label."""
    labels = [label for label, _, _ in models]
    if len(set(labels)) != len(labels):
        parser.error(f'--model labels must differ, got {labels}')


def check_model_files(parser: argparse.ArgumentParser,
                      models: Sequence[Sequence[str]],
                      load_config: Callable[[str], object]) -> None:
    """Refuse a ``--model`` whose checkpoint is missing or whose config
    ``load_config`` cannot load (``FileNotFoundError``,
    ``DataRootError``)."""
    for label, config, checkpoint in models:
        if not osp.isfile(checkpoint):
            parser.error(f'--model {label}: checkpoint {checkpoint!r} not '
                         'found; train the config first (tools/train.py) '
                         'or fix the path')
        try:
            load_config(config)
        except (FileNotFoundError, DataRootError) as error:
            parser.error(f'--model {label}: {error}')
