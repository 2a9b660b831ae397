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
trusted files; a truncated or damaged file, or one that is no checkpoint,
gets an error naming the file and what to do, instead of torch's
``PytorchStreamReader failed ...``.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import zipfile
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


class CheckpointLoadError(RuntimeError):
    """A checkpoint file that cannot be loaded: named, with the fix."""


# RuntimeError texts of torch's zip reader and format checks; other
# RuntimeErrors (e.g. a CUDA tensor on a machine without CUDA) are not about
# the file being damaged and pass through.
_FORMAT_ERROR_TEXTS = ('PytorchStreamReader', 'inline_container',
                       'zip archive', 'mmap can only be used',
                       'invalid header', 'enforce fail')
# torch's weights-only refusal of a pickled object; its other unpickling
# errors ("Unsupported operand", "invalid load key") mean a damaged file.
_UNSAFE_GLOBAL_TEXT = 'Unsupported global'


def _other_checkpoints(filename: str) -> list[str]:
    """Other ``*.pth`` files in the folder of ``filename``, newest first."""
    folder = osp.dirname(osp.abspath(filename))
    try:
        names = [
            name for name in os.listdir(folder) if name.endswith('.pth')
            and name != osp.basename(filename)
        ]
    except OSError:
        return []
    return sorted(names,
                  key=lambda name: osp.getmtime(osp.join(folder, name)),
                  reverse=True)


def unreadable_checkpoint_error(filename: str,
                                error: BaseException) -> CheckpointLoadError:
    """The error for a checkpoint torch cannot read (truncated, damaged or
    not a checkpoint at all), naming the file and what to do."""
    # torch's first sentence says what failed; the rest is advice.
    cause = (str(error).strip().splitlines() or [''])[0].split('. ')[0]
    cause = cause[:200]
    cause = f'{type(error).__name__}: {cause}' if cause else \
        type(error).__name__
    others = _other_checkpoints(filename)
    if others:
        shown = ', '.join(others[:3]) + (', ...' if len(others) > 3 else '')
        earlier = (f'use an earlier checkpoint of the same run (beside it: '
                   f'{shown}; with --resume, pass its path)')
    else:
        earlier = 'use an earlier checkpoint of the same run'
    return CheckpointLoadError(
        f'Checkpoint {filename!r} cannot be read: the file is truncated '
        '(an interrupted copy or save) or is not a PyTorch checkpoint '
        f'(torch: {cause}). Copy it again, or {earlier}.')


def _is_unreadable(error: BaseException) -> bool:
    """Whether ``error`` of ``torch.load`` means a damaged file."""
    if isinstance(error, pickle.UnpicklingError):
        return _UNSAFE_GLOBAL_TEXT not in str(error)
    if isinstance(error, PermissionError):
        return False
    if isinstance(error, RuntimeError):
        return any(text in str(error) for text in _FORMAT_ERROR_TEXTS)
    return isinstance(
        error, (EOFError, OSError, KeyError, IndexError, ValueError,
                UnicodeDecodeError, zipfile.BadZipFile))


def load_from_local(filename: str,
                    map_location: Any = None,
                    mmap: bool = False) -> Any:
    """mmengine's local loader, with readable failures.

    Args:
        filename (str): Checkpoint file.
        map_location: As for ``torch.load``.
        mmap (bool): Map the tensors' storage instead of reading it (cheap
            when only the keys are wanted); used only for zip-format files,
            the only ones torch can map.

    Raises:
        FileNotFoundError: No such file.
        CheckpointLoadError: The file is truncated or not a checkpoint, or
            holds objects that ``weights_only=True`` refuses.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'Checkpoint {filename!r} does not exist. Check the path given '
            'to `load_from`, `--resume` or `--checkpoint`.')
    trusted = os.environ.get(TRUST_ENV) == '1' or not SAFE_GLOBALS_SUPPORTED
    # torch < 2.4 cannot allow-list types; it defaults to full unpickling.
    kwargs = dict(map_location=map_location, weights_only=not trusted)
    if mmap and zipfile.is_zipfile(filename):
        kwargs['mmap'] = True
    try:
        return torch.load(filename, **kwargs)
    except Exception as error:
        if _is_unreadable(error):
            raise unreadable_checkpoint_error(filename, error) from None
        if not trusted and isinstance(error, pickle.UnpicklingError):
            raise CheckpointLoadError(
                f'Checkpoint {filename!r} holds Python objects that torch '
                'refuses to load safely (weights_only=True). mmpading '
                'allow-lists what mmengine writes; this file holds '
                'something else:\n'
                f'  {_unsafe_global_line(error)}\n'
                f'If you trust the file, set {TRUST_ENV}=1 to load it with '
                'weights_only=False.') from None
        raise


def _unsafe_global_line(error: pickle.UnpicklingError) -> str:
    """The line of torch's message that names the refused object."""
    lines = [line.strip() for line in str(error).splitlines()]
    return next((line for line in lines if _UNSAFE_GLOBAL_TEXT in line),
                lines[0] if lines else '')


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
