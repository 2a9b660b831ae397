"""Class masks shared by the zero-shot losses."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


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
        ValueError: A mask of another shape, or an id outside [0, K).
    """
    mask = torch.zeros(num_classes, dtype=torch.bool, device=device)
    if unseen_classes is None:
        return mask
    unseen = torch.as_tensor(unseen_classes, device=device)
    if unseen.dtype == torch.bool:
        if unseen.shape != (num_classes, ):
            raise ValueError(
                f'{owner}: a boolean unseen_classes mask must have shape '
                f'({num_classes},), one entry per class, got '
                f'{tuple(unseen.shape)}')
        return unseen
    unseen = unseen.long().flatten()
    if unseen.numel() and (unseen.min() < 0 or unseen.max() >= num_classes):
        raise ValueError(f'{owner}: unseen class ids must be in '
                         f'[0, {num_classes}), got {unseen.tolist()}')
    mask[unseen] = True
    return mask
