"""Class embedding files: one semantic vector per class, checked by name.

Format (JSON)::

    {
      "format": "mmpading.class_embeddings/v1",
      "source": "free text: where the vectors come from",
      "dim": D,
      "class_names": ["name 0", ..., "name K-1"],
      "checksum": "sha256 of the (K, D) float32 little-endian C-order bytes",
      "embeddings": [[...D floats...], ...K rows...]
    }

The checksum guards against edited or truncated files; loading re-computes
it and refuses NaN or infinite values. Rows are matched to a data set by
class name, never by position.

A path may also name a file shipped inside the package,
``mmpading::class_embeddings/<file>.json`` (for example the ZSI word2vec
embeddings ``mmpading::class_embeddings/word2vec_zsi_48_17.json``); see
:func:`resolve_class_embeddings_path`.
"""
from __future__ import annotations

import hashlib
import json
import os.path as osp
from collections.abc import Sequence

import numpy as np

from ..utils.package_resources import resolve_package_resource
from .splits import closest_names

EMBEDDING_FILE_FORMAT = 'mmpading.class_embeddings/v1'


def embeddings_checksum(embeddings: np.ndarray) -> str:
    """sha256 (hex) of the float32 little-endian C-order bytes.

    Args:
        embeddings (np.ndarray): Array of shape (K, D).
    """
    array = np.ascontiguousarray(embeddings, dtype='<f4')
    return hashlib.sha256(array.tobytes()).hexdigest()


def save_class_embeddings(path: str, class_names: Sequence[str],
                          embeddings: np.ndarray, source: str) -> None:
    """Write a class embedding file.

    Args:
        path (str): Output ``.json`` file.
        class_names (Sequence[str]): K distinct class names, one per row.
        embeddings (np.ndarray): Array of shape (K, D); stored as float32.
        source (str): Where the vectors come from (model, file, attribute
            layout), recorded in the file.
    """
    array = np.asarray(embeddings, dtype=np.float32)
    names = [str(name) for name in class_names]
    if array.ndim != 2:
        raise ValueError('Class embeddings must be a (K, D) array, got shape '
                         f'{array.shape}.')
    if array.shape[0] != len(names):
        raise ValueError(f'{len(names)} class names for {array.shape[0]} '
                         'embedding rows; give one name per row.')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'Class names {duplicates} occur more than once.')
    if not np.isfinite(array).all():
        raise ValueError('Class embeddings contain NaN or infinite values.')
    content = {
        'format': EMBEDDING_FILE_FORMAT,
        'source': source,
        'dim': int(array.shape[1]),
        'class_names': names,
        'checksum': embeddings_checksum(array),
        # float32 -> Python float is exact, so the JSON round trip is too.
        'embeddings': [[float(value) for value in row] for row in array],
    }
    directory = osp.dirname(osp.abspath(path))
    if not osp.isdir(directory):
        raise FileNotFoundError(f'Output folder {directory!r} does not exist.')
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(content, file)
        file.write('\n')


def resolve_class_embeddings_path(path: str) -> str:
    """The file a config's ``class_embeddings`` value points at.

    Every reader of a class embedding file goes through this one resolver.

    Args:
        path (str): A file path (returned unchanged) or a resource shipped
            with the package, ``mmpading::class_embeddings/<file>.json``.

    Returns:
        str: The path to open.

    Raises:
        FileNotFoundError: For an ``mmpading::`` name the package does not
            ship, listing the shipped class embedding files.
    """
    return resolve_package_resource(path, what='class embedding file')


def _read(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Class embedding file {path!r} does not exist. Generate it with '
            'the converter of its source (the toy data set writes '
            'class_embeddings.json).')
    with open(path, encoding='utf-8') as file:
        try:
            content = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f'Class embedding file {path!r} is not valid '
                             f'JSON: {error}') from None
    if not isinstance(content, dict) or \
            content.get('format') != EMBEDDING_FILE_FORMAT:
        raise ValueError(
            f'{path!r} is not a class embedding file: expected a JSON object '
            f'with "format": "{EMBEDDING_FILE_FORMAT}".')
    missing = [
        key for key in ('dim', 'class_names', 'checksum', 'embeddings')
        if key not in content
    ]
    if missing:
        raise ValueError(f'Class embedding file {path!r} lacks {missing}.')
    return content


