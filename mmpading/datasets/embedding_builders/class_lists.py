"""Class lists that class embeddings are built for, by name or from a file.

A class list is given as

- a data set name: ``'coco'`` (mmdet ``CocoDataset``, 80 classes),
  ``'coco_panoptic'`` (mmdet ``CocoPanopticDataset``, 133),
  ``'coco_stuff'`` (mmseg ``COCOStuffDataset``, 171);
- a split name: ``'zsp_coco'`` (= ``'coco_panoptic'``), ``'zss_cocostuff'``
  (= ``'coco_stuff'``), ``'zsi_48_17'`` / ``'zsi_65_15'`` (the split's
  ``seen + unseen``: 65 / 80 classes in the column order of the ZSI word2vec
  files), or any other registered split (``seen + unseen``);
- a split JSON file (``seen + unseen``);
- a text file: one class name per line; blank lines and lines starting with
  ``#`` are skipped.

The order of the list is the row order of the embedding file. Loading
matches rows by name (:func:`~mmpading.datasets.load_class_embeddings`), so
it does not need to match the data set's label order.
"""
from __future__ import annotations

import os.path as osp
from collections.abc import Callable

from ..splits import (
    _coco_instance_classes,
    _coco_panoptic_classes,
    _coco_stuff_classes,
    closest_names,
    get_split,
    list_splits,
    load_split,
)

# Data set names -> (description, class list builder).
DATASET_CLASS_LISTS: dict[str, tuple[str, Callable[[], tuple[str, ...]]]] = {
    'coco': ("mmdet CocoDataset classes", _coco_instance_classes),
    'coco_panoptic': ("mmdet CocoPanopticDataset classes",
                      _coco_panoptic_classes),
    'coco_stuff': ("mmseg COCOStuffDataset classes", _coco_stuff_classes),
}

# Splits whose class list is their data set's (metainfo order) rather than
# ``seen + unseen``.
SPLIT_DATASETS = {'zsp_coco': 'coco_panoptic', 'zss_cocostuff': 'coco_stuff'}


def class_list_names() -> list[str]:
    """Every name :func:`resolve_class_names` accepts (besides files)."""
    return list(DATASET_CLASS_LISTS) + [
        name for name in list_splits() if name not in DATASET_CLASS_LISTS
    ]


def read_class_names_file(path: str) -> list[str]:
    """Class names from a text file, one per line.

    Blank lines and lines starting with ``#`` are skipped; surrounding
    white space is removed.

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: When it lists no class or a class twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Class list file {path!r} does not exist.')
    with open(path, encoding='utf-8') as file:
        names = [line.strip() for line in file]
    names = [name for name in names if name and not name.startswith('#')]
    if not names:
        raise ValueError(f'Class list file {path!r} lists no class (one '
                         'class name per line).')
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f'Class list file {path!r} lists {duplicates} more than once.')
    return names


def _looks_like_path(spec: str) -> bool:
    return (osp.exists(spec) or osp.sep in spec
            or (osp.altsep is not None and osp.altsep in spec)
            or osp.splitext(spec)[1] != '')


def _unknown_name(spec: str) -> KeyError:
    known = class_list_names()
    matches = closest_names(spec, known)
    hint = f' Did you mean {matches[0]!r}?' if matches else ''
    return KeyError(f'Unknown class list {spec!r}.{hint} Use a data set or '
                    f'split name ({", ".join(known)}), a split JSON file or '
                    'a text file with one class name per line.')


def resolve_class_names(spec: str) -> tuple[list[str], str]:
    """The class list named by ``spec`` (see the module docstring).

    Args:
        spec (str): Data set name, split name, split JSON file or text file.

    Returns:
        tuple[list[str], str]: The class names and a short description of
        where they come from (recorded in the embedding file's ``source``).

    Raises:
        KeyError: For an unknown name, with the closest known names.
        FileNotFoundError: For a path that does not exist.
    """
    if not _looks_like_path(spec):
        name = SPLIT_DATASETS.get(spec, spec)
        if name in DATASET_CLASS_LISTS:
            what, build = DATASET_CLASS_LISTS[name]
            names = list(build())
            return names, f'{spec}: {what} ({len(names)})'
        if spec in list_splits():
            split = get_split(spec)
            return list(split.classes), (
                f'{spec}: split seen + unseen ({len(split.seen)} + '
                f'{len(split.unseen)})')
        raise _unknown_name(spec)
    if spec.endswith('.json'):
        split = load_split(spec)
        return list(split.classes), (
            f'split file {osp.basename(spec)}: seen + unseen '
            f'({len(split.seen)} + {len(split.unseen)})')
    names = read_class_names_file(spec)
    return names, f'class list file {osp.basename(spec)} ({len(names)})'


def resolve_column_names(spec: str) -> tuple[list[str], str]:
    """Class names of the columns 1..K of a ZSI word2vec file.

    The columns of those files follow a split's ``seen + unseen`` order,
    so only a split (a registered name such as ``'zsi_48_17'``, or a split
    JSON file) or a text file listing the column names in order is accepted;
    a data set name (its metainfo order) would label the columns wrongly.

    Returns:
        tuple[list[str], str]: The names and a description, as
        :func:`resolve_class_names`.
    """
    if not _looks_like_path(spec):
        if spec in DATASET_CLASS_LISTS or spec in SPLIT_DATASETS:
            zsi = [name for name in list_splits() if name.startswith('zsi_')]
            raise ValueError(
                f'{spec!r} gives classes in data set order, not the column '
                'order of a word2vec file. Give the split the file belongs '
                f'to ({", ".join(zsi)}) or a text file listing the column '
                'names 1..K in order.')
        if spec not in list_splits():
            raise _unknown_name(spec)
    return resolve_class_names(spec)
