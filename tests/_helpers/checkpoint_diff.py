"""Exact comparison of checkpoint contents (tests of resumed training)."""
from __future__ import annotations

from typing import Any

import torch


def state_differences(first: Any, second: Any, path: str = '') -> list[str]:
    """Where two nested checkpoint entries are not exactly equal.

    Tensors must be bit-identical (``torch.equal``, same dtype and shape);
    dicts need the same keys, lists and tuples the same length; anything
    else compares with ``==``.

    Args:
        first: A checkpoint entry, e.g. ``checkpoint['state_dict']``.
        second: The entry to compare it with.
        path (str): Where ``first`` sits, prefixed to the returned paths.

    Returns:
        list[str]: The dotted paths that differ (empty: identical).
    """
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        same = (isinstance(first, torch.Tensor)
                and isinstance(second, torch.Tensor)
                and first.dtype == second.dtype
                and first.shape == second.shape
                and torch.equal(first.cpu(), second.cpu()))
        return [] if same else [path or '<root>']
    if isinstance(first, dict) and isinstance(second, dict):
        differences = [
            f'{path}.{key}'.lstrip('.') + ' (missing on one side)'
            for key in sorted(set(first) ^ set(second), key=str)
        ]
        for key in first:
            if key in second:
                differences += state_differences(first[key], second[key],
                                                 f'{path}.{key}'.lstrip('.'))
        return differences
    if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)):
        if len(first) != len(second):
            return [f'{path} (length {len(first)} vs {len(second)})']
        differences = []
        for index, (item, other) in enumerate(zip(first, second)):
            differences += state_differences(item, other, f'{path}[{index}]')
        return differences
    return [] if first == second else [path or '<root>']
