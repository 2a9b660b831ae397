"""COCO panoptic data set with seen-only training (zero-shot panoptic)."""
from __future__ import annotations

from collections.abc import Callable

from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCOPanoptic

from mmpading.registry import DATASETS

from .zero_shot_mixin import ZeroShotDatasetMixin


@DATASETS.register_module()
class ZeroShotCocoPanopticDataset(ZeroShotDatasetMixin, CocoPanopticDataset):
    """mmdet's ``CocoPanopticDataset`` restricted by a zero-shot split.

    Loads COCO panoptic and the toy data set alike (same formats). For the
    toy set pass ``metainfo='metainfo.json'`` (read under ``data_root``).

    Args:
        zero_shot_split (str | ZeroShotSplit, optional): Split name (e.g.
            ``'zsp_coco'``, ``'toy'``) or split file path.
        zero_shot_mode (str): ``'all'`` (no filtering), ``'drop_unseen'``
            (drop every image with an unseen segment, crowd included) or
            ``'ignore_unseen'`` (keep images; unseen segments are removed,
            so ``LoadPanopticAnnotations`` loads their pixels as 255 and
            gives them no mask). See :mod:`.zero_shot_mixin`.
        **kwargs: Arguments of ``CocoPanopticDataset``; ``metainfo`` may
            also be the path of a metainfo JSON file.
    """

    @property
    def COCOAPI(self) -> Callable[[str], COCOPanoptic]:  # noqa: N802 (upstream's)
        """Upstream's ``COCOPanoptic``; an empty, truncated or incomplete
        ``ann_file`` gets an error naming it and the fix."""
        return self._checked_coco_api(CocoPanopticDataset.COCOAPI)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Parse one image; in ``ignore_unseen`` mode drop unseen segments."""
        data_info = super().parse_data_info(raw_data_info)
        if self.zero_shot_mode == 'ignore_unseen':
            unseen = self.unseen_labels
            # Thing instances and thing segments share their label, so both
            # lists stay aligned (LoadPanopticAnnotations pairs them).
            data_info['segments_info'] = [
                segment for segment in data_info['segments_info']
                if segment['category'] not in unseen
            ]
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
                data_list, lambda info: (segment['category']
                                         for segment in info['segments_info']))
        return data_list
