"""Panoptic + instance + semantic post-processing from one model."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmdet.models.seg_heads import MaskFormerFusionHead
from mmdet.structures import SampleList
from mmengine.structures import PixelData
from torch import Tensor

from mmpading.registry import MODELS


@MODELS.register_module()
class UniversalFusionHead(MaskFormerFusionHead):
    """mmdet's MaskFormer fusion head with semantic outputs and calibration.

    Panoptic and instance post-processing are upstream's. Semantic
    segmentation (missing upstream) follows Mask2Former: the per-pixel
    score of class k is the sum over queries of class probability times
    mask probability, and the label is the arg-max over classes.

    ``test_cfg`` keys: upstream's (``panoptic_on``, ``instance_on``,
    ``max_per_image``, ``object_mask_thr``, ``iou_thr``, ...) plus
    ``semantic_on``.

    Args:
        seen_class_ids (Sequence[int], optional): Classes whose scores the
            calibration lowers. Required when ``calibration_gamma`` > 0.
        calibration_gamma (float): Subtracted from the probabilities of
            seen classes before post-processing (which renormalises them).
            Defaults to 0, the paper's setting, which leaves the logits
            untouched.
        **kwargs: Arguments of :class:`MaskFormerFusionHead`.
    """

    def __init__(self,
                 *args,
                 seen_class_ids: Sequence[int] | None = None,
                 calibration_gamma: float = 0.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if calibration_gamma < 0:
            raise ValueError('calibration_gamma must be >= 0, got '
                             f'{calibration_gamma}')
        if calibration_gamma > 0 and not seen_class_ids:
            raise ValueError('calibration_gamma > 0 needs seen_class_ids: '
                             'the classes whose scores are lowered')
        self.calibration_gamma = calibration_gamma
        self.seen_class_ids = list(seen_class_ids or [])

    def calibrate(self, mask_cls: Tensor) -> Tensor:
        """Lower seen-class probabilities by ``calibration_gamma``.

        Args:
            mask_cls (Tensor): Logits, shape (..., K + 1).

        Returns:
            Tensor: Log-probabilities after calibration (same shape), or
            the input itself when gamma is 0.
        """
        if self.calibration_gamma == 0:
            return mask_cls
        probs = F.softmax(mask_cls.float(), dim=-1)
        seen = torch.as_tensor(self.seen_class_ids, device=probs.device)
        probs[..., seen] = probs[..., seen] - self.calibration_gamma
        return probs.clamp_min(1e-8).log().to(mask_cls.dtype)

    def semantic_postprocess(self, mask_cls: Tensor,
                             mask_pred: Tensor) -> PixelData:
        """Semantic segmentation of one image.

        Args:
            mask_cls (Tensor): Logits, shape (Q, K + 1).
            mask_pred (Tensor): Mask logits, shape (Q, H, W).

        Returns:
            PixelData: ``sem_seg`` (1, H, W) long class indices and
            ``seg_logits`` (K, H, W) per-class scores.
        """
        cls_prob = F.softmax(mask_cls, dim=-1)[:, :-1]
        scores = torch.einsum('qc,qhw->chw', cls_prob, mask_pred.sigmoid())
        return PixelData(
            sem_seg=scores.argmax(0, keepdim=True), seg_logits=scores)

    def predict(self,
                mask_cls_results: Tensor,
                mask_pred_results: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = False,
                **kwargs) -> list[dict]:
        """Upstream outputs plus ``sem_results`` when ``semantic_on``.

        Args:
            mask_cls_results (Tensor): Logits, shape (B, Q, K + 1).
            mask_pred_results (Tensor): Mask logits, shape (B, Q, H, W).
            batch_data_samples (list[DetDataSample]): Meta information.
            rescale (bool): Return results at the original image size.

        Returns:
            list[dict]: Per image, any of ``pan_results``, ``ins_results``
            and ``sem_results``.
        """
        mask_cls_results = self.calibrate(mask_cls_results)
        semantic_on = self.test_cfg.get('semantic_on', False)
        # Upstream refuses semantic_on; run it without and add our own.
        upstream_cfg = self.test_cfg
        self.test_cfg = {**upstream_cfg, 'semantic_on': False}
        try:
            results = super().predict(mask_cls_results, mask_pred_results,
                                      batch_data_samples, rescale=rescale)
        finally:
            self.test_cfg = upstream_cfg
        if not semantic_on:
            return results
        for result, mask_cls, mask_pred, sample in zip(
                results, mask_cls_results, mask_pred_results,
                batch_data_samples):
            height, width = sample.metainfo['img_shape'][:2]
            mask_pred = mask_pred[:, :height, :width]
            if rescale:
                mask_pred = F.interpolate(
                    mask_pred[:, None],
                    size=sample.metainfo['ori_shape'][:2],
                    mode='bilinear',
                    align_corners=False)[:, 0]
            result['sem_results'] = self.semantic_postprocess(
                mask_cls, mask_pred)
        return results
