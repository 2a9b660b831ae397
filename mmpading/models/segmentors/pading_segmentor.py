"""PADing's stage 2 on mmseg's Mask2Former (zero-shot semantic)."""
from __future__ import annotations

import torch
from mmengine.optim import OptimWrapperDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptConfigType
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner
from ..utils.query_features import (
    QueryFeatures,
    classify_with,
    match_queries,
    record_class_embeddings,
)
from ..utils.stage2 import (
    check_stage_argument,
    classifier_for_inference,
    frozen_forward_precision,
    initialise_classifier,
    keep_frozen_in_eval,
    setup_stage2,
    stage2_optim_wrappers,
    train_learner_steps,
)


@MODELS.register_module()
class PADingSegmentor(EncoderDecoder):
    """PADing's stage 2 on a frozen mmseg Mask2Former segmentor.

    The semantic counterpart of :class:`~mmpading.models.PADing`. Stage 1
    is mmseg's own ``EncoderDecoder`` with a ``Mask2FormerHead`` trained
    on seen classes; its checkpoint loads into this model unchanged. Here
    the segmenter (backbone, neck, decode head, auxiliary heads) is
    frozen; every iteration alternates the generator step and the
    classifier step of the :class:`ZeroShotLearner` ``zero_shot``, and
    predictions use the learner's classifier instead of ``cls_embed``.

    Args:
        zero_shot (dict): :class:`ZeroShotLearner` config; its
            ``feat_dim`` defaults to the head's ``cls_embed.in_features``.
        query_class_cost (float, optional): Weight of the class cost of
            stage 2's Hungarian matching; None: the training assigner's.
            The reference: 5.0 for ZSS. Defaults to None.
        segmenter_amp (bool): Under AMP, run the frozen forward and the
            matching under autocast too, as the reference does. Defaults
            to True.
        stage (int, optional): Accepted for configs of earlier versions:
            2 is ignored, 1 is refused (stage 1 is ``EncoderDecoder``).
        **kwargs: Arguments of :class:`mmseg.models.EncoderDecoder`; the
            decode head is a (mmseg) ``Mask2FormerHead``.
    """

    def __init__(self,
                 *args,
                 zero_shot: OptConfigType = None,
                 query_class_cost: float | None = None,
                 segmenter_amp: bool = True,
                 stage: int | None = None,
                 **kwargs) -> None:
        check_stage_argument(stage, 'EncoderDecoder')
        super().__init__(*args, **kwargs)
        head = self.decode_head
        if not hasattr(head, 'cls_embed'):
            raise TypeError(
                'PADingSegmentor needs a Mask2Former decode head (mmseg '
                f'Mask2FormerHead), got {type(head).__name__}')
        setup_stage2(self, head, zero_shot, query_class_cost, segmenter_amp,
                     'decode_head.num_classes')

    @property
    def learner(self) -> ZeroShotLearner:
        """The stage-2 learner, unwrapped from DDP if needed."""
        return unwrap_learner(self.zero_shot)

    @property
    def segmenter_head(self) -> nn.Module:
        """The frozen Mask2Former head whose queries stage 2 classifies."""
        return self.decode_head

    def train(self, mode: bool = True) -> PADingSegmentor:
        """Train the learner; the frozen segmenter stays in eval mode."""
        super().train(mode)
        keep_frozen_in_eval(self, trainable=self.zero_shot)
        return self

    # ------------------------------------------------------------ training
    def train_step(self, data: dict | tuple | list,
                   optim_wrapper: OptimWrapperDict) -> dict[str, Tensor]:
        """One stage-2 iteration: frozen forward, then the learner's steps.

        Returns:
            dict[str, Tensor]: Logged values, prefixed ``gen.`` and
            ``cls.``.
        """
        steps = stage2_optim_wrappers(optim_wrapper, self.learner)
        data = self.data_preprocessor(data, True)
        with frozen_forward_precision(self, optim_wrapper, steps[0],
                                      self.segmenter_amp):
            query_features = self.frozen_query_features(data)
        initialise_classifier(self, self.decode_head.cls_embed)
        return train_learner_steps(self, query_features, optim_wrapper, steps)

    @torch.no_grad()
    def frozen_query_features(self, data: dict) -> QueryFeatures:
        """The frozen forward: last-layer class embeddings and labels.

        The ground truth is mmseg's own conversion of ``gt_sem_seg`` (one
        mask per class present, the ignore index left out), as its
        ``Mask2FormerHead.loss`` makes it.

        Args:
            data (dict): A batch after ``data_preprocessor(data, True)``.

        Returns:
            QueryFeatures: ``embeddings`` (B, Q, C) and ``labels`` (B, Q),
            K for unmatched queries; computed without gradients.
        """
        samples = data['data_samples']
        head = self.decode_head
        feats = self.extract_feat(data['inputs'])
        batch_gt_instances, batch_img_metas = \
            head._seg_data_to_instance_data(samples)
        with record_class_embeddings(head.cls_embed) as embeddings:
            cls_scores, mask_preds = head(feats, samples)
        labels = match_queries(head, cls_scores[-1], mask_preds[-1],
                               batch_gt_instances, batch_img_metas,
                               self.query_assigner)
        return QueryFeatures(embeddings[-1], labels, self.num_classes)

    # ----------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: list[dict]) -> Tensor:
        """Upstream's semantic scores (B, K, H, W), the queries scored by
        the learner's classifier (refused while it is untrained).

        Both mmseg inference modes (``whole`` and ``slide``) and
        :meth:`predict` go through this method.
        """
        classifier = classifier_for_inference(self)
        with classify_with(self.decode_head.cls_embed, classifier):
            return super().encode_decode(inputs, batch_img_metas)
