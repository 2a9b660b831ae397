"""Compatibility of the 2024 OpenMMLab stack with current torch.

Applied once on ``import mmpading``.

torch >= 2.6 loads with ``weights_only=True`` by default. mmengine 0.10.7
checkpoints hold a few non-tensor objects (the message hub's
``HistoryBuffer`` with numpy arrays inside), so ``load_from`` and ``resume``
fail with "Weights only load failed". Instead of switching ``weights_only``
off:

- the exact types mmengine writes are allow-listed with
  ``torch.serialization.add_safe_globals``; every other load in the process
  keeps torch's safe default;
- ``HistoryBuffer`` stops pickling its four built-in statistics methods
  (``min``, ``max``, ``current``, ``mean``). They were written as
  ``getattr(HistoryBuffer, name)``, and allow-listing ``getattr`` would
  open the unpickler to arbitrary attribute access. Loading re-registers
  them anyway (``HistoryBuffer.__setstate__``); custom methods are still
  written.

A checkpoint that still holds an unknown object (e.g. one written without
mmpading) gets an error naming the file, the object and the opt-in for
trusted files.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

TRUST_ENV = 'MMPADING_TRUST_CHECKPOINTS'
SAFE_GLOBALS_SUPPORTED = hasattr(torch.serialization, 'add_safe_globals')


def _numpy_globals() -> list[Any]:
    """Numpy objects that pickled arrays and scalars refer to.

    Checkpoints written under numpy 1.x name ``numpy.core.multiarray``; numpy
    2 moved it to ``numpy._core``. Both spellings are allow-listed.
    """
    multiarray = np._core.multiarray if hasattr(np, '_core') else \
        np.core.multiarray  # pragma: no cover - numpy 1.x
    entries: list[Any] = [np.ndarray, np.dtype]
    for func in ('_reconstruct', 'scalar'):
        obj = getattr(multiarray, func)
        entries.append(obj)
        entries.append((obj, f'numpy.core.multiarray.{func}'))
    # numpy >= 1.25 pickles dtypes through per-type classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        entries.extend(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType'))
    return entries


def mmengine_safe_globals() -> list[Any]:
    """Everything a Runner checkpoint of mmengine 0.10.x may reference."""
    return [HistoryBuffer, *_numpy_globals()]


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local loader, with a readable weights-only failure."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename!r} does not exist. Check the path given '
            'to `load_from`, `--resume` or `--checkpoint`.')
    if os.environ.get(TRUST_ENV) == '1' or not SAFE_GLOBALS_SUPPORTED:
        # torch < 2.4 cannot allow-list types; it defaults to full unpickling.
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f'Checkpoint {filename!r} holds Python objects that torch refuses '
            'to load safely (weights_only=True). mmpading allow-lists what '
            'mmengine writes; this file holds something else:\n'
            f'  {str(error).splitlines()[0]}\n'
            f'If you trust the file, set {TRUST_ENV}=1 to load it with '
            'weights_only=False.') from None


_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getstate(self: HistoryBuffer) -> dict:
    """Like mmengine's, minus the built-in statistics methods."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    custom = {
        name: method
        for name, method in self._statistics_methods.items()
        if not (name in _BUILTIN_STATISTICS
                and method is getattr(HistoryBuffer, name))
    }
    if custom:
        state['statistics_methods'] = custom
    return state


def apply_torch_load_compat() -> None:
    """Make mmengine checkpoints load on torch >= 2.6 (idempotent)."""
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    if SAFE_GLOBALS_SUPPORTED:
        torch.serialization.add_safe_globals(mmengine_safe_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
