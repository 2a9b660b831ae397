"""A training batch given for all processes together (``global_batch_size``).

mmengine's ``train_dataloader.batch_size`` is per process: the images of an
iteration grow with the number of GPUs. PADing's stage 2 is set for 12
images per iteration (the reference's ``IMS_PER_BATCH``), and its learner
computes its losses over the images of all processes
(``ZeroShotLearner.cross_rank_losses``), so the stage-2 configs give the
batch of an iteration instead: ``global_batch_size = 12``. ``tools/train.py``
sets each process's ``train_dataloader.batch_size`` from it before the
Runner starts: 12 over 8 processes is 2 images on ranks 0-3 and 1 on ranks
4-7, and the learning rates stay the configs'.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from mmengine.config import Config

# Where each launcher of tools/train.py says the rank and the world size.
_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'),
}


class GlobalBatchError(ValueError):
    """A ``global_batch_size`` that cannot be used; the message has the fix.
    """


def launcher_rank_and_world_size(
        launcher: str,
        environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """This process's rank and the number of processes, before any start.

    Args:
        launcher (str): ``tools/train.py --launcher``: ``'none'``,
            ``'pytorch'`` (torchrun), ``'slurm'`` or ``'mpi'``.
        environ (Mapping[str, str], optional): The environment; defaults to
            ``os.environ``.

    Returns:
        tuple[int, int]: ``(rank, world_size)``; ``(0, 1)`` for ``'none'``.

    Raises:
        GlobalBatchError: The launcher's variables are missing.
    """
    if launcher == 'none':
        return 0, 1
    if launcher not in _LAUNCHER_ENV:
        raise GlobalBatchError(f'unknown launcher {launcher!r}')
    environ = os.environ if environ is None else environ
    names = _LAUNCHER_ENV[launcher]
    missing = [name for name in names if name not in environ]
    if missing:
        raise GlobalBatchError(
            f'--launcher {launcher}: {" and ".join(missing)} not set in the '
            'environment; start the processes with the launcher '
            '(tools/dist_train.sh, tools/slurm_train.sh, mpirun), or set '
            'global_batch_size=None to give train_dataloader.batch_size per '
            'process')
    return int(environ[names[0]]), int(environ[names[1]])


def per_process_batch_sizes(global_batch_size: int,
                            world_size: int) -> list[int]:
    """Images per process, the first ``global % world`` ranks one more.

    Args:
        global_batch_size (int): Images per iteration over all processes.
        world_size (int): Number of processes.

    Returns:
        list[int]: One batch size per rank, summing to the global one.

    Raises:
        GlobalBatchError: Fewer images than processes, or a bad value.
    """
    if isinstance(global_batch_size, bool) or \
            not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise GlobalBatchError(
            'global_batch_size must be a positive int (images per iteration '
            f'over all processes), got {global_batch_size!r}')
    if world_size > global_batch_size:
        raise GlobalBatchError(
            f'global_batch_size={global_batch_size} images per iteration '
            f'cannot be shared by {world_size} processes (each needs at '
            f'least one): run on at most {global_batch_size} processes, or '
            'raise it with --cfg-options global_batch_size=N')
    share, extra = divmod(global_batch_size, world_size)
    return [share + (rank < extra) for rank in range(world_size)]


def apply_global_batch_size(cfg: Config, rank: int,
                            world_size: int) -> str | None:
    """Set ``train_dataloader.batch_size`` from ``cfg.global_batch_size``.

    Args:
        cfg (Config): The training config; left alone without
            ``global_batch_size`` (or with None).
        rank (int): This process's rank.
        world_size (int): Number of processes.

    Returns:
        str | None: A line saying the split, for rank 0 to print; None
        without ``global_batch_size``.

    Raises:
        GlobalBatchError: Fewer images than processes, or
            ``auto_scale_lr.enable=True`` with an uneven split (mmengine
            scales by ``world_size * batch_size``, which would then differ
            between the processes and give them different learning rates).
    """
    total = cfg.get('global_batch_size', None)
    if total is None:
        return None
    sizes = per_process_batch_sizes(total, world_size)
    auto_scale_lr = cfg.get('auto_scale_lr', None) or {}
    if auto_scale_lr.get('enable', False) and len(set(sizes)) > 1:
        raise GlobalBatchError(
            f'auto_scale_lr.enable=True with global_batch_size={total} over '
            f'{world_size} processes: the processes take {max(sizes)} or '
            f'{min(sizes)} images, and mmengine would scale each one\'s '
            'learning rate by its own world_size x batch_size. Choose a '
            f'global_batch_size that {world_size} divides, or drop '
            'auto_scale_lr.enable (the learning rates are set for the '
            'global batch)')
    previous = cfg.train_dataloader.get('batch_size', None)
    cfg.train_dataloader.batch_size = sizes[rank]
    if world_size == 1:
        split = f'{total} images on the one process'
    else:
        counts = ', '.join(
            f'{size} on rank{"s" if hi > lo else ""} '
            f'{lo}{f"-{hi}" if hi > lo else ""}'
            for size, lo, hi in _runs(sizes))
        split = f'{total} images over {world_size} processes: {counts}'
    note = f'global_batch_size: {split}'
    if previous != sizes[rank]:
        note += (f' (train_dataloader.batch_size={previous} is replaced; '
                 'global_batch_size=None keeps a per-process batch_size)')
    return note


def _runs(sizes: list[int]) -> list[tuple[int, int, int]]:
    """(size, first rank, last rank) of each run of equal batch sizes."""
    runs: list[tuple[int, int, int]] = []
    for rank, size in enumerate(sizes):
        if runs and runs[-1][0] == size:
            runs[-1] = (size, runs[-1][1], rank)
        else:
            runs.append((size, rank, rank))
    return runs
