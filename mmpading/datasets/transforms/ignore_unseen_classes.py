"""Pipeline transform: hide unseen classes from the training targets."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmpading.registry import TRANSFORMS

from ..splits import ZeroShotSplit, resolve_split
from ..zero_shot_mixin import resolve_metainfo


@TRANSFORMS.register_module()
class IgnoreUnseenClasses(BaseTransform):
    """Set unseen pixels to ignore and remove unseen instances.

    The per-sample form of ``zero_shot_mode='ignore_unseen'``, for data sets
    that are not the zero-shot ones of mmpading (which do this while
    loading). Put it right after the annotation loading transform.

    Required keys (each optional): ``gt_seg_map``, ``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_masks``, ``gt_ignore_flags``.

    Modified keys: the same.

    Args:
        split (str | ZeroShotSplit): Split name or split file path.
        classes (Sequence[str] | str): The data set's classes in label order,
            or the path of a metainfo JSON file holding them.
        ignore_index (int): Label of ignored pixels. Defaults to 255.
    """

    def __init__(self,
                 split: str | ZeroShotSplit,
                 classes: Sequence[str] | str,
                 ignore_index: int = 255) -> None:
        if isinstance(classes, str):
            classes = resolve_metainfo(classes)['classes']
        self.split = resolve_split(split)
        self.unseen_labels = np.asarray(self.split.unseen_ids(list(classes)),
                                        dtype=np.int64)
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Hide the unseen classes of one sample."""
        if 'gt_seg_map' in results:
            seg_map = results['gt_seg_map'].copy()
            seg_map[np.isin(seg_map, self.unseen_labels)] = self.ignore_index
            results['gt_seg_map'] = seg_map
        if 'gt_bboxes_labels' in results:
            keep = ~np.isin(results['gt_bboxes_labels'], self.unseen_labels)
            for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_masks',
                        'gt_ignore_flags'):
                if key in results:
                    results[key] = results[key][keep]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(split={self.split.name!r}, '
                f'unseen_labels={self.unseen_labels.tolist()}, '
                f'ignore_index={self.ignore_index})')
