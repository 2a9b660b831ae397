"""Per-query class embeddings of an upstream Mask2Former head.

Stage 2 learns from the tensor that feeds a Mask2Former head's
``cls_embed``: the last decoder layer's output after the transformer
decoder's final LayerNorm. Upstream computes it inside
``Mask2FormerHead._forward_head`` and does not return it; a forward
pre-hook on ``cls_embed`` reads it without changing the head. A forward
hook on the same layer lets another classifier (stage 2's) score the
queries in upstream's own ``predict``.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from mmdet.models.task_modules import ClassificationCost
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor, nn


class QueryFeatures(NamedTuple):
    """Class embeddings of all queries of a batch, with matching labels.

    Attributes:
        embeddings (Tensor): LayerNorm'd output of the last decoder layer,
            the input of ``cls_embed``. Shape (B, Q, C).
        labels (Tensor): Class index of the ground-truth segment each query
            was matched to by the Hungarian assigner; ``num_classes``
            (no-object) for unmatched queries. Shape (B, Q).
        num_classes (int): Number of classes K (the no-object index).
    """
    embeddings: Tensor
    labels: Tensor
    num_classes: int

    @property
    def matched(self) -> Tensor:
        """Boolean mask of queries matched to a segment. Shape (B, Q)."""
        return self.labels != self.num_classes


@contextmanager
def record_class_embeddings(cls_embed: nn.Module) -> Iterator[list[Tensor]]:
    """Record every input of ``cls_embed`` while the context is open.

    A Mask2Former head calls ``cls_embed`` once per decoder layer (and
    once for the initial queries), so after one forward the list holds
    ``num_layers + 1`` tensors of shape (B, Q, C) in layer order; the last
    one is the final layer's class embeddings.

    Args:
        cls_embed (nn.Module): The head's classification layer.

    Yields:
        list[Tensor]: The recorded inputs, filled during the context.
    """
    recorded: list[Tensor] = []

    def record(module: nn.Module, inputs: tuple) -> None:
        recorded.append(inputs[0])

    handle = cls_embed.register_forward_pre_hook(record)
    try:
        yield recorded
    finally:
        handle.remove()


@contextmanager
def classify_with(cls_embed: nn.Module,
                  classifier: nn.Module | None) -> Iterator[None]:
    """Let ``classifier`` replace the outputs of ``cls_embed``.

    Upstream ``predict`` (mmdet's and mmseg's) then post-processes the
    class logits of ``classifier`` with everything else unchanged; the
    masks never depend on the class logits. ``None`` leaves ``cls_embed``
    as it is.

    Args:
        cls_embed (nn.Module): The head's classification layer.
        classifier (nn.Module, optional): Maps (..., C) embeddings to
            (..., K + 1) logits, like ``cls_embed``.
    """
    if classifier is None:
        yield
        return

    def replace(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
        return classifier(inputs[0])

    handle = cls_embed.register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def match_queries(head: nn.Module,
                  cls_scores: Tensor,
                  mask_preds: Tensor,
                  batch_gt_instances: list[InstanceData],
                  batch_img_metas: list[dict],
                  assigner: object | None = None) -> Tensor:
    """Hungarian matching of one decoder layer's queries to ground truth.

    Upstream's ``get_targets`` (point-sampled mask and dice costs, the
    class cost of ``cls_scores``), with ``assigner`` in place of the
    head's training assigner when given.

    Args:
        head (nn.Module): An mmdet (or mmseg) ``Mask2FormerHead``.
        cls_scores (Tensor): Class logits of ``cls_embed``, (B, Q, K + 1).
        mask_preds (Tensor): Mask logits, shape (B, Q, h, w).
        batch_gt_instances (list[InstanceData]): Per image ``labels`` (N, )
            and ``masks`` (N, H, W) tensors, as ``preprocess_gt`` gives.
        batch_img_metas (list[dict]): Meta information per image.
        assigner (optional): A ``HungarianAssigner``; None: the head's.

    Returns:
        Tensor: Matched class per query, K for no-object, shape (B, Q).
    """
    num_images = cls_scores.shape[0]
    # Upstream's _get_targets_single reads head.assigner.
    training_assigner = head.assigner
    if assigner is not None:
        head.assigner = assigner
    try:
        labels_list = head.get_targets(
            [cls_scores[i] for i in range(num_images)],
            [mask_preds[i] for i in range(num_images)], batch_gt_instances,
            batch_img_metas)[0]
    finally:
        head.assigner = training_assigner
    return torch.stack(labels_list)


def build_query_assigner(train_cfg: dict | None,
                         class_cost: float | None) -> object | None:
    """The training assigner with another class-cost weight, or None.

    The PADing reference builds its stage-2 matcher from the stage-2
    config, whose class weight is 5.0 for ZSP and ZSS and 2.0 for ZSI,
    while stage 1 uses 2.0 (reference ``PADing/PADing_model.py:213-223``,
    ``configs/*/PADing.yaml`` ``CLASS_WEIGHT``).

    Args:
        train_cfg (dict, optional): The head's ``train_cfg`` with
            ``assigner`` (a ``HungarianAssigner`` config).
        class_cost (float, optional): Weight of its ``ClassificationCost``;
            None: keep the training assigner (returns None).

    Returns:
        The built assigner, or None.

    Raises:
        ValueError: ``class_cost`` is set but there is no assigner config
            or it has no ``ClassificationCost``.
    """
    if class_cost is None:
        return None
    if not train_cfg or 'assigner' not in train_cfg:
        raise ValueError(
            'query_class_cost is set but the head has no '
            'train_cfg.assigner to match with: keep train_cfg in the model '
            'config')
    assigner = copy.deepcopy(dict(train_cfg['assigner']))
    costs = assigner.get('match_costs', [])
    if isinstance(costs, dict):
        costs = [costs]
    costs = [dict(cost) for cost in costs]
    assigner['match_costs'] = costs
    found = False
    for cost in costs:
        kind = cost.get('type')
        # 'ClassificationCost', 'mmdet.ClassificationCost' or the class.
        name = kind.rsplit('.', 1)[-1] if isinstance(kind, str) else None
        if name == 'ClassificationCost' or (
                isinstance(kind, type)
                and issubclass(kind, ClassificationCost)):
            cost['weight'] = class_cost
            found = True
    if not found:
        raise ValueError(
            'query_class_cost needs a ClassificationCost in '
            f'train_cfg.assigner.match_costs, got {costs!r}')
    return TASK_UTILS.build(assigner)
