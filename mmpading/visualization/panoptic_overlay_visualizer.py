"""A DetLocalVisualizer that draws only the chosen kinds of results."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer

from mmpading.registry import VISUALIZERS

RESULT_KINDS = ('instances', 'sem_seg', 'panoptic_seg')


@VISUALIZERS.register_module()
class PanopticOverlayVisualizer(DetLocalVisualizer):
    """mmdet's visualizer, restricted to some result kinds.

    A universal model fills ``pred_instances``, ``pred_sem_seg`` and
    ``pred_panoptic_seg``; upstream draws all of them on top of each other.
    This one draws only ``draw_kinds`` (ground truth and prediction side by
    side, as upstream).

    Two gaps of upstream's panoptic drawing are closed: a panoptic data
    set's test pipeline packs the ground truth as ``gt_sem_seg`` (the
    class of every pixel), which is drawn in place of a missing
    ``gt_panoptic_seg``; and a prediction without any segment (all void)
    leaves the image plain instead of failing inside upstream's drawer.

    Args:
        name (str): Instance name (mmengine's visualizers are named).
        draw_kinds (Sequence[str]): Any of ``'instances'``, ``'sem_seg'``
            and ``'panoptic_seg'``. Defaults to panoptic only.
        **kwargs: Arguments of :class:`DetLocalVisualizer`.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 *args,
                 draw_kinds: Sequence[str] = ('panoptic_seg', ),
                 **kwargs) -> None:
        super().__init__(name, *args, **kwargs)
        unknown = [kind for kind in draw_kinds if kind not in RESULT_KINDS]
        if unknown:
            raise ValueError(f'draw_kinds {unknown} unknown; choose from '
                             f'{RESULT_KINDS}')
        self.draw_kinds = tuple(draw_kinds)

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: DetDataSample | None = None,
                       **kwargs) -> None:
        if data_sample is not None:
            data_sample = data_sample.clone()
            kept = set(self.draw_kinds)
            gt_kept = set(kept)
            if 'panoptic_seg' in kept and \
                    'gt_panoptic_seg' not in data_sample:
                gt_kept.add('sem_seg')
            for kind in RESULT_KINDS:
                for prefix, keep in (('gt_', gt_kept), ('pred_', kept)):
                    if kind not in keep and prefix + kind in data_sample:
                        delattr(data_sample, prefix + kind)
            if 'pred_panoptic_seg' in data_sample and not self._has_segments(
                    data_sample.pred_panoptic_seg.sem_seg):
                delattr(data_sample, 'pred_panoptic_seg')
        super().add_datasample(name, image, data_sample, **kwargs)

    def _has_segments(self, panoptic_map) -> bool:
        """Whether a panoptic map has any non-void segment."""
        num_classes = len(self.dataset_meta.get('classes', ()))
        values = np.unique(np.asarray(panoptic_map.cpu()))
        return bool((values != num_classes).any())
