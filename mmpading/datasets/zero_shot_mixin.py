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

  With a split, mode ``'all'`` in a training role (``test_mode=False``)
  is refused: it would train on unseen classes. ``test_mode=True`` marks an
  evaluation set; ``allow_unseen_in_training=True`` opts out on purpose (a
  warning is logged).

With a split, ``metainfo`` gains ``zero_shot_split``, ``seen_classes`` and
``unseen_classes`` (tuples of names), which reach the evaluator as
``dataset_meta``.

Bad files get errors that name them and the fix: a missing ``ann_file`` or
metainfo file, an empty or truncated annotation JSON, and (when a sample
fails to load) a truncated or corrupt image or panoptic / label PNG.
"""
from __future__ import annotations

import logging
import os.path as osp
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mmengine.logging import print_log

from .file_checks import (
    COCO_KEYS,
    SAMPLE_FIX,
    DataFileError,
    check_file_exists,
    load_coco_api,
    load_json_file,
    sample_file_problems,
)
from .splits import ZeroShotSplit, resolve_split
from .unseen_in_training import (
    MODE_FIX,
    OPT_OUT,
    ZeroShotTrainingDataError,
    warn_unseen_in_training,
)

METAINFO_FIX = ('regenerate it (the toy set: tools/dataset_converters/'
                'make_toy_dataset.py) or give metainfo=dict(classes=[...])')

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
            content = load_json_file(path, 'Metainfo file', METAINFO_FIX)
            if not isinstance(content, dict) or 'classes' not in content:
                raise DataFileError(
                    f'Metainfo file {path!r} must hold a JSON object with '
                    f'"classes" (a list of class names). Fix: '
                    f'{METAINFO_FIX}.')
            if 'palette' in content:
                # JSON has no tuples; mmdet's visualizer takes a list entry
                # for a list of colours.
                content['palette'] = [
                    tuple(color) for color in content['palette']
                ]
            return content
    raise FileNotFoundError(
        f'Metainfo file {metainfo!r} not found (looked at {candidates}). '
        'Fix: check metainfo and data_root, or give '
        'metainfo=dict(classes=[...]).')


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
                 allow_unseen_in_training: bool = False,
                 split_classes_only: bool = False,
                 **kwargs) -> None:
        """Set up the split, then the upstream data set.

        ``metainfo`` may be the path of a metainfo JSON file (relative
        paths are tried under ``data_root`` first).
        ``allow_unseen_in_training=True`` accepts mode ``'all'`` with
        ``test_mode=False`` (training on unseen classes on purpose).
        ``split_classes_only=True`` loads the split's classes only, in the
        data set's order (``split.ordered_like(classes)``; ZSI 48/17: 65 of
        the 80 COCO classes), so that no config repeats them.
        """
        self._init_zero_shot(zero_shot_split, zero_shot_mode,
                             kwargs.get('data_root'))
        self._check_training_role(kwargs, allow_unseen_in_training)
        kwargs['metainfo'] = resolve_metainfo(
            kwargs.get('metainfo'), kwargs.get('data_root'))
        if split_classes_only:
            kwargs['metainfo'] = self._split_classes_metainfo(
                kwargs['metainfo'])
        super().__init__(*args, **kwargs)
        # Validates the split and fills metainfo also under lazy_init.
        self.unseen_labels  # noqa: B018

    def _split_classes_metainfo(self, metainfo: Mapping | None) -> dict:
        """``metainfo`` with only the split's classes, in their order."""
        if self.zero_shot_split is None:
            raise ValueError(
                f'{type(self).__name__}: split_classes_only=True needs a '
                'zero_shot_split (a registered name or a split file).')
        metainfo = dict(metainfo or {})
        classes = metainfo.get('classes') or type(self).METAINFO['classes']
        metainfo['classes'] = self.zero_shot_split.ordered_like(classes)
        return metainfo

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

    def _check_training_role(self, kwargs: Mapping,
                             allow_unseen_in_training: bool) -> None:
        """Refuse mode ``'all'`` in a training role (unless allowed)."""
        test_mode = kwargs.get('test_mode', False)
        if test_mode or self.zero_shot_mode in ('drop_unseen',
                                                'ignore_unseen'):
            return
        source = (f'{type(self).__name__} '
                  f'({self._describe_given_source(kwargs)})')
        if allow_unseen_in_training:
            reason = ('zero_shot_mode="all"' if self.zero_shot_split is None
                      else f'zero_shot_mode="all", split '
                      f'{self.zero_shot_split.name!r}')
            warn_unseen_in_training(source, reason)
            return
        if self.zero_shot_split is not None:
            raise ZeroShotTrainingDataError(
                f'{source}: zero_shot_mode={self.zero_shot_mode!r} with '
                f'test_mode=False would train on the images that show '
                f'unseen classes of split {self.zero_shot_split.name!r}. '
                f'Fix: set {MODE_FIX}, or test_mode=True for an evaluation '
                f'set; to train on unseen classes on purpose, set '
                f'{OPT_OUT}=True.')

    @staticmethod
    def _describe_given_source(kwargs: Mapping) -> str:
        ann_file = kwargs.get('ann_file') or ''
        data_root = kwargs.get('data_root') or ''
        if ann_file:
            return 'ann_file ' + repr(
                ann_file if osp.isabs(ann_file) or not data_root else
                osp.join(data_root, ann_file))
        prefix = kwargs.get('data_prefix') or {}
        folder = next(iter(prefix.values()), '') if prefix else ''
        return f'data_root {data_root!r}, data_prefix {folder!r}'

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

    # ------------------------------------------------------------- loading
    def _required_coco_keys(self) -> Sequence[str]:
        # A test-dev style file (images only) can still be evaluated.
        if getattr(self, 'test_mode', False):
            return tuple(key for key in COCO_KEYS if key != 'annotations')
        return COCO_KEYS

    def _check_ann_file(self) -> None:
        """Refuse a missing ``ann_file`` before upstream opens it."""
        check_file_exists(
            self.ann_file, 'Annotation file', 'ann_file',
            'check ann_file and data_root; seen-only training files are '
            'written by tools/dataset_converters/prepare_zero_shot_coco.py '
            '(docs/data_preparation.md)', getattr(self, 'backend_args', None))

    def load_data_list(self) -> list[dict]:
        """Upstream's data list, after checking that ``ann_file`` exists."""
        self._check_ann_file()
        return super().load_data_list()

    def _checked_coco_api(self, api: Callable[[str], Any]
                          ) -> Callable[[str], Any]:
        """``api`` (upstream's ``COCOAPI``) naming ``ann_file`` when it is
        empty, truncated or not a COCO file."""
        ann_file = self.ann_file
        required = self._required_coco_keys()

        def load(local_path: str) -> Any:
            return load_coco_api(api, local_path, ann_file, required)

        return load

    def prepare_data(self, idx: int) -> Any:
        """Upstream's ``prepare_data``; a sample whose image or annotation
        file is broken gets an error naming both files and the fix.

        Only a failure is diagnosed (files are decoded again then), so a
        sound sample costs nothing more.

        Raises:
            DataFileError: If a file of the sample is missing, empty,
                truncated or corrupt, with the pipeline's own message.
        """
        try:
            return super().prepare_data(idx)
        except Exception as error:
            data_info = self.get_data_info(idx)
            files, problems = sample_file_problems(
                data_info, getattr(self, 'backend_args', None))
            if not problems:
                raise
            raise DataFileError(
                f'Cannot load sample {idx} of {type(self).__name__} '
                f'({self._describe_source()}; {", ".join(files)}): '
                f'{"; ".join(problems)}. The pipeline failed with '
                f'{type(error).__name__}: {str(error).strip()}. Fix: '
                f'{SAMPLE_FIX}.') from None
