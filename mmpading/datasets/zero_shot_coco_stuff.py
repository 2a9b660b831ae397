"""COCO-Stuff data set with seen-only training (zero-shot semantic)."""
from __future__ import annotations

import io
import os.path as osp

import numpy as np
from mmengine import fileio
from mmengine.utils import track_iter_progress
from mmseg.datasets import COCOStuffDataset
from PIL import Image

from mmpading.registry import DATASETS

from .file_checks import SAMPLE_FIX, DataFileError, check_file_exists
from .zero_shot_mixin import ZeroShotDatasetMixin

IGNORE_INDEX = 255
# Scanning segmentation maps shows a progress bar from this many images on.
PROGRESS_FROM = 1000


def seg_map_labels(path: str,
                   reduce_zero_label: bool = False,
                   label_map: dict[int, int] | None = None,
                   backend_args: dict | None = None) -> set[int]:
    """Labels present in a segmentation map, as mmseg would load them.

    Applies ``reduce_zero_label`` and ``label_map`` the way mmseg's
    ``LoadAnnotations`` does; the ignore index is left out.

    Args:
        path (str): Label PNG (one channel, label per pixel).
        reduce_zero_label (bool): Label 0 is ignore, the others shift by -1.
        label_map (dict[int, int], optional): Old label -> new label.
        backend_args (dict, optional): mmengine file backend arguments.
    """
    try:
        with Image.open(io.BytesIO(fileio.get(
                path, backend_args=backend_args))) as png:
            labels = np.asarray(png)
    except (OSError, SyntaxError, ValueError) as error:
        # PIL: UnidentifiedImageError / "image file is truncated".
        problem = ('does not exist' if isinstance(error, FileNotFoundError)
                   else f'cannot be read ({error})')
        raise DataFileError(
            f'Segmentation map {path!r} {problem}. Fix: {SAMPLE_FIX}.'
        ) from None
    if labels.ndim != 2:
        raise ValueError(f'Segmentation map {path!r} has shape '
                         f'{labels.shape}; expected one channel (H, W).')
    present = np.flatnonzero(np.bincount(labels.ravel().astype(np.int64),
                                         minlength=256))
    result = set()
    for label in present.tolist():
        if reduce_zero_label:
            label = IGNORE_INDEX if label == 0 else label - 1
            if label == IGNORE_INDEX - 1:
                label = IGNORE_INDEX
        if label_map is not None:
            label = label_map.get(label, label)
        if label != IGNORE_INDEX:
            result.add(label)
    return result


@DATASETS.register_module()
class ZeroShotCOCOStuffDataset(ZeroShotDatasetMixin, COCOStuffDataset):
    """mmseg's ``COCOStuffDataset`` restricted by a zero-shot split.

    Also loads data sets whose classes are not COCO-Stuff's (the toy set:
    ``metainfo='metainfo.json'``, ``img_suffix='.png'``,
    ``seg_map_suffix='.png'``); their label maps are read as indices into
    the given classes.

    Args:
        zero_shot_split (str | ZeroShotSplit, optional): Split name (e.g.
            ``'zss_cocostuff'``) or split file path.
        zero_shot_mode (str): ``'all'``, ``'drop_unseen'`` (drop every image
            with an unseen pixel; reads every label map once at start-up,
            several minutes on COCO-Stuff 164k: prefer an image list written
            by ``prepare_zero_shot_coco.py --task zss`` as ``ann_file``) or
            ``'ignore_unseen'`` (unseen pixels load as 255 through the
            ``label_map`` that ``LoadAnnotations`` applies). See
            :mod:`.zero_shot_mixin`.
        **kwargs: Arguments of ``COCOStuffDataset``; ``metainfo`` may also
            be the path of a metainfo JSON file.
    """

    @classmethod
    def get_label_map(cls, new_classes=None) -> dict | None:
        """mmseg's label map, or none for a class list of its own.

        mmseg only accepts subsets of COCO-Stuff's classes; another class
        list (the toy set's) means the maps already hold its indices.
        """
        if new_classes is not None and not set(new_classes).issubset(
                cls.METAINFO['classes']):
            return None
        return super().get_label_map(new_classes)

    def zero_shot_label_map(self) -> dict[int, int] | None:
        """``self.label_map`` with unseen labels sent to the ignore index."""
        unseen = self.unseen_labels
        if self.label_map is None:
            return {label: IGNORE_INDEX for label in sorted(unseen)}
        return {
            old: IGNORE_INDEX if new in unseen else new
            for old, new in self.label_map.items()
        }

    def _check_ann_file(self) -> None:
        """An ``ann_file`` (list of image names) must exist and name an
        image; without one, mmseg lists the image folder."""
        if not self.ann_file or osp.isdir(self.ann_file):
            return
        fix = ('write it with tools/dataset_converters/'
               'prepare_zero_shot_coco.py LABEL_FOLDER --split SPLIT '
               '(docs/data_preparation.md), or set ann_file=\'\' to use '
               'every image of data_prefix.img_path')
        check_file_exists(self.ann_file, 'Image list', 'ann_file', fix,
                          self.backend_args)
        if not fileio.get_text(self.ann_file,
                               backend_args=self.backend_args).strip():
            raise DataFileError(
                f'Image list {self.ann_file!r} (ann_file) is empty. Fix: '
                f'{fix}.')

    def load_data_list(self) -> list[dict]:
        """mmseg's data list; ``ignore_unseen`` maps unseen labels to 255."""
        data_list = super().load_data_list()
        if self.zero_shot_mode == 'ignore_unseen':
            label_map = self.zero_shot_label_map()
            for data_info in data_list:
                data_info['label_map'] = label_map
        return data_list

    def filter_data(self) -> list[dict]:
        """``drop_unseen``: keep images whose label map has no unseen
        pixel."""
        data_list = super().filter_data()
        if self.zero_shot_mode != 'drop_unseen':
            return data_list
        missing = [info for info in data_list if not info.get('seg_map_path')]
        if missing:
            raise ValueError(
                'zero_shot_mode="drop_unseen" reads the segmentation maps, '
                'but data_prefix has no "seg_map_path".')
        infos = (track_iter_progress(data_list)
                 if len(data_list) >= PROGRESS_FROM else data_list)
        labels = {}
        for info in infos:
            labels[info['seg_map_path']] = seg_map_labels(
                info['seg_map_path'], self.reduce_zero_label, self.label_map,
                self.backend_args)
        return self._drop_unseen_images(
            data_list, lambda info: labels[info['seg_map_path']])
