"""PADing's two stages, shared by the mmdet and mmseg models."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

import torch
from mmengine.model.wrappers import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner
from .gradient_share import GradientShare, generator_gradient_share

if TYPE_CHECKING:
    from ..heads.zero_shot_mask2former_head import QueryFeatures

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


class TwoStageZeroShotMixin:
    """Stage 1 / stage 2 handling of a Mask2Former model.

    Stage 1 (``stage=1``) is the upstream model's ordinary training on seen
    classes. Stage 2 (``stage=2``) freezes the segmenter (eval mode, no
    gradients, whatever ``train()`` says) and, every iteration, alternates
    the generator step and the classifier step of :class:`ZeroShotLearner`
    through an :class:`~mmengine.optim.OptimWrapperDict` with the keys
    ``generator`` (absent without a generator) and ``classifier``. The
    learner's classifier starts as stage 1's ``cls_embed``, once.

    A subclass names the head that holds ``cls_embed`` and
    ``query_features`` (``zero_shot_head_name``), lists its frozen modules
    and may convert its data samples for the head's matching.

    Under mixed precision (``AmpOptimWrapper``, ``tools/train.py --amp``)
    the frozen segmenter's forward and the matching run inside the first
    step's ``optim_context`` (autocast), as the reference runs its whole
    stage-2 forward under ``autocast()`` (``engine_ours/train_loop.py:
    602-604``); ``segmenter_amp=False`` keeps them in full precision.
    Without AMP the context does nothing.

    On request (:meth:`request_gradient_share`, which
    :class:`~mmpading.engine.hooks.GradientShareHook` makes every N
    iterations) the next stage-2 step first measures each generator loss
    term's gradient norm on its batch (:func:`~mmpading.models.utils.
    gradient_share.generator_gradient_share`: same weights, same dropout
    masks as the step, nothing of the step changed);
    :meth:`pop_gradient_share` returns it. Steps without a request do no
    extra work.
    """

    #: Whether the frozen forward shares the learner's autocast context.
    segmenter_amp: bool = True
    #: Whether the next stage-2 step measures the gradient share.
    _gradient_share_requested: bool = False
    #: The last measurement, until popped.
    _gradient_share: GradientShare | None = None

    #: Attribute of the head with ``cls_embed`` and ``query_features``.
    zero_shot_head_name: str
    #: Config key that sets the class count, for error messages.
    class_count_keys: str

    def _init_two_stage(self, stage: int, zero_shot: dict | None,
                        num_classes: int,
                        segmenter_amp: bool = True) -> None:
        if stage not in (1, 2):
            raise ValueError(f'stage must be 1 or 2, got {stage!r}')
        head = self.zero_shot_head
        if not hasattr(head, 'query_features'):
            raise TypeError(
                f'{type(self).__name__} needs a head with class-embedding '
                f'access for {self.zero_shot_head_name} (ZeroShotMask2Former'
                f'Head or ZeroShotMask2FormerSegHead), got '
                f'{type(head).__name__}')
        self.stage = stage
        self.segmenter_amp = segmenter_amp
        self.stage1_checkpoint_loaded = False
        self.zero_shot = None
        if stage == 1:
            return
        if zero_shot is None:
            raise ValueError(
                'stage 2 needs `zero_shot`: the ZeroShotLearner config '
                '(class names, split, embeddings, generator, ...)')
        zero_shot = dict(zero_shot)
        zero_shot.setdefault('type', 'ZeroShotLearner')
        num_names = len(zero_shot.get('class_names', ()))
        if num_names != num_classes:
            raise ValueError(
                f'zero_shot.class_names lists {num_names} classes but '
                f'{self.class_count_keys} is {num_classes}')
        self.zero_shot = MODELS.build(zero_shot)
        self._freeze_segmenter()
        self._register_state_dict_hook(_unwrap_learner_keys)

    @property
    def zero_shot_head(self) -> nn.Module:
        return getattr(self, self.zero_shot_head_name)

    @property
    def learner(self) -> ZeroShotLearner:
        """The stage-2 learner, unwrapped from DDP if needed."""
        return unwrap_learner(self.zero_shot)

    # ------------------------------------------------------------ freezing
    def frozen_modules(self) -> list[nn.Module]:
        """The segmenter modules stage 2 keeps frozen."""
        raise NotImplementedError

    def _freeze_segmenter(self) -> None:
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> TwoStageZeroShotMixin:
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
        key = f'{prefix}{self.zero_shot_head_name}.cls_embed.weight'
        if key in state_dict:
            found = tuple(state_dict[key].shape)
            expected = tuple(self.zero_shot_head.cls_embed.weight.shape)
            if found != expected:
                raise ValueError(
                    f'The checkpoint\'s {key} has shape {found} '
                    f'({found[0] - 1} classes + no-object) but this model '
                    f'expects {expected} ({expected[0] - 1} classes + '
                    'no-object). Load a stage-1 checkpoint trained on the '
                    f'same class list, or fix {self.class_count_keys} in '
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
        self.learner.init_classifier_from(self.zero_shot_head.cls_embed)

    # ----------------------------------------------------------- inference
    def inference_classifier(self) -> nn.Module | None:
        """The classifier that scores the queries at inference.

        Returns:
            nn.Module | None: ``None`` in stage 1 (the head's
            ``cls_embed``); the learner's classifier in stage 2.

        Raises:
            RuntimeError: A stage-2 model whose classifier was never
                initialised (no stage-2 checkpoint loaded, no stage-2
                training): its predictions would be random.
        """
        if self.stage == 1:
            return None
        if not bool(self.learner.classifier_initialised):
            raise RuntimeError(
                f'This stage-2 {type(self).__name__} model\'s classifier '
                '(zero_shot.classifier) was never initialised: it is random '
                'and its predictions would be meaningless. Load a stage-2 '
                'checkpoint first (mmpading.apis.load_model(cfg, '
                "'work_dirs/<stage-2 config>/iter_N.pth') or mmengine's "
                'load_checkpoint), or train stage 2; to predict with stage '
                "1's classifier, build the model with stage=1.")
        return self.learner.classifier

    # ------------------------------------------------------------ training
    def matching_samples(self, data_samples: list) -> list:
        """Data samples in the form the head's matching reads."""
        return data_samples

    def frozen_query_features(
            self, data: dict,
            precision: AbstractContextManager | None = None
    ) -> QueryFeatures:
        """Stage 2's frozen forward: query embeddings and matched labels.

        Args:
            data (dict): A batch after ``data_preprocessor(data, True)``.
            precision (context manager, optional): The autocast context of
                the forward (the first step's ``optim_context`` under AMP).

        Returns:
            QueryFeatures: ``embeddings`` (B, Q, C) and ``labels`` (B, Q),
            K for no-object; computed without gradients.
        """
        with torch.no_grad(), precision or nullcontext():
            feats = self.extract_feat(data['inputs'])
            return self.zero_shot_head.query_features(
                feats, self.matching_samples(data['data_samples']))

    def request_gradient_share(self) -> None:
        """Measure the generator's gradient share in the next step."""
        self._gradient_share_requested = True

    def pop_gradient_share(self) -> GradientShare | None:
        """The last measurement (None if none since the last pop; also
        None for a batch without matched queries), then forget it."""
        share, self._gradient_share = self._gradient_share, None
        return share

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
        steps = ['classifier']
        if self.learner.generator is not None:
            steps.insert(0, 'generator')
        # The first step's autocast under AMP (self is no DDP module, so
        # the context adds no no_sync); a no-op otherwise.
        precision = optim_wrapper[steps[0]].optim_context(self) \
            if self.segmenter_amp else nullcontext()
        query_features = self.frozen_query_features(data, precision)
        self._init_classifier_once()
        if self._gradient_share_requested:
            self._gradient_share_requested = False
            if self.learner.generator is not None:
                # Before the generator step: the gradient it applies.
                self._gradient_share = generator_gradient_share(
                    self.learner, query_features.embeddings,
                    query_features.labels)

        # Under DDP the learner's losses cover the features of all ranks
        # (ZeroShotLearner.cross_rank_losses), as one process's over the
        # whole batch.
        cross_rank = is_model_wrapper(self.zero_shot)
        log_vars: dict[str, Tensor] = {}
        for step in steps:
            wrapper = optim_wrapper[step]
            with wrapper.optim_context(self.zero_shot):
                losses = self.zero_shot(
                    query_features.embeddings,
                    query_features.labels,
                    step=step,
                    cross_rank=cross_rank)
            parsed, step_log = self.parse_losses(losses)
            wrapper.update_params(parsed)
            prefix = 'gen' if step == 'generator' else 'cls'
            log_vars.update({f'{prefix}.{k}': v for k, v in step_log.items()})
        return log_vars
