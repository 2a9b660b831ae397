"""Convert the word2vec files of the ZSI literature to class embedding files.

The files ``word_w2v_withbg_48_17.txt`` and ``word_w2v_withbg_65_15.txt``
(released with ZSI, Zheng et al. CVPR 2021, and PADing) are plain text,
comma-separated: D = 300 rows (the word2vec dimensions) x (1 + K) columns,
i.e. the matrix is stored transposed. Column 0 is a background vector,
columns 1..K are the classes in the split's ``seen + unseen`` order. The
files do not name their columns; the names come from the split
(``mmpading.datasets.splits``) or from a list given by the user, and go
through :func:`~mmpading.datasets.splits.canonical_coco_name` (the alias
table ``COCO_NAME_ALIASES``), so they are mmdet's ``CocoDataset`` names.

The vectors are written as they are in the file (not L2-normalised), as
PADing uses them; the background column is dropped.
"""
from __future__ import annotations

import hashlib
import os.path as osp
from collections.abc import Sequence

import numpy as np

from ...utils.package_resources import resolve_package_resource
from ..class_embeddings import save_class_embeddings
from ..splits import canonical_coco_name


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_word2vec_matrix(path: str) -> np.ndarray:
    """The raw (D, 1 + K) matrix of a ZSI word2vec text file (float32).

    Args:
        path (str): The file, or a shipped one:
            ``mmpading::word2vec/word_w2v_withbg_48_17.txt`` (``..._65_15``).

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: When it is not a rectangular table of comma-separated
            numbers, or holds NaN or infinite values.
    """
    path = resolve_package_resource(path, what='word2vec file')
    if not osp.isfile(path):
        raise FileNotFoundError(f'word2vec file {path!r} does not exist.')
    try:
        matrix = np.loadtxt(path, delimiter=',', dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValueError(
            f'{path!r} is not a table of comma-separated numbers (the ZSI '
            f'word2vec format: D rows x (1 + K) columns): {error}') from None
    if matrix.size == 0:
        raise ValueError(f'word2vec file {path!r} is empty.')
    if not np.isfinite(matrix).all():
        raise ValueError(f'{path!r} holds NaN or infinite values.')
    return matrix.astype(np.float32)


def word2vec_class_embeddings(
        path: str,
        column_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Read a ZSI word2vec file and name its class columns.

    Args:
        path (str): ``word_w2v_withbg_*.txt``.
        column_names (Sequence[str]): Names of the columns 1..K in order
            (column 0 is the background). Mapped through
            :func:`~mmpading.datasets.splits.canonical_coco_name`.

    Returns:
        tuple[np.ndarray, list[str]]: float32 array (K, D), one row per
        class, not normalised; and the (canonical) class names.

    Raises:
        ValueError: When the file does not have 1 + K columns (found and
            expected counts named), or two names map to the same class.
    """
    names = [canonical_coco_name(name) for name in column_names]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f'The column names map to {duplicates} more than once (after the '
            'COCO alias table); give each column its own class.')
    matrix = read_word2vec_matrix(path)
    dim, columns = matrix.shape
    expected = 1 + len(names)
    if columns != expected:
        hint = ''
        if dim == expected:
            hint = (' The file has 1 + K rows instead: it looks class-major '
                    '(one row per class); the ZSI format stores one row per '
                    'dimension.')
        raise ValueError(
            f'{path!r} has {columns} columns, expected 1 + {len(names)} = '
            f'{expected} (column 0 = background, then one column per class '
            f'of the given class list). Found a {dim} x {columns} table.'
            f'{hint} Use the class list (split) this file belongs to.')
    embeddings = np.ascontiguousarray(matrix[:, 1:].T)
    return embeddings, names


def convert_word2vec_file(path: str, column_names: Sequence[str], out: str,
                          columns_from: str = 'the given class list') -> str:
    """Write the class embedding file of a ZSI word2vec file.

    Args:
        path (str): ``word_w2v_withbg_*.txt`` (or ``mmpading::word2vec/...``).
        column_names (Sequence[str]): Names of the columns 1..K in order.
        out (str): Output ``.json`` (its folder must exist).
        columns_from (str): Where the column names come from, for the
            file's ``source``, e.g. ``'zsi_48_17: split seen + unseen'``.

    Returns:
        str: The ``source`` written to the file.
    """
    path = resolve_package_resource(path, what='word2vec file')
    embeddings, names = word2vec_class_embeddings(path, column_names)
    source = (f'word2vec: {osp.basename(path)} (sha256 '
              f'{file_sha256(path)[:16]}), {embeddings.shape[1]}-d; columns '
              f'1..{len(names)} named by {columns_from}; background column '
              '0 dropped; not normalised')
    save_class_embeddings(out, names, embeddings, source)
    return source
