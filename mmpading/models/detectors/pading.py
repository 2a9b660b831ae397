"""PADing's stage 2 on mmdet's Mask2Former (zero-shot panoptic / instance)."""
from __future__ import annotations

import torch
from mmdet.models.detectors import Mask2Former
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from mmengine.optim import OptimWrapperDict
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
    add_pred_to_datasamples,
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
class PADing(Mask2Former):
    """PADing's stage 2 on a frozen Mask2Former.

    Stage 1 is mmdet's own ``Mask2Former`` trained on seen classes; its
    checkpoint loads into this model unchanged (``load_from``). Here the
    segmenter (backbone, pixel decoder, transformer decoder,
    ``cls_embed``) is frozen: eval mode and no gradients, whatever
    ``train()`` says. Every iteration alternates the generator step and
    the classifier step of the :class:`ZeroShotLearner` ``zero_shot``;
    predictions use the learner's classifier instead of ``cls_embed``.

    Args:
        zero_shot (dict): :class:`ZeroShotLearner` config; its
            ``feat_dim`` defaults to the head's ``cls_embed.in_features``.
        query_class_cost (float, optional): Weight of the class cost of
            stage 2's Hungarian matching (mask and dice costs stay those
            of ``train_cfg.assigner``); None: the training assigner's.
            The reference: 5.0 (ZSP, ZSS), 2.0 (ZSI). Defaults to None.
        segmenter_amp (bool): Under AMP, run the frozen forward and the
            matching under autocast too, as the reference does; False: in
            full precision. Defaults to True.
        stage (int, optional): Accepted for configs of earlier versions:
            2 is ignored, 1 is refused (stage 1 is ``Mask2Former``).
        **kwargs: Arguments of :class:`mmdet.models.Mask2Former`.
    """

    def __init__(self,
                 *args,
                 zero_shot: OptConfigType = None,
                 query_class_cost: float | None = None,
                 segmenter_amp: bool = True,
                 stage: int | None = None,
                 **kwargs) -> None:
        check_stage_argument(stage, 'Mask2Former')
        super().__init__(*args, **kwargs)
        setup_stage2(self, self.panoptic_head, zero_shot, query_class_cost,
                     segmenter_amp, 'num_things_classes + num_stuff_classes')

    @property
    def learner(self) -> ZeroShotLearner:
        """The stage-2 learner, unwrapped from DDP if needed."""
        return unwrap_learner(self.zero_shot)

    @property
    def segmenter_head(self) -> nn.Module:
        """The frozen Mask2Former head whose queries stage 2 classifies."""
        return self.panoptic_head

    def train(self, mode: bool = True) -> PADing:
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
        initialise_classifier(self, self.panoptic_head.cls_embed)
        return train_learner_steps(self, query_features, optim_wrapper, steps)

    @torch.no_grad()
    def frozen_query_features(self, data: dict) -> QueryFeatures:
        """The frozen forward: last-layer class embeddings and labels.

        Args:
            data (dict): A batch after ``data_preprocessor(data, True)``.

        Returns:
            QueryFeatures: ``embeddings`` (B, Q, C) and ``labels`` (B, Q),
            K for unmatched queries; computed without gradients.
        """
        samples = data['data_samples']
        head = self.panoptic_head
        feats = self.extract_feat(data['inputs'])
        with record_class_embeddings(head.cls_embed) as embeddings:
            cls_scores, mask_preds = head(feats, samples)
        batch_gt_instances = head.preprocess_gt(
            [sample.gt_instances for sample in samples],
            [sample.gt_sem_seg if 'gt_sem_seg' in sample else None
             for sample in samples])
        labels = match_queries(head, cls_scores[-1], mask_preds[-1],
                               batch_gt_instances,
                               [sample.metainfo for sample in samples],
                               self.query_assigner)
        return QueryFeatures(embeddings[-1], labels, self.num_classes)

    # ----------------------------------------------------------- inference
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Upstream's prediction, the queries scored by the learner's
        classifier (refused while it is untrained)."""
        classifier = classifier_for_inference(self)
        with classify_with(self.panoptic_head.cls_embed, classifier):
            return super().predict(batch_inputs, batch_data_samples,
                                   rescale)

    def add_pred_to_datasample(self, data_samples: SampleList,
                               results_list: list[dict]) -> SampleList:
        """Upstream's, plus semantic results as ``pred_sem_seg``
        (:class:`~mmpading.models.UniversalFusionHead`)."""
        return add_pred_to_datasamples(data_samples, results_list)
