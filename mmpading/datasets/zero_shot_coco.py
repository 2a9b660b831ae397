"""COCO instance data set with seen-only training (zero-shot instance)."""
from __future__ import annotations

from collections.abc import Callable

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO

from mmpading.registry import DATASETS

from .zero_shot_mixin import ZeroShotDatasetMixin


@DATASETS.register_module()
class ZeroShotCocoDataset(ZeroShotDatasetMixin, CocoDataset):
    """mmdet's ``CocoDataset`` restricted by a zero-shot split.

    For ZSI 48/17 (65 of the 80 COCO classes) set ``metainfo=dict(classes=
    get_split('zsi_48_17').ordered_like(CocoDataset.METAINFO['classes']))``:
    mmdet numbers classes in the order of the annotation file, so a subset
    must keep COCO order.

    Args:
        zero_shot_split (str | ZeroShotSplit, optional): Split name (e.g.
            ``'zsi_48_17'``) or split file path.
        zero_shot_mode (str): ``'all'``, ``'drop_unseen'`` (drop every image
            with an unseen instance, crowd included) or ``'ignore_unseen'``
            (keep images, remove unseen instances). See
            :mod:`.zero_shot_mixin`.
        **kwargs: Arguments of ``CocoDataset``; ``metainfo`` may also be the
            path of a metainfo JSON file.
    """

    @property
    def COCOAPI(self) -> Callable[[str], COCO]:  # noqa: N802 (upstream's)
        """Upstream's ``COCO``; an empty, truncated or incomplete
        ``ann_file`` gets an error naming it and the fix."""
        return self._checked_coco_api(CocoDataset.COCOAPI)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Parse one image; in ``ignore_unseen`` mode drop unseen objects."""
        data_info = super().parse_data_info(raw_data_info)
        if self.zero_shot_mode == 'ignore_unseen':
            unseen = self.unseen_labels
            data_info['instances'] = [
                instance for instance in data_info['instances']
                if instance['bbox_label'] not in unseen
            ]
        return data_info

    def filter_data(self) -> list[dict]:
        """mmdet's filtering, then (``drop_unseen``) the zero-shot one."""
        data_list = super().filter_data()
        if self.zero_shot_mode == 'drop_unseen':
            data_list = self._drop_unseen_images(
                data_list, lambda info: (instance['bbox_label']
                                         for instance in info['instances']))
        return data_list
