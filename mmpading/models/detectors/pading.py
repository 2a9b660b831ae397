"""PADing: two-stage zero-shot universal segmentation on Mask2Former."""
from __future__ import annotations

from mmdet.models.detectors import Mask2Former
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..utils.two_stage_mixin import TwoStageZeroShotMixin


@MODELS.register_module()
class PADing(TwoStageZeroShotMixin, Mask2Former):
    """Mask2Former trained in PADing's two stages.

    Stage 1 (``stage=1``) is ordinary supervised Mask2Former training on
    seen classes. Stage 2 (``stage=2``) freezes the segmenter (backbone,
    pixel decoder, transformer decoder and ``cls_embed``: eval mode, no
    gradients) and, every iteration, alternates the generator step and the
    classifier step of :class:`ZeroShotLearner` through an
    :class:`~mmengine.optim.OptimWrapperDict` with the keys ``generator``
    (absent without a generator) and ``classifier``. Predictions then use
    the learner's classifier instead of ``cls_embed``.

    Args:
        stage (int): 1 or 2. Defaults to 1.
        zero_shot (dict, optional): :class:`ZeroShotLearner` config;
            required in stage 2.
        segmenter_amp (bool): Under AMP, run stage 2's frozen forward and
            matching under autocast too, as the reference does
            (:class:`TwoStageZeroShotMixin`); False: in full precision.
            Defaults to True.
        **kwargs: Arguments of :class:`mmdet.models.Mask2Former`; the
            panoptic head must be a ``ZeroShotMask2FormerHead`` (its
            ``query_class_cost`` sets stage 2's matching class cost).
    """

    zero_shot_head_name = 'panoptic_head'
    class_count_keys = 'num_things_classes + num_stuff_classes'

    def __init__(self,
                 *args,
                 stage: int = 1,
                 zero_shot: OptConfigType = None,
                 segmenter_amp: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_two_stage(stage, zero_shot, self.num_classes,
                             segmenter_amp=segmenter_amp)

    def frozen_modules(self) -> list[nn.Module]:
        """The segmenter modules stage 2 keeps frozen."""
        modules = [self.backbone, self.panoptic_head]
        if self.with_neck:
            modules.append(self.neck)
        return modules

    # ----------------------------------------------------------- inference
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict panoptic / instance / semantic results.

        In stage 2 the learner's classifier scores the queries; a stage-2
        model whose classifier was never initialised (no stage-2
        checkpoint loaded) raises a ``RuntimeError``.
        """
        classifier = self.inference_classifier()
        feats = self.extract_feat(batch_inputs)
        mask_cls, mask_pred = self.panoptic_head.predict(
            feats, batch_data_samples, classifier=classifier)
        results_list = self.panoptic_fusion_head.predict(
            mask_cls, mask_pred, batch_data_samples, rescale=rescale)
        return self.add_pred_to_datasample(batch_data_samples, results_list)

    def add_pred_to_datasample(self, data_samples: SampleList,
                               results_list: list[dict]) -> SampleList:
        """Upstream's, plus semantic results as ``pred_sem_seg``."""
        for data_sample, result in zip(data_samples, results_list):
            if 'pan_results' in result:
                data_sample.pred_panoptic_seg = result['pan_results']
            if 'ins_results' in result:
                data_sample.pred_instances = result['ins_results']
            if 'sem_results' in result:
                data_sample.pred_sem_seg = result['sem_results']
        return data_samples
