"""Mask2Former heads that expose per-query class embeddings."""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn.functional as F
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.models.task_modules import ClassificationCost
from mmdet.registry import TASK_UTILS
from mmdet.structures import SampleList
from mmseg.models.decode_heads import Mask2FormerHead as SegMask2FormerHead
from mmseg.structures import SegDataSample
from torch import Tensor, nn

from mmpading.registry import MODELS


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


class QueryEmbeddingMixin:
    """Adds class-embedding access and prediction with another classifier.

    Shared by the mmdet and mmseg variants. The embedding of a query is the
    tensor that feeds ``cls_embed``: the decoder output after the
    transformer decoder's final LayerNorm. Mask prediction and the
    upstream losses are unchanged, and ``cls_embed`` keeps serving the
    Hungarian matcher.

    :meth:`query_features` (stage 2's matching) may weigh the class cost
    differently from the training assigner (stage 1's): the PADing
    reference builds its stage-2 matcher from the stage-2 config, whose
    class weight is 5.0 for ZSP and ZSS and 2.0 for ZSI, while stage 1
    uses 2.0 (reference ``PADing/PADing_model.py:213-223``,
    ``configs/*/PADing.yaml`` ``CLASS_WEIGHT``).

    Args:
        query_class_cost (float, optional): Weight of the
            ``ClassificationCost`` in the Hungarian matching of
            :meth:`query_features`; the mask and dice costs stay those of
            ``train_cfg.assigner``. None: the training assigner as it is.
            Defaults to None; the stage-2 configs set the reference's
            value.
        *args, **kwargs: Arguments of the upstream head.
    """

    def __init__(self, *args, query_class_cost: float | None = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.query_class_cost = query_class_cost
        # Built once from train_cfg; None: query_features uses the
        # training assigner.
        self.query_assigner = None
        if query_class_cost is not None and self.train_cfg:
            self.query_assigner = TASK_UTILS.build(
                _with_class_cost(self.train_cfg['assigner'],
                                 query_class_cost))

    # Set during a forward pass only; None means "do not record".
    _recorded_embeddings: list[Tensor] | None = None
    _recorded_labels: list[list[Tensor]] | None = None

    # ------------------------------------------------------------ forward
    def _forward_head(self, decoder_out: Tensor, mask_feature: Tensor,
                      attn_mask_target_size: tuple[int, int]) -> tuple:
        """Upstream ``_forward_head``, recording the class embeddings.

        Args:
            decoder_out (Tensor): Decoder output, shape (B, Q, C).
            mask_feature (Tensor): Pixel features, shape (B, C, H, W).
            attn_mask_target_size (tuple[int, int]): Size of the next
                layer's attention mask.

        Returns:
            tuple: ``cls_pred`` (B, Q, K + 1), ``mask_pred`` (B, Q, H, W),
            ``attn_mask`` (B * num_heads, Q, h * w).
        """
        embeddings = self.transformer_decoder.post_norm(decoder_out)
        if self._recorded_embeddings is not None:
            self._recorded_embeddings.append(embeddings)
        cls_pred = self.cls_embed(embeddings)
        mask_embed = self.mask_embed(embeddings)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        attn_mask = F.interpolate(
            mask_pred,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        # (B, Q, h, w) -> (B * num_heads, Q, h * w); True = not attended.
        attn_mask = attn_mask.flatten(2).unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        attn_mask = (attn_mask.sigmoid() < 0.5).detach()
        return cls_pred, mask_pred, attn_mask

    def forward_with_embeddings(
            self, x: list[Tensor], batch_data_samples: SampleList
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Forward, also returning every layer's class embeddings.

        Returns:
            tuple: ``cls_preds`` and ``mask_preds`` as upstream's
            ``forward`` (one entry per decoder layer plus the initial
            queries), and ``embeddings``: a list of (B, Q, C) tensors in
            the same order (the last one is the final layer's).
        """
        self._recorded_embeddings = []
        try:
            cls_preds, mask_preds = super().forward(x, batch_data_samples)
            embeddings = self._recorded_embeddings
        finally:
            self._recorded_embeddings = None
        return cls_preds, mask_preds, embeddings

    # ----------------------------------------------------------- training
    def get_targets(self, cls_scores_list, mask_preds_list,
                    batch_gt_instances, batch_img_metas,
                    return_sampling_results: bool = False):
        """Upstream ``get_targets``, recording the per-query labels."""
        targets = super().get_targets(cls_scores_list, mask_preds_list,
                                      batch_gt_instances, batch_img_metas,
                                      return_sampling_results)
        if self._recorded_labels is not None:
            self._recorded_labels.append(list(targets[0]))
        return targets

    def loss_and_query_features(
            self, x: tuple[Tensor], batch_data_samples: SampleList
    ) -> tuple[dict[str, Tensor], QueryFeatures]:
        """Upstream losses plus the last layer's matched class embeddings.

        The labels come from the same Hungarian matching the last layer's
        loss uses: no second matching is run.

        Returns:
            tuple: the loss dict and :class:`QueryFeatures` of the last
            decoder layer.
        """
        batch_img_metas, batch_gt_instances = self._gt_for_matching(
            batch_data_samples)
        self._recorded_labels = []
        try:
            cls_preds, mask_preds, embeddings = self.forward_with_embeddings(
                x, batch_data_samples)
            losses = self.loss_by_feat(cls_preds, mask_preds,
                                       batch_gt_instances, batch_img_metas)
            # loss_by_feat visits the decoder layers in order.
            last_labels = self._recorded_labels[-1]
        finally:
            self._recorded_labels = None
        return losses, QueryFeatures(embeddings[-1], torch.stack(last_labels),
                                     self.num_classes)

    def query_features(self, x: tuple[Tensor],
                       batch_data_samples: SampleList) -> QueryFeatures:
        """Class embeddings of the last layer, matched to ground truth.

        Runs the Hungarian assigner on the last layer's predictions (class
        scores of ``cls_embed`` and masks) without computing losses: the
        training assigner, or with the class cost ``query_class_cost``
        when that is set.
        """
        if self.query_class_cost is not None and self.query_assigner is None:
            raise RuntimeError(
                'query_class_cost is set but the head was built without '
                'train_cfg: there is no assigner to match with')
        batch_img_metas, batch_gt_instances = self._gt_for_matching(
            batch_data_samples)
        cls_preds, mask_preds, embeddings = self.forward_with_embeddings(
            x, batch_data_samples)
        num_images = cls_preds[-1].shape[0]
        # Upstream's _get_targets_single reads self.assigner.
        training_assigner = getattr(self, 'assigner', None)
        if self.query_assigner is not None:
            self.assigner = self.query_assigner
        try:
            labels_list = self.get_targets(
                [cls_preds[-1][i] for i in range(num_images)],
                [mask_preds[-1][i] for i in range(num_images)],
                batch_gt_instances, batch_img_metas)[0]
        finally:
            if training_assigner is not None:
                self.assigner = training_assigner
        return QueryFeatures(embeddings[-1], torch.stack(labels_list),
                             self.num_classes)

    def _gt_for_matching(self, batch_data_samples: SampleList) -> tuple:
        batch_img_metas = []
        batch_gt_instances = []
        batch_gt_semantic_segs = []
        for data_sample in batch_data_samples:
            batch_img_metas.append(data_sample.metainfo)
            batch_gt_instances.append(data_sample.gt_instances)
            batch_gt_semantic_segs.append(
                data_sample.gt_sem_seg if 'gt_sem_seg' in data_sample else
                None)
        batch_gt_instances = self.preprocess_gt(batch_gt_instances,
                                                batch_gt_semantic_segs)
        return batch_img_metas, batch_gt_instances

    # ---------------------------------------------------------- inference
    def classify(self,
                 embeddings: Tensor,
                 classifier: nn.Module | None = None) -> Tensor:
        """Class logits of ``classifier``, or of ``cls_embed`` if None.

        Args:
            embeddings (Tensor): Class embeddings, shape (..., C).
            classifier (nn.Module, optional): Maps (..., C) to
                (..., num_classes + 1), e.g. the stage-2 classifier.

        Returns:
            Tensor: Logits, shape (..., num_classes + 1).
        """
        return (classifier or self.cls_embed)(embeddings)


def _with_class_cost(assigner: dict, weight: float) -> dict:
    """A copy of an assigner config with its class cost weighted ``weight``.

    Args:
        assigner (dict): ``HungarianAssigner`` config with ``match_costs``.
        weight (float): The new weight of its ``ClassificationCost``.

    Returns:
        dict: The copy; the other costs are unchanged.

    Raises:
        ValueError: ``match_costs`` holds no ``ClassificationCost``.
    """
    assigner = copy.deepcopy(assigner)
    costs = assigner.get('match_costs', [])
    if isinstance(costs, dict):
        costs = [costs]
        assigner['match_costs'] = costs
    found = False
    for cost in costs:
        kind = cost.get('type')
        # 'ClassificationCost', 'mmdet.ClassificationCost' or the class.
        name = kind.rsplit('.', 1)[-1] if isinstance(kind, str) else None
        if name == 'ClassificationCost' or (
                isinstance(kind, type)
                and issubclass(kind, ClassificationCost)):
            cost['weight'] = weight
            found = True
    if not found:
        raise ValueError(
            'query_class_cost needs a ClassificationCost in '
            f'train_cfg.assigner.match_costs, got {costs!r}')
    return assigner


@MODELS.register_module()
class ZeroShotMask2FormerHead(QueryEmbeddingMixin, Mask2FormerHead):
    """mmdet's Mask2Former head with class-embedding access.

    Takes the arguments of :class:`mmdet.models.Mask2FormerHead` and
    ``query_class_cost`` (:class:`QueryEmbeddingMixin`).
    """

    def predict(self,
                x: tuple[Tensor],
                batch_data_samples: SampleList,
                classifier: nn.Module | None = None
                ) -> tuple[Tensor, Tensor]:
        """Last-layer class logits and upsampled mask logits.

        Args:
            x (tuple[Tensor]): Multi-level features.
            batch_data_samples (list[DetDataSample]): Meta information.
            classifier (nn.Module, optional): Replaces ``cls_embed``.

        Returns:
            tuple: ``mask_cls_results`` (B, Q, K + 1) and
            ``mask_pred_results`` (B, Q, H, W) at the batch input size.
        """
        _, mask_preds, embeddings = self.forward_with_embeddings(
            x, batch_data_samples)
        img_shape = batch_data_samples[0].metainfo['batch_input_shape']
        mask_pred_results = F.interpolate(
            mask_preds[-1],
            size=(img_shape[0], img_shape[1]),
            mode='bilinear',
            align_corners=False)
        return self.classify(embeddings[-1], classifier), mask_pred_results


@MODELS.register_module()
class ZeroShotMask2FormerSegHead(QueryEmbeddingMixin, SegMask2FormerHead):
    """mmseg's Mask2Former head (semantic configs) with the same additions.

    Takes the arguments of :class:`mmseg.models.Mask2FormerHead` and
    ``query_class_cost`` (:class:`QueryEmbeddingMixin`).
    """

    def predict(self,
                x: tuple[Tensor],
                batch_img_metas: list[dict],
                test_cfg: dict,
                classifier: nn.Module | None = None) -> Tensor:
        """Semantic scores (B, K, H, W) as upstream, from ``classifier``."""
        batch_data_samples = [
            self._meta_only_sample(meta) for meta in batch_img_metas
        ]
        _, mask_preds, embeddings = self.forward_with_embeddings(
            x, batch_data_samples)
        mask_pred = mask_preds[-1]
        if 'pad_shape' in batch_img_metas[0]:
            size = batch_img_metas[0]['pad_shape']
        else:
            size = batch_img_metas[0]['img_shape']
        mask_pred = F.interpolate(
            mask_pred, size=size, mode='bilinear', align_corners=False)
        cls_score = F.softmax(
            self.classify(embeddings[-1], classifier), dim=-1)[..., :-1]
        return torch.einsum('bqc,bqhw->bchw', cls_score, mask_pred.sigmoid())

    @staticmethod
    def _meta_only_sample(meta: dict) -> SegDataSample:
        sample = SegDataSample()
        sample.set_metainfo(meta)
        return sample
