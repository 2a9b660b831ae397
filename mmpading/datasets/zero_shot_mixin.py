"""Zero-shot behaviour shared by the COCO panoptic / instance / stuff sets.

A zero-shot data set takes two extra arguments:

- ``zero_shot_split``: a registered split name (``'zsp_coco'``, ``'toy'``,
  ...) or the path of a split JSON file (a relative path is looked up under
  ``data_root`` first). Matched to the data set's ``metainfo['classes']`` by
  name.
- ``zero_shot_mode``:

  - ``'all'``: no filtering, evaluate on every class (validation / test).
  - ``'drop_unseen'``: drop every image that shows an unseen class, even one
    pixel or one crowd region (the PADing / ZSI training protocol).
  - ``'ignore_unseen'``: keep the images; unseen pixels load as ignore (255)
    and unseen instances are removed (ZegFormer's ZSS protocol).

With a split, ``metainfo`` gains ``zero_shot_split``, ``seen_classes`` and
``unseen_classes`` (tuples of names), which reach the evaluator as
``dataset_meta``.
"""
from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Callable, Iterable, Mapping

from mmengine.fileio import load
from mmengine.logging import print_log

from .splits import ZeroShotSplit, resolve_split

ZERO_SHOT_MODES = ('all', 'drop_unseen', 'ignore_unseen')


def resolve_metainfo(metainfo: Mapping | str | None,
                     data_root: str | None = None) -> Mapping | None:
    """Metainfo as given, or read from a JSON file (e.g. the toy set's).

    Args:
        metainfo (Mapping | str | None): A dict, or the path of a
            ``metainfo.json``; a relative path is tried under ``data_root``
            first.
        data_root (str, optional): The data set's root folder.
    """
    if not isinstance(metainfo, str):
        return metainfo
    candidates = [metainfo]
    if data_root and not osp.isabs(metainfo):
        candidates.insert(0, osp.join(data_root, metainfo))
    for path in candidates:
        if osp.isfile(path):
            content = load(path)
            if not isinstance(content, dict) or 'classes' not in content:
                raise ValueError(f'Metainfo file {path!r} must hold a JSON '
                                 'object with "classes".')
            if 'palette' in content:
                # JSON has no tuples; mmdet's visualizer takes a list entry
                # for a list of colours.
                content['palette'] = [
                    tuple(color) for color in content['palette']
                ]
            return content
    raise FileNotFoundError(
        f'Metainfo file {metainfo!r} not found (looked at {candidates}).')


class ZeroShotDatasetMixin:
    """Split handling and image filtering for zero-shot data sets.

    Subclasses call :meth:`_init_zero_shot` before the upstream
    ``__init__`` and use :attr:`unseen_labels` / :meth:`_drop_unseen_images`
    in their parsing and filtering.
    """

    zero_shot_split: ZeroShotSplit | None
    zero_shot_mode: str

    def __init__(self,
                 *args,
                 zero_shot_split: str | ZeroShotSplit | None = None,
                 zero_shot_mode: str = 'all',
                 **kwargs) -> None:
        """Set up the split, then the upstream data set.

        ``metainfo`` may be the path of a metainfo JSON file (relative
        paths are tried under ``data_root`` first).
        """
        self._init_zero_shot(zero_shot_split, zero_shot_mode,
                             kwargs.get('data_root'))
        kwargs['metainfo'] = resolve_metainfo(
            kwargs.get('metainfo'), kwargs.get('data_root'))
        super().__init__(*args, **kwargs)
        # Validates the split and fills metainfo also under lazy_init.
        self.unseen_labels  # noqa: B018

    def _init_zero_shot(self,
                        zero_shot_split: str | ZeroShotSplit | None,
                        zero_shot_mode: str,
                        data_root: str | None = None) -> None:
        if zero_shot_mode not in ZERO_SHOT_MODES:
            raise ValueError(
                f'zero_shot_mode must be one of {ZERO_SHOT_MODES}, not '
                f'{zero_shot_mode!r}.')
        if zero_shot_split is None and zero_shot_mode != 'all':
            raise ValueError(
                f'zero_shot_mode={zero_shot_mode!r} needs a zero_shot_split '
                '(a registered name such as "zsp_coco" or a split file).')
        self.zero_shot_split = (None if zero_shot_split is None else
                                resolve_split(zero_shot_split, data_root))
        self.zero_shot_mode = zero_shot_mode
        self._unseen_labels: frozenset[int] | None = None

    @property
    def unseen_labels(self) -> frozenset[int]:
        """Contiguous labels (indices into ``metainfo['classes']``) of the
        unseen classes; empty without a split."""
        if self._unseen_labels is None:
            self._unseen_labels = self._prepare_zero_shot()
        return self._unseen_labels

    def _prepare_zero_shot(self) -> frozenset[int]:
        split = self.zero_shot_split
        if split is None:
            return frozenset()
        classes = list(self._metainfo.get('classes') or ())
        split.check_compatible(classes)
        outside = split.outside_classes(classes)
        if outside and self.zero_shot_mode != 'all':
            print_log(
                f'{type(self).__name__}: {len(outside)} class(es) of the '
                f'data set are neither seen nor unseen in split '
                f'{split.name!r} and are trained as ordinary classes: '
                f'{outside}. To leave them out, set metainfo classes to '
                'split.ordered_like(classes).',
                logger='current', level=logging.WARNING)
        self._metainfo.update(
            zero_shot_split=split.name,
            seen_classes=tuple(c for c in classes if c in set(split.seen)),
            unseen_classes=tuple(c for c in classes
                                 if c in set(split.unseen)))
        return frozenset(split.unseen_ids(classes))

    def _describe_source(self) -> str:
        ann_file = getattr(self, 'ann_file', '')
        if ann_file:
            return repr(ann_file)
        prefix = getattr(self, 'data_prefix', {}) or {}
        return repr(next(iter(prefix.values()), '')) if prefix else '?'

    def _drop_unseen_images(
            self, data_list: list[dict],
            labels_of: Callable[[dict], Iterable[int]]) -> list[dict]:
        """Images without any unseen label.

        Args:
            data_list (list[dict]): Parsed data infos.
            labels_of (Callable): Labels (contiguous ids) an image shows.

        Raises:
            ValueError: If no image is left, saying how many were dropped
                and why.
        """
        unseen = self.unseen_labels
        kept = [
            info for info in data_list
            if unseen.isdisjoint(int(label) for label in labels_of(info))
        ]
        dropped = len(data_list) - len(kept)
        split = self.zero_shot_split
        if not kept:
            if not data_list:
                reason = ('there were no images to begin with (empty '
                          'annotation file, or filter_cfg removed them all)')
            else:
                reason = (f'all {dropped} images show at least one unseen '
                          f'class of split {split.name!r} '
                          f'({", ".join(split.unseen)})')
            raise ValueError(
                f'{type(self).__name__} with zero_shot_mode="drop_unseen" '
                f'has no image left from {self._describe_source()}: '
                f'{reason}. Check that this is a training file of the data '
                'set the split belongs to, or use zero_shot_mode='
                '"ignore_unseen" to keep the images and ignore unseen pixels.')
        print_log(
            f'{type(self).__name__}: zero_shot_mode="drop_unseen" kept '
            f'{len(kept)} of {len(data_list)} images, dropped {dropped} that '
            f'show an unseen class of split {split.name!r}.',
            logger='current')
        return kept