def _mismatch_message(path: str, missing: list[str], extra: list[str],
                      file_names: list[str], wanted: Sequence[str]) -> str:
    lines = [f'Class names of {path!r} do not match the data set.']
    if missing:
        lines.append(f'{len(missing)} class(es) of the data set have no '
                     'embedding in the file:')
        for name in missing:
            matches = closest_names(name, file_names)
            hint = f' (closest in file: {matches})' if matches else ''
            lines.append(f'  {name!r}{hint}')
    if extra:
        lines.append(f'{len(extra)} class(es) of the file are not classes '
                     'of the data set:')
        for name in extra:
            matches = closest_names(name, wanted)
            hint = f' (closest in data set: {matches})' if matches else ''
            lines.append(f'  {name!r}{hint}')
    lines.append('Regenerate the file for these classes, or fix the '
                 'spelling on one side.')
    return '\n'.join(lines)


def _check_finite(path: str, embeddings: np.ndarray,
                  file_names: list[str]) -> None:
    """Refuse NaN / infinite values (JSON's ``NaN`` and ``Infinity`` parse,
    and a file written with them has a matching checksum): training on
    them runs on NaN losses."""
    bad_rows = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if bad_rows.size == 0:
        return
    names = [file_names[row] for row in bad_rows]
    shown = ', '.join(repr(name) for name in names[:10])
    more = f', ... ({len(names)} classes)' if len(names) > 10 else ''
    raise ValueError(
        f'Class embedding file {path!r} holds NaN or infinite values (or '
        'values beyond the float32 range) in the embeddings of '
        f'{len(names)} class(es): {shown}{more}. Training on them gives NaN '
        'losses. Regenerate the file with the converter of its source '
        '(tools/misc/build_class_embeddings.py; the toy data set: '
        'tools/dataset_converters/make_toy_dataset.py).')


def load_class_embeddings(
        path: str,
        class_names: Sequence[str] | None = None,
        dim: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Read a class embedding file, verify it, and order it by class name.

    Args:
        path (str): A file written by :func:`save_class_embeddings`, or a
            file shipped with the package,
            ``mmpading::class_embeddings/<file>.json``.
        class_names (Sequence[str], optional): The data set's classes. When
            given, the rows come back in this order, and the file must hold
            exactly these names.
        dim (int, optional): Expected embedding dimension D.

    Returns:
        tuple[np.ndarray, list[str]]: float32 array of shape (K, D) and the
        class name of each row.

    Raises:
        FileNotFoundError: When the file does not exist, or the package
            does not ship the ``mmpading::`` resource named.
        ValueError: On a checksum mismatch, NaN or infinite values (the
            classes of those rows named), a wrong dimension, or names that
            are missing from or extra in the file (each one listed, with the
            closest names on the other side).
    """
    path = resolve_class_embeddings_path(path)
    content = _read(path)
    file_names = [str(name) for name in content['class_names']]
    duplicates = sorted(
        {name for name in file_names if file_names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f'{path!r} lists the classes {duplicates} more than once.')
    try:
        # Values beyond the float32 range become inf (refused below).
        with np.errstate(over='ignore'):
            embeddings = np.asarray(content['embeddings'], dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f'Embeddings of {path!r} are not a rectangular '
                         'array of numbers.') from None
    if embeddings.ndim != 2 or embeddings.shape[0] != len(file_names):
        raise ValueError(
            f'{path!r} holds {len(file_names)} class names but embeddings '
            f'of shape {embeddings.shape}; expected ({len(file_names)}, D).')
    if embeddings.shape[1] != content['dim']:
        raise ValueError(f'{path!r} declares dim {content["dim"]} but its '
                         f'rows have {embeddings.shape[1]} values.')
    _check_finite(path, embeddings, file_names)
    found = embeddings_checksum(embeddings)
    if found != content['checksum']:
        raise ValueError(
            f'Checksum mismatch in {path!r}: the embeddings were changed '
            'after the file was written (recorded '
            f'{content["checksum"][:12]}..., found {found[:12]}...). '
            'Regenerate the file instead of editing it.')
    if dim is not None and embeddings.shape[1] != dim:
        raise ValueError(
            f'{path!r} holds {embeddings.shape[1]}-d embeddings but '
            f'{dim}-d are expected (source: {content.get("source")!r}). Use '
            'an embedding file of the expected dimension or change the '
            "model's embedding dimension.")
    if class_names is None:
        return embeddings, file_names

    wanted = [str(name) for name in class_names]
    duplicates = sorted({name for name in wanted if wanted.count(name) > 1})
    if duplicates:
        raise ValueError(
            f'The data set lists the classes {duplicates} more than once.')
    missing = [name for name in wanted if name not in file_names]
    extra = [name for name in file_names if name not in set(wanted)]
    if missing or extra:
        raise ValueError(
            _mismatch_message(path, missing, extra, file_names, wanted))
    row_of = {name: row for row, name in enumerate(file_names)}
    order = [row_of[name] for name in wanted]
    return embeddings[order], wanted
