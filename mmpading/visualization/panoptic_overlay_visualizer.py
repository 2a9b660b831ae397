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
            for kind in RESULT_KINDS:
                if kind in self.draw_kinds:
                    continue
                for prefix in ('gt_', 'pred_'):
                    if prefix + kind in data_sample:
                        delattr(data_sample, prefix + kind)
        super().add_datasample(name, image, data_sample, **kwargs)
