"""Mask2Former heads under the names of earlier mmpading configs.

Stage 2 reads the class embeddings of any upstream Mask2Former head
(:mod:`mmpading.models.utils.query_features`), so stage 1 needs no head of
its own. These names stay registered for configs that use them; they
build upstream's heads and keep ``query_class_cost``, which
:class:`~mmpading.models.PADing` / :class:`~mmpading.models.PADingSegmentor`
read when their own ``query_class_cost`` is not set.
"""
from __future__ import annotations

from mmdet.models.dense_heads import Mask2FormerHead
from mmseg.models.decode_heads import Mask2FormerHead as SegMask2FormerHead

from mmpading.registry import MODELS

from ..utils.query_features import QueryFeatures

__all__ = [
    'QueryFeatures', 'ZeroShotMask2FormerHead', 'ZeroShotMask2FormerSegHead'
]


@MODELS.register_module()
class ZeroShotMask2FormerHead(Mask2FormerHead):
    """mmdet's ``Mask2FormerHead``, plus ``query_class_cost``.

    Args:
        query_class_cost (float, optional): Class-cost weight of stage 2's
            matching; prefer ``PADing(query_class_cost=...)``.
        *args, **kwargs: Arguments of :class:`mmdet.models.Mask2FormerHead`.
    """

    def __init__(self, *args, query_class_cost: float | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.query_class_cost = query_class_cost


@MODELS.register_module()
class ZeroShotMask2FormerSegHead(SegMask2FormerHead):
    """mmseg's ``Mask2FormerHead``, plus ``query_class_cost``.

    Args:
        query_class_cost (float, optional): Class-cost weight of stage 2's
            matching; prefer ``PADingSegmentor(query_class_cost=...)``.
        *args, **kwargs: Arguments of :class:`mmseg.models.Mask2FormerHead`.
    """

    def __init__(self, *args, query_class_cost: float | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.query_class_cost = query_class_cost
