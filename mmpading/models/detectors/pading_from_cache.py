"""PADing's stage 2 on cached frozen query features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from torch import Tensor, nn

from mmpading.datasets.feature_cache import (
    load_cls_embed,
    load_complete_manifest,
)
from mmpading.registry import MODELS

from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner
from ..utils.query_features import QueryFeatures
from ..utils.stage2 import (
    add_pred_to_datasamples,
    build_learner,
    classifier_for_inference,
    freeze_all_but,
    initialise_classifier,
    keep_frozen_in_eval,
    register_checkpoint_hooks,
    stage2_optim_wrappers,
    train_learner_steps,
)


@MODELS.register_module()
class PADingFromCache(BaseModel):
    """Stage 2 (:class:`~mmpading.models.PADing`) without the segmenter.

    The frozen segmenter's forward and matching give the same query
    features for the same augmented image, whatever the learner does;
    a feature cache (:mod:`mmpading.datasets.feature_cache`) holds them,
    and this model trains the same learner on them with the same steps:
    ``train_step`` reads a batch of cached rows, starts the classifier from
    stage 1's ``cls_embed`` (kept in the cache) once, and runs
    :func:`~mmpading.models.utils.stage2.train_learner_steps`.

    Evaluation (``predict``) reads the cached validation outputs
    (:class:`~mmpading.datasets.CachedSegmenterOutputDataset`): the
    classifier scores the cached class embeddings, the cached mask logits
    are upsampled to the input size as upstream's head does, and the
    stage-2 config's fusion head (``UniversalFusionHead``) post-processes
    both into panoptic, instance and semantic results, as
    ``PADing.predict`` does.

    Args:
        cache_dir (str): A finished feature cache.
        zero_shot (dict): The :class:`ZeroShotLearner` config, as in the
            stage-2 config (``num_classes`` and ``feat_dim`` come from the
            cache).
        panoptic_fusion_head (dict, optional): The stage-2 config's fusion
            head, for evaluation.
        test_cfg (dict, optional): The stage-2 config's ``test_cfg``.
        data_preprocessor (dict, optional): Defaults to mmengine's
            ``BaseDataPreprocessor`` (moves the batch to the device).
        num_classes (int, optional): The model's class count K', when it
            is not the cache's K: a model whose class set was extended
            after training (:func:`mmpading.apis.class_extension.
            add_classes`), evaluated on the cache's validation outputs
            (they do not depend on the classes). Such a model only
            predicts; its ``cls_embed`` comes from its checkpoint. None
            (the default): the cache's.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 cache_dir: str,
                 zero_shot: dict,
                 panoptic_fusion_head: dict | None = None,
                 test_cfg: dict | None = None,
                 data_preprocessor: dict | None = None,
                 num_classes: int | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor
            or dict(type='BaseDataPreprocessor'),
            init_cfg=init_cfg)
        manifest = load_complete_manifest(cache_dir)
        self.cache_num_classes = manifest.num_classes
        self.num_classes = num_classes or manifest.num_classes
        self.cls_embed = nn.Linear(manifest.feat_dim, self.num_classes + 1)
        if self.num_classes == manifest.num_classes:
            weight, bias = load_cls_embed(cache_dir)
            with torch.no_grad():
                self.cls_embed.weight.copy_(weight)
                self.cls_embed.bias.copy_(bias)
        self.zero_shot = build_learner(zero_shot, self.num_classes,
                                       manifest.feat_dim,
                                       "the feature cache's num_classes")
        self.panoptic_fusion_head = None
        if panoptic_fusion_head is not None:
            self.panoptic_fusion_head = MODELS.build(
                dict(panoptic_fusion_head, test_cfg=test_cfg))
        freeze_all_but(self, trainable=self.zero_shot)
        register_checkpoint_hooks(self, self.cls_embed, 'cls_embed.weight',
                                  "the feature cache's num_classes")
        # Stage 1's cls_embed came with the cache.
        self.stage1_checkpoint_loaded = True

    @property
    def learner(self) -> ZeroShotLearner:
        """The stage-2 learner, unwrapped from DDP if needed."""
        return unwrap_learner(self.zero_shot)

    def train(self, mode: bool = True) -> PADingFromCache:
        """Train the learner; ``cls_embed`` stays frozen."""
        super().train(mode)
        keep_frozen_in_eval(self, trainable=self.zero_shot)
        return self

    def train_step(self, data: dict,
                   optim_wrapper: OptimWrapperDict) -> dict[str, Tensor]:
        """One stage-2 iteration on cached rows (``PADing.train_step``
        with the frozen forward read from the cache).

        Args:
            data (dict): ``embeddings`` (B, Q, C) and ``labels`` (B, Q), as
                ``default_collate`` stacks :class:`CachedQueryFeatureDataset`
                items.
            optim_wrapper (OptimWrapperDict): ``generator`` and
                ``classifier``.

        Returns:
            dict[str, Tensor]: Logged values, prefixed ``gen.`` and
            ``cls.``.
        """
        if self.num_classes != self.cache_num_classes:
            raise ValueError(
                f'PADingFromCache: a model of {self.num_classes} classes '
                f'cannot train on a cache of {self.cache_num_classes} '
                "classes' labels (num_classes differs from the cache's: "
                'such a model only evaluates); train from a cache of this '
                'class set')
        steps = stage2_optim_wrappers(optim_wrapper, self.learner)
        data = self.data_preprocessor(data, True)
        query_features = QueryFeatures(data['embeddings'], data['labels'],
                                       self.num_classes)
        initialise_classifier(self, self.cls_embed)
        return train_learner_steps(self, query_features, optim_wrapper, steps)

    def forward(self,
                embeddings: list[Tensor] | Tensor,
                mask_logits: list[Tensor] | Tensor | None = None,
                data_samples: list | None = None,
                mode: str = 'predict') -> list:
        """Predictions from cached validation outputs (``mode='predict'``;
        training runs through :meth:`train_step`)."""
        if mode != 'predict':
            raise ValueError(f"PADingFromCache: mode {mode!r}; only "
                             "'predict' (training: train_step)")
        return self.predict(embeddings, mask_logits, data_samples)

    @torch.no_grad()
    def predict(self, embeddings: list[Tensor] | Tensor,
                mask_logits: list[Tensor] | Tensor,
                data_samples: list) -> list:
        """``PADing.predict`` on cached segmenter outputs.

        Args:
            embeddings (list[Tensor] | Tensor): Class embeddings, (Q, C)
                per image.
            mask_logits (list[Tensor] | Tensor): Mask logits at the head's
                output resolution, (Q, h, w) per image.
            data_samples (list[DetDataSample]): With ``batch_input_shape``.

        Returns:
            list[DetDataSample]: With ``pred_panoptic_seg``,
            ``pred_instances`` and ``pred_sem_seg`` as the fusion head's
            ``test_cfg`` asks.
        """
        if self.panoptic_fusion_head is None:
            raise RuntimeError(
                'PADingFromCache was built without panoptic_fusion_head: '
                'give the stage-2 config\'s to evaluate')
        classifier = classifier_for_inference(self)
        embeddings = torch.stack(list(embeddings)) if isinstance(
            embeddings, (list, tuple)) else embeddings
        mask_logits = torch.stack(list(mask_logits)) if isinstance(
            mask_logits, (list, tuple)) else mask_logits
        mask_cls = classifier(embeddings)
        # As upstream's MaskFormerHead.predict: to the padded input size.
        input_shape = data_samples[0].metainfo['batch_input_shape']
        mask_pred = F.interpolate(mask_logits, size=tuple(input_shape),
                                  mode='bilinear', align_corners=False)
        results = self.panoptic_fusion_head.predict(
            mask_cls, mask_pred, data_samples, rescale=True)
        return add_pred_to_datasamples(data_samples, results)
