"""PADing's two stages on mmseg's Mask2Former (zero-shot semantic)."""
from __future__ import annotations

from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..utils.two_stage_mixin import TwoStageZeroShotMixin


@MODELS.register_module()
class PADingSegmentor(TwoStageZeroShotMixin, EncoderDecoder):
    """mmseg's Mask2Former segmentor trained in PADing's two stages.

    The semantic counterpart of :class:`~mmpading.models.PADing`. Stage 1
    (``stage=1``) is ordinary mmseg training on seen classes. Stage 2
    (``stage=2``) freezes the segmenter (backbone, neck, decode head and
    any auxiliary head: eval mode, no gradients) and, every iteration,
    alternates the generator step and the classifier step of
    :class:`ZeroShotLearner` through an
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
        **kwargs: Arguments of :class:`mmseg.models.EncoderDecoder`; the
            decode head must be a ``ZeroShotMask2FormerSegHead``.
    """

    zero_shot_head_name = 'decode_head'
    class_count_keys = 'decode_head.num_classes'

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
        modules = [self.backbone, self.decode_head]
        if self.with_neck:
            modules.append(self.neck)
        if self.with_auxiliary_head:
            modules.append(self.auxiliary_head)
        return modules

    # ------------------------------------------------------------ training
    def matching_samples(
            self, data_samples: SampleList) -> list[DetDataSample]:
        """mmdet-style samples with ``gt_instances``, one per class.

        The conversion of mmseg's ``Mask2FormerHead.loss``
        (``_seg_data_to_instance_data``: one mask per class present in
        ``gt_sem_seg``, the ignore index left out), as the mmdet-side
        matching of the head's ``query_features`` expects it.

        Args:
            data_samples (list[SegDataSample]): Samples with
                ``gt_sem_seg`` of shape (1, H, W).

        Returns:
            list[DetDataSample]: The same metainfo, ``gt_instances`` with
            ``labels`` (N, ) and ``masks`` (:class:`BitmapMasks`, N x H x
            W).
        """
        batch_gt_instances, _ = self.decode_head._seg_data_to_instance_data(
            data_samples)
        samples = []
        for data_sample, gt in zip(data_samples, batch_gt_instances):
            height, width = gt.masks.shape[-2:]
            masks = gt.masks.reshape(-1, height, width).bool()
            samples.append(
                DetDataSample(
                    metainfo=data_sample.metainfo,
                    gt_instances=InstanceData(
                        labels=gt.labels.long(),
                        masks=BitmapMasks(masks.cpu().numpy(), height,
                                          width))))
        return samples

    # ----------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: list[dict]) -> Tensor:
        """Semantic scores (B, K, H, W); stage 2 scores the queries with
        the learner's classifier.

        Both mmseg inference modes (``whole`` and ``slide``) and
        :meth:`predict` go through this method. A stage-2 model whose
        classifier was never initialised (no stage-2 checkpoint loaded)
        raises a ``RuntimeError``.
        """
        classifier = self.inference_classifier()
        x = self.extract_feat(inputs)
        if classifier is None:
            return self.decode_head.predict(x, batch_img_metas,
                                            self.test_cfg)
        return self.decode_head.predict(
            x, batch_img_metas, self.test_cfg, classifier=classifier)
