"""Panoptic + instance + semantic post-processing from one model."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial

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
    ``semantic_on`` and ``semantic_logits`` (also keep the per-class
    scores; off by default, they are large).

    Args:
        seen_class_ids (Sequence[int], optional): Classes whose scores the
            calibration moves. Required when ``calibration_gamma`` is not 0.
        calibration_gamma (float): Subtracted from the probabilities of
            seen classes before post-processing (which renormalises them),
            favouring the unseen classes. A negative value is subtracted,
            as |γ|, from the unseen classes' probabilities instead (not the
            no-object class's), favouring the seen ones: the other half of
            a seen / unseen trade-off curve
            (``tools/analysis_tools/seen_unseen_tradeoff.py``). Adding to
            the seen probabilities would flatten them under the
            renormalisation and drop every segment below the score
            thresholds. Defaults to 0, the paper's setting, which leaves
            the logits untouched.
        **kwargs: Arguments of :class:`MaskFormerFusionHead`.
    """

    def __init__(self,
                 *args,
                 seen_class_ids: Sequence[int] | None = None,
                 calibration_gamma: float = 0.0,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if calibration_gamma != 0 and not seen_class_ids:
            raise ValueError('calibration_gamma != 0 needs seen_class_ids: '
                             'the classes whose scores it moves')
        self.calibration_gamma = calibration_gamma
        self.seen_class_ids = list(seen_class_ids or [])

    def calibrate(self, mask_cls: Tensor) -> Tensor:
        """Lower seen-class probabilities by ``calibration_gamma`` (when
        it is negative: unseen-class probabilities by its magnitude).

        Args:
            mask_cls (Tensor): Logits, shape (..., K + 1).

        Returns:
            Tensor: Log-probabilities after calibration (same shape), or
            the input itself when gamma is 0.
        """
        if self.calibration_gamma == 0:
            return mask_cls
        probs = F.softmax(mask_cls.float(), dim=-1)
        seen = torch.zeros(probs.shape[-1], dtype=torch.bool,
                           device=probs.device)
        seen[self.seen_class_ids] = True
        if self.calibration_gamma > 0:
            lowered = seen
        else:  # the unseen classes: neither seen nor no-object (the last)
            lowered = ~seen
            lowered[-1] = False
        probs[..., lowered] = probs[..., lowered] - abs(
            self.calibration_gamma)
        return probs.clamp_min(1e-8).log().to(mask_cls.dtype)

    def semantic_postprocess(self,
                             mask_cls: Tensor,
                             mask_pred: Tensor,
                             keep_logits: bool = True) -> PixelData:
        """Semantic segmentation of one image.

        Args:
            mask_cls (Tensor): Logits, shape (Q, K + 1).
            mask_pred (Tensor): Mask logits, shape (Q, H, W).
            keep_logits (bool): Also return the per-class scores (K x H x
                W floats: about 0.5 GB for 133 classes at 800 x 1216).

        Returns:
            PixelData: ``sem_seg`` (1, H, W) long class indices and, with
            ``keep_logits``, ``seg_logits`` (K, H, W) per-class scores.
        """
        cls_prob = F.softmax(mask_cls, dim=-1)[:, :-1]
        scores = torch.einsum('qc,qhw->chw', cls_prob, mask_pred.sigmoid())
        result = PixelData(sem_seg=scores.argmax(0, keepdim=True))
        if keep_logits:
            result.seg_logits = scores
        return result

    def predict(self,
                mask_cls_results: Tensor,
                mask_pred_results: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = False,
                **kwargs) -> list[dict]:
        """Upstream outputs plus ``sem_results`` when ``semantic_on``.

        The per-image loop is upstream's (which refuses ``semantic_on``):
        masks are cropped and resized once and shared by the panoptic,
        instance and semantic post-processing.

        Args:
            mask_cls_results (Tensor): Logits, shape (B, Q, K + 1).
            mask_pred_results (Tensor): Mask logits, shape (B, Q, H, W).
            batch_data_samples (list[DetDataSample]): Meta information.
            rescale (bool): Return results at the original image size.

        Returns:
            list[dict]: Per image, any of ``pan_results``, ``ins_results``
            and ``sem_results`` (``seg_logits`` only with
            ``test_cfg.semantic_logits=True``).
        """
        mask_cls_results = self.calibrate(mask_cls_results)
        outputs = {
            'pan_results': (self.test_cfg.get('panoptic_on', True),
                            self.panoptic_postprocess),
            'ins_results': (self.test_cfg.get('instance_on', False),
                            self.instance_postprocess),
            'sem_results': (self.test_cfg.get('semantic_on', False),
                            partial(self.semantic_postprocess,
                                    keep_logits=self.test_cfg.get(
                                        'semantic_logits', False))),
        }
        results = []
        for mask_cls, mask_pred, sample in zip(mask_cls_results,
                                               mask_pred_results,
                                               batch_data_samples):
            height, width = sample.metainfo['img_shape'][:2]
            mask_pred = mask_pred[:, :height, :width]
            if rescale:
                mask_pred = F.interpolate(
                    mask_pred[:, None],
                    size=sample.metainfo['ori_shape'][:2],
                    mode='bilinear',
                    align_corners=False)[:, 0]
            results.append({
                key: postprocess(mask_cls, mask_pred)
                for key, (enabled, postprocess) in outputs.items() if enabled
            })
        return results
