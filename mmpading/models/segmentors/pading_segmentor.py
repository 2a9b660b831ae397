"""PADing's two stages on mmseg's Mask2Former (zero-shot semantic)."""
from __future__ import annotations

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.structures import InstanceData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..detectors.pading import (
    LEARNER_DDP_PREFIX,
    _rename_prefix,
    _unwrap_learner_keys,
)
from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner


@MODELS.register_module()
class PADingSegmentor(EncoderDecoder):
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
        **kwargs: Arguments of :class:`mmseg.models.EncoderDecoder`; the
            decode head must be a ``ZeroShotMask2FormerSegHead``.
    """

    def __init__(self,
                 *args,
                 stage: int = 1,
                 zero_shot: OptConfigType = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if stage not in (1, 2):
            raise ValueError(f'stage must be 1 or 2, got {stage!r}')
        if not hasattr(self.decode_head, 'query_features'):
            raise TypeError(
                'PADingSegmentor needs decode_head.type='
                '\'ZeroShotMask2FormerSegHead\', got '
                f'{type(self.decode_head).__name__}')
        self.stage = stage
        self.stage1_checkpoint_loaded = False
        self.zero_shot = None
        if stage == 2:
            if zero_shot is None:
                raise ValueError(
                    'stage 2 needs `zero_shot`: the ZeroShotLearner config '
                    '(class names, split, embeddings, generator, ...)')
            zero_shot = dict(zero_shot)
            zero_shot.setdefault('type', 'ZeroShotLearner')
            num_names = len(zero_shot.get('class_names', ()))
            if num_names != self.num_classes:
                raise ValueError(
                    f'zero_shot.class_names lists {num_names} classes but '
                    f'decode_head.num_classes is {self.num_classes}')
            self.zero_shot = MODELS.build(zero_shot)
            self._freeze_segmenter()
            self._register_state_dict_hook(_unwrap_learner_keys)

    @property
    def learner(self) -> ZeroShotLearner:
        """The stage-2 learner, unwrapped from DDP if needed."""
        return unwrap_learner(self.zero_shot)

    # ------------------------------------------------------------ freezing
    def frozen_modules(self) -> list[nn.Module]:
        """The segmenter modules stage 2 keeps frozen."""
        modules = [self.backbone, self.decode_head]
        if self.with_neck:
            modules.append(self.neck)
        if self.with_auxiliary_head:
            modules.append(self.auxiliary_head)
        return modules

    def _freeze_segmenter(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> PADingSegmentor:
        """Keep the frozen segmenter in eval mode (BN, dropout) in stage 2."""
        super().train(mode)
        if self.stage == 2:
            for module in self.frozen_modules():
                module.eval()
        return self

    # ---------------------------------------------------------- checkpoint
    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Refuse a checkpoint whose classifier has another class count.

        Also reads learner keys saved from a DDP-wrapped learner
        (``zero_shot.module.*``).
        """
        _rename_prefix(state_dict, prefix + LEARNER_DDP_PREFIX,
                       prefix + 'zero_shot.')
        key = prefix + 'decode_head.cls_embed.weight'
        if key in state_dict:
            found = tuple(state_dict[key].shape)
            expected = tuple(self.decode_head.cls_embed.weight.shape)
            if found != expected:
                raise ValueError(
                    f'The checkpoint\'s {key} has shape {found} '
                    f'({found[0] - 1} classes + no-object) but this model '
                    f'expects {expected} ({expected[0] - 1} classes + '
                    'no-object). Load a stage-1 checkpoint trained on the '
                    'same class list, or fix decode_head.num_classes in '
                    'the config.')
            self.stage1_checkpoint_loaded = True
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _init_classifier_once(self) -> None:
        if bool(self.learner.classifier_initialised):
            return
        if not self.stage1_checkpoint_loaded:
            raise RuntimeError(
                'Stage 2 starts from a stage-1 checkpoint, but none was '
                'loaded: set `load_from` to the stage-1 checkpoint (or '
                '--resume a stage-2 run).')
        self.learner.init_classifier_from(self.decode_head.cls_embed)

    # ------------------------------------------------------------ training
    def instance_data_samples(
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

    def train_step(self, data: dict | tuple | list,
                   optim_wrapper: OptimWrapper | OptimWrapperDict
                   ) -> dict[str, Tensor]:
        """Stage 1: upstream step. Stage 2: generator then classifier step.

        Returns:
            dict[str, Tensor]: Logged values; stage-2 keys are prefixed
            ``gen.`` and ``cls.``.
        """
        if self.stage == 1:
            return super().train_step(data, optim_wrapper)
        if not isinstance(optim_wrapper, OptimWrapperDict) or \
                'classifier' not in optim_wrapper:
            raise TypeError(
                'Stage 2 needs an OptimWrapperDict with a `classifier` (and '
                'a `generator`) wrapper: set optim_wrapper.constructor='
                "'PADingOptimWrapperConstructor' in the config")
        data = self.data_preprocessor(data, True)
        with torch.no_grad():
            feats = self.extract_feat(data['inputs'])
            query_features = self.decode_head.query_features(
                feats, self.instance_data_samples(data['data_samples']))
        self._init_classifier_once()

        log_vars: dict[str, Tensor] = {}
        steps = ['classifier']
        if self.learner.generator is not None:
            steps.insert(0, 'generator')
        for step in steps:
            wrapper = optim_wrapper[step]
            with wrapper.optim_context(self.zero_shot):
                losses = self.zero_shot(query_features.embeddings,
                                        query_features.labels, step=step)
            parsed, step_log = self.parse_losses(losses)
            wrapper.update_params(parsed)
            prefix = 'gen' if step == 'generator' else 'cls'
            log_vars.update({f'{prefix}.{k}': v for k, v in step_log.items()})
        return log_vars

    # ----------------------------------------------------------- inference
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: list[dict]) -> Tensor:
        """Semantic scores (B, K, H, W); stage 2 scores the queries with
        the learner's classifier.

        Both mmseg inference modes (``whole`` and ``slide``) and
        :meth:`predict` go through this method.
        """
        x = self.extract_feat(inputs)
        if self.stage == 1:
            return self.decode_head.predict(x, batch_img_metas,
                                            self.test_cfg)
        return self.decode_head.predict(
            x, batch_img_metas, self.test_cfg,
            classifier=self.learner.classifier)
