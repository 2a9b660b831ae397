"""Distributed training on the CPU with mmengine 0.10.x.

Process-wide patches of mmengine, so they are not applied on
``import mmpading``: a tool that may run distributed calls
:func:`setup_cpu_distributed` before it builds the Runner
(``tools/train.py``, ``tools/test.py``), as mmdet's tools call
``setup_cache_size_limit_of_dynamo``; so does a script or test that starts
a process group on the CPU itself.

mmengine assumes a GPU for its ``pytorch`` and ``slurm`` launchers:

- ``mmengine.dist.utils._init_dist_pytorch`` (and ``_init_dist_slurm``)
  call ``torch.cuda.set_device(local_rank)`` before
  ``init_process_group``; without a GPU that raises "Found no NVIDIA driver
  on your system";
- ``Runner.wrap_model`` always passes ``device_ids=[LOCAL_RANK]`` to
  ``MMDistributedDataParallel`` (directly, or through
  ``MMSeparateDistributedDataParallel``), which torch refuses for a module
  on the CPU ("device_ids and output_device arguments only work with
  single-device/multiple-device GPU modules").

Without an accelerator, the patched launchers skip the device selection and
use ``gloo`` instead of ``nccl`` (which cannot run on the CPU), and
``MMDistributedDataParallel`` drops ``device_ids`` for a CPU module. With a
GPU (or an MLU / NPU / MUSA device) mmengine's code runs unchanged.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from mmengine.device import get_device
from mmengine.dist import utils as dist_utils
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel

_PATCHED = '_mmpading_cpu_dist'


@contextmanager
def _without_cuda_set_device() -> Iterator[None]:
    """Make ``torch.cuda.set_device`` a no-op inside the block."""
    original = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = original


def _cpu_launcher(init_fn: Callable) -> Callable:
    """Wrap one of mmengine's ``_init_dist_*`` functions for the CPU."""

    @functools.wraps(init_fn)
    def wrapper(backend: str, *args: Any, **kwargs: Any) -> None:
        if get_device() != 'cpu':
            return init_fn(backend, *args, **kwargs)
        if backend == 'nccl':
            print_log(
                "No GPU: the 'nccl' backend of env_cfg.dist_cfg is replaced "
                "by 'gloo'.",
                logger='current',
                level=logging.WARNING)
            backend = 'gloo'
        with _without_cuda_set_device():
            return init_fn(backend, *args, **kwargs)

    setattr(wrapper, _PATCHED, True)
    return wrapper


def _ddp_init(original: Callable) -> Callable:
    """Drop ``device_ids`` / ``output_device`` for a module on the CPU."""

    @functools.wraps(original)
    def __init__(self, module: torch.nn.Module, *args: Any,
                 **kwargs: Any) -> None:
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    setattr(__init__, _PATCHED, True)
    return __init__


def setup_cpu_distributed() -> None:
    """Let mmengine's launchers and DDP wrappers run on the CPU.

    Replaces ``mmengine.dist.utils._init_dist_pytorch`` /
    ``_init_dist_slurm`` and ``MMDistributedDataParallel.__init__`` for the
    whole process (see the module docstring); with a GPU they call
    mmengine's code unchanged. Idempotent.
    """
    for name in ('_init_dist_pytorch', '_init_dist_slurm'):
        init_fn = getattr(dist_utils, name)
        if not getattr(init_fn, _PATCHED, False):
            setattr(dist_utils, name, _cpu_launcher(init_fn))
    init = MMDistributedDataParallel.__init__
    if not getattr(init, _PATCHED, False):
        MMDistributedDataParallel.__init__ = _ddp_init(init)


@contextmanager
def process_group_cleanup() -> Iterator[None]:
    """Destroy the default process group when the block ends.

    mmengine's Runner initialises it and leaves it to interpreter exit,
    where gloo's worker threads can outlive the interpreter and abort the
    process (SIGABRT, "terminate called without an active exception")
    after a successful run. Tools wrap their work in this.

    After a successful block every rank waits for the others first: a rank
    that tears its connections down while a peer still talks to it can
    abort that peer the same way. After a failure it does not wait (the
    peers may be gone).
    """
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if torch.distributed.is_available() and \
                torch.distributed.is_initialized():
            if succeeded:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
