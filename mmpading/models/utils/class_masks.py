"""Class masks and class-index checks shared by the zero-shot losses.

The losses run in every stage-2 iteration. A range check of class indices
reads their values on the host: for a tensor on an accelerator that waits
for the device (a GPU -> CPU sync) on every call, only to catch a
programming error. :func:`check_class_indices` therefore checks where it is
free, on the CPU (the unit tests, CPU runs), and names the bad values; on
an accelerator an index >= K still fails in the indexing or cross entropy
that follows (a device-side assert).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_class_indices(indices: Tensor,
                        num_classes: int,
                        what: str,
                        hint: str = '') -> None:
    """Raise if CPU class indices lie outside ``[0, num_classes)``.

    Indices on another device are not read (see the module docstring).

    Args:
        indices (Tensor): Integer class indices, any shape.
        num_classes (int): K.
        what (str): Who and what, the start of the message, e.g.
            ``'RelationAlignLoss: labels'``.
        hint (str): Why the range, appended to the message.

    Raises:
        ValueError: Naming the range and the values found.
    """
    if indices.device.type != 'cpu' or not indices.numel():
        return
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f'{what} must be in [0, {num_classes}){hint}, '
                         f'got values in [{low}, {high}]')


def unseen_class_mask(unseen_classes: Tensor | Sequence[int] | None,
                      num_classes: int, device: torch.device,
                      owner: str) -> Tensor:
    """A (K,) bool mask of the unseen classes, from ids or a mask.

    Args:
        unseen_classes (Tensor | Sequence[int], optional): Unseen class ids,
            or a (K,) bool mask; None: no class is unseen.
        num_classes (int): K.
        device (torch.device): Device of the mask.
        owner (str): Who asks, for the error messages.

    Returns:
        Tensor: (K,) bool.

    Raises:
        ValueError: A mask of another shape, or an id outside [0, K) (ids
            on the CPU: :func:`check_class_indices`).
    """
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    if unseen_classes is None:
        return mask
    # A list becomes a CPU tensor: checked before it moves to the device.
    unseen = torch.as_tensor(unseen_classes)
    if unseen.dtype == torch.bool:
        if unseen.shape != (num_classes, ):
            raise ValueError(
                f'{owner}: a boolean unseen_classes mask must have shape '
                f'({num_classes},), one entry per class, got '
                f'{tuple(unseen.shape)}')
        return unseen.to(device)
    unseen = unseen.long().flatten()
    check_class_indices(unseen, num_classes, f'{owner}: unseen class ids')
    mask[unseen.to(device)] = True
    return mask
