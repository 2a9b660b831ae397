"""PADing: two-stage zero-shot universal segmentation on Mask2Former."""
from __future__ import annotations

import torch
from mmdet.models.detectors import Mask2Former
from mmdet.structures import SampleList
from mmdet.utils import OptConfigType
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner

# In stage 2, MMSeparateDistributedDataParallel wraps the learner in DDP;
# torch's state_dict() then names its entries zero_shot.module.*.
LEARNER_DDP_PREFIX = 'zero_shot.module.'


def _rename_prefix(state_dict: dict, old: str, new: str) -> None:
    """Rename the keys (and metadata entries) of ``state_dict`` in place."""
    for key in [key for key in state_dict if key.startswith(old)]:
        state_dict[new + key[len(old):]] = state_dict.pop(key)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        old_module = old[:-1]
        for key in [key for key in metadata
                    if key == old_module or key.startswith(old)]:
            metadata[new[:-1] + key[len(old_module):]] = metadata.pop(key)


def _unwrap_learner_keys(module: nn.Module, state_dict: dict, prefix: str,
                         local_metadata: dict) -> None:
    """Save the learner under the same keys with or without DDP.

    mmengine's Runner saves ``model.state_dict()``, where a DDP-wrapped
    child adds ``module.``; its loader unwraps every wrapper and expects the
    plain names, so a checkpoint of a distributed stage-2 run would neither
    resume nor load for testing.
    """
    _rename_prefix(state_dict, prefix + LEARNER_DDP_PREFIX,
                   prefix + 'zero_shot.')


@MODELS.register_module()
class PADing(Mask2Former):
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
        **kwargs: Arguments of :class:`mmdet.models.Mask2Former`; the
            panoptic head must be a ``ZeroShotMask2FormerHead``.
    """

    def __init__(self,
                 *args,
                 stage: int = 1,
                 zero_shot: OptConfigType = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if stage not in (1, 2):
            raise ValueError(f'stage must be 1 or 2, got {stage!r}')
        if not hasattr(self.panoptic_head, 'query_features'):
            raise TypeError(
                'PADing needs panoptic_head.type=\'ZeroShotMask2FormerHead\''
                f', got {type(self.panoptic_head).__name__}')
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
                    'the head has num_things_classes + num_stuff_classes = '
                    f'{self.num_classes}')
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
        modules = [self.backbone, self.panoptic_head]
        if self.with_neck:
            modules.append(self.neck)
        return modules

    def _freeze_segmenter(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> PADing:
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

        Also reads learner keys saved by an older version from a
        DDP-wrapped learner (``zero_shot.module.*``).
        """
        _rename_prefix(state_dict, prefix + LEARNER_DDP_PREFIX,
                       prefix + 'zero_shot.')
        key = prefix + 'panoptic_head.cls_embed.weight'
        if key in state_dict:
            found = tuple(state_dict[key].shape)
            expected = tuple(self.panoptic_head.cls_embed.weight.shape)
            if found != expected:
                raise ValueError(
                    f'The checkpoint\'s {key} has shape {found} '
                    f'({found[0] - 1} classes + no-object) but this model '
                    f'expects {expected} ({expected[0] - 1} classes + '
                    'no-object). Load a stage-1 checkpoint trained on the '
                    'same class list, or fix num_things_classes / '
                    'num_stuff_classes in the config.')
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
        self.learner.init_classifier_from(self.panoptic_head.cls_embed)

    # ------------------------------------------------------------ training
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
            query_features = self.panoptic_head.query_features(
                feats, data['data_samples'])
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
    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict panoptic / instance / semantic results.

        In stage 2 the learner's classifier scores the queries.
        """
        feats = self.extract_feat(batch_inputs)
        classifier = self.learner.classifier if self.stage == 2 else None
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
