"""Rows of all DDP ranks in one set, for losses over a whole batch.

PADing's stage-2 losses that depend on a set of features (MMD, relation
alignment, the per-set means of the disentanglement losses, the weighted
mean of the classifier's CE) are defined over the features of the whole
batch. Under DDP each rank holds the features of its own images, so these
losses gather the rows of all ranks first.

Gradients: every rank computes the same loss from the same gathered rows;
DDP then averages the gradients of the parameters over the N ranks. The
backward of :class:`RowGather` therefore returns N times the gradient of
this rank's own rows (which is what the sum over the ranks of the gradients
of an all-gather gives when all ranks compute the same loss), so that after
DDP's averaging every parameter gets the gradient of the single-process
loss over the whole batch. Parameters that reach the loss without passing
through a gather (e.g. class embeddings projected on every rank) get the
full gradient on every rank, and DDP's average of N equal gradients leaves
it unchanged. The backward needs no communication.
"""
from __future__ import annotations

import torch
from mmengine.dist import all_gather, get_rank, get_world_size, is_distributed
from torch import Tensor


def _gather_padded(tensor: Tensor, row_counts: list[int]) -> Tensor:
    """All ranks' rows in rank order, (sum(row_counts), ...), no autograd.

    ``torch.distributed.all_gather`` needs equal shapes: each rank pads its
    rows to the largest count and the padding is cut off again.
    """
    max_rows = max(row_counts)
    if max_rows == 0:
        return tensor.detach().new_zeros((0, *tensor.shape[1:]))
    padded = tensor.detach().new_zeros((max_rows, *tensor.shape[1:]))
    padded[:tensor.shape[0]] = tensor.detach()
    parts = all_gather(padded.contiguous())
    return torch.cat(
        [part[:count] for part, count in zip(parts, row_counts)])


class _GatherRowsFunction(torch.autograd.Function):
    """Gather with the backward described in the module docstring."""

    @staticmethod
    def forward(ctx, tensor: Tensor, row_counts: list[int]) -> Tensor:
        rank = get_rank()
        ctx.start = sum(row_counts[:rank])
        ctx.stop = ctx.start + row_counts[rank]
        ctx.world_size = len(row_counts)
        return _gather_padded(tensor, row_counts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad[ctx.start:ctx.stop] * ctx.world_size, None


class RowGather:
    """Concatenates one set of rows over the ranks, in rank order.

    On one process (or with ``enabled=False``) it returns its input
    unchanged and communicates nothing.

    Args:
        num_rows (int): Rows of this rank's set.
        device (torch.device): Device of the rows (for the count exchange).
        enabled (bool): Gather at all; needs an initialised process group
            with more than one rank to take effect.
        row_counts (list[int], optional): The rows of every rank, when
            every rank knows them already (no count exchange then).

    Example:
        >>> seen = RowGather(len(seen_labels), device, enabled=True)
        >>> all_features = seen(features)  # (seen.total, C), grad to own
    """

    def __init__(self,
                 num_rows: int,
                 device: torch.device,
                 enabled: bool = True,
                 row_counts: list[int] | None = None) -> None:
        self.enabled = bool(enabled) and is_distributed()
        if not self.enabled:
            self.row_counts = [int(num_rows)]
        elif row_counts is not None:
            if len(row_counts) != get_world_size() or \
                    row_counts[get_rank()] != num_rows:
                raise ValueError(
                    f'RowGather: row_counts {row_counts} do not fit rank '
                    f'{get_rank()} of {get_world_size()} with {num_rows} '
                    'rows')
            self.row_counts = [int(count) for count in row_counts]
        else:
            counts = all_gather(
                torch.tensor([num_rows], dtype=torch.long, device=device))
            self.row_counts = [int(count) for count in torch.cat(counts)]

    @classmethod
    def from_rank0(cls, num_rows: int, device: torch.device,
                   enabled: bool = True) -> RowGather:
        """A set held by rank 0 alone (``num_rows`` there, none elsewhere).
        """
        if not (enabled and is_distributed()):
            return cls(num_rows, device, enabled=False)
        counts = [0] * get_world_size()
        counts[0] = int(num_rows)
        return cls(counts[get_rank()], device, row_counts=counts)

    @property
    def total(self) -> int:
        """Rows of the gathered set."""
        return sum(self.row_counts)

    def __call__(self, tensor: Tensor) -> Tensor:
        """Gather the rows of ``tensor``, (n, ...) -> (total, ...).

        Floating-point tensors that require a gradient keep it for this
        rank's rows (times the world size, see the module docstring);
        others are gathered as constants.
        """
        if not self.enabled:
            return tensor
        if tensor.requires_grad:
            return _GatherRowsFunction.apply(tensor, self.row_counts)
        return _gather_padded(tensor, self.row_counts)


def rows_on_this_rank(enabled: bool) -> bool:
    """Whether this rank holds a set that rank 0 alone holds when gathering.
    """
    return not (enabled and is_distributed()) or get_rank() == 0
