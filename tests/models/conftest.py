"""Fixtures of the model tests."""
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode


class _HostReads(TorchDispatchMode):
    """Counts ``aten._local_scalar_dense``: ``.item()``, ``bool()``,
    ``int()``, ``float()`` of a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def host_reads(monkeypatch) -> Callable:
    """``with host_reads() as reads: ...``; then ``reads.count`` is the
    number of tensor values the block read on the host. On a GPU each one
    waits for the device (a GPU -> CPU sync). Boolean-mask indexing, whose
    output size depends on the data, is not counted."""
    active: list[_HostReads] = []
    tolist = torch.Tensor.tolist

    def counted_tolist(self):
        if active:  # one device wait per call
            active[-1].count += 1
        return tolist(self)

    # .tolist() reads without dispatching _local_scalar_dense.
    monkeypatch.setattr(torch.Tensor, 'tolist', counted_tolist)

    @contextmanager
    def count() -> Iterator[_HostReads]:
        with _HostReads() as reads:
            active.append(reads)
            try:
                yield reads
            finally:
                active.pop()

    return count
