"""What PADing's two stage-2 models share: set-up, the learner's steps,
checkpoint keys.

:class:`~mmpading.models.PADing` (mmdet) and
:class:`~mmpading.models.PADingSegmentor` (mmseg) call these functions;
each model's ``train_step`` reads top-down:

1. ``data_preprocessor``;
2. the frozen segmenter's forward and the Hungarian matching
   (:func:`frozen_forward_precision` gives its autocast context);
3. :func:`train_learner_steps`: for the generator step, then the classifier
   step, the learner's losses and that optimizer's update.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext

from mmengine.model.wrappers import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import Tensor, nn

from mmpading.registry import MODELS

from ..learners.zero_shot_learner import ZeroShotLearner, unwrap_learner
from .gradient_share import generator_gradient_share
from .query_features import QueryFeatures, build_query_assigner

# In stage 2, MMSeparateDistributedDataParallel wraps the learner in DDP;
# torch's state_dict() then names its entries zero_shot.module.*.
LEARNER_DDP_PREFIX = 'zero_shot.module.'


# ---------------------------------------------------------------- set-up
def check_stage_argument(stage: int | None, stage1_type: str) -> None:
    """Refuse ``stage=1`` (stage 1 is upstream); accept ``stage=2``."""
    if stage is None:
        return
    if stage == 1:
        raise ValueError(
            f"stage=1: stage 1 is upstream's model; set type='{stage1_type}'"
            ' (PADing models are stage 2 only; drop `stage`)')
    if stage != 2:
        raise ValueError(f'stage must be 2 (or left out), got {stage!r}')
    warnings.warn('`stage=2` is no longer needed: PADing models are stage 2',
                  DeprecationWarning, stacklevel=3)


def build_learner(zero_shot: dict | None, num_classes: int,
                  feat_dim: int, class_count_keys: str) -> ZeroShotLearner:
    """Build the learner, checked against the segmenter it learns from.

    Args:
        zero_shot (dict): The :class:`ZeroShotLearner` config.
        num_classes (int): The segmenter's class count K.
        feat_dim (int): Width C of its class embeddings
            (``cls_embed.in_features``); the learner's ``feat_dim``
            defaults to it.
        class_count_keys (str): The config keys that set K, for errors.

    Raises:
        ValueError: No config, or one whose class list or ``feat_dim``
            does not fit the segmenter.
    """
    if zero_shot is None:
        raise ValueError(
            'a PADing stage-2 model needs `zero_shot`: the ZeroShotLearner '
            'config (class embeddings, generator, ...)')
    zero_shot = dict(zero_shot)
    zero_shot.setdefault('type', 'ZeroShotLearner')
    if zero_shot.get('class_names') is not None and \
            len(zero_shot['class_names']) != num_classes:
        raise ValueError(
            f'zero_shot.class_names lists {len(zero_shot["class_names"])} '
            f'classes but {class_count_keys} is {num_classes}')
    if zero_shot.get('num_classes') is None:
        zero_shot['num_classes'] = num_classes
    elif zero_shot['num_classes'] != num_classes:
        raise ValueError(
            f'zero_shot.num_classes is {zero_shot["num_classes"]} but '
            f'{class_count_keys} is {num_classes}: drop '
            'zero_shot.num_classes, the model sets it')
    if zero_shot.get('feat_dim') is None:
        zero_shot['feat_dim'] = feat_dim
    elif zero_shot['feat_dim'] != feat_dim:
        raise ValueError(
            f'zero_shot.feat_dim is {zero_shot["feat_dim"]} but the head\'s '
            f'class embeddings are {feat_dim}-d (cls_embed.in_features): '
            'drop zero_shot.feat_dim, the model sets it')
    return MODELS.build(zero_shot)


def setup_stage2(model: nn.Module, head: nn.Module, zero_shot: dict | None,
                 query_class_cost: float | None, segmenter_amp: bool,
                 class_count_keys: str) -> None:
    """What a stage-2 model adds to the stage-1 model it was built as.

    Sets ``model.query_assigner`` (stage 2's matching), ``segmenter_amp``
    and the learner ``model.zero_shot``; freezes every other child and
    registers the checkpoint hooks (:func:`register_checkpoint_hooks`).

    Args:
        model (nn.Module): The stage-2 model, its upstream parts built.
        head (nn.Module): Its Mask2Former head (``cls_embed``, ``train_cfg``).
        zero_shot (dict): The :class:`ZeroShotLearner` config.
        query_class_cost (float, optional): The class cost of stage 2's
            matching; None: the head's ``query_class_cost`` if it has one
            (configs of earlier versions set it there), else the training
            assigner's.
        segmenter_amp (bool): Whether the frozen forward runs under AMP.
        class_count_keys (str): The config keys that set K, for errors.
    """
    if query_class_cost is None:
        query_class_cost = getattr(head, 'query_class_cost', None)
    model.query_assigner = build_query_assigner(head.train_cfg,
                                                query_class_cost)
    model.segmenter_amp = segmenter_amp
    model.zero_shot = build_learner(zero_shot, model.num_classes,
                                    head.cls_embed.in_features,
                                    class_count_keys)
    freeze_all_but(model, trainable=model.zero_shot)
    head_name = next(name for name, child in model.named_children()
                     if child is head)
    register_checkpoint_hooks(model, head.cls_embed,
                              f'{head_name}.cls_embed.weight',
                              class_count_keys)


def set_dataset_meta(model: nn.Module, dataset_meta: Mapping) -> None:
    """Give a model its data set's metainfo, as mmdet's ``init_detector``
    does (``model.dataset_meta``); a stage-2 model's learner takes the
    classes and the split from it (:meth:`ZeroShotLearner.set_dataset_meta`).

    Args:
        model (nn.Module): Any model, wrapped or not.
        dataset_meta (Mapping): The data set's ``metainfo``.
    """
    if is_model_wrapper(model):
        model = model.module
    model.dataset_meta = dict(dataset_meta)
    learner = getattr(model, 'zero_shot', None)
    if learner is not None:
        unwrap_learner(learner).set_dataset_meta(dataset_meta)


def freeze_all_but(model: nn.Module, trainable: nn.Module) -> None:
    """Eval mode and no gradients for every child but ``trainable``."""
    for child in model.children():
        if child is not trainable:
            child.eval()
            child.requires_grad_(False)


def keep_frozen_in_eval(model: nn.Module, trainable: nn.Module) -> None:
    """After ``train()``: the frozen children back to eval (BN, dropout)."""
    for child in model.children():
        if child is not trainable:
            child.eval()


# ------------------------------------------------------------ checkpoint
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


def register_checkpoint_hooks(model: nn.Module, cls_embed: nn.Linear,
                              cls_embed_key: str,
                              class_count_keys: str) -> None:
    """Checkpoint keys that do not depend on DDP, and a class-count check.

    mmengine's Runner saves ``model.state_dict()``, where the DDP-wrapped
    learner adds ``module.``; its loader unwraps every wrapper and expects
    the plain names. The hooks save and load ``zero_shot.*`` either way.
    Loading also refuses a ``cls_embed`` of another class count and sets
    ``model.stage1_checkpoint_loaded`` when the segmenter's weights came
    in (stage 2 starts from them).

    Args:
        model (nn.Module): The stage-2 model, with a ``zero_shot`` learner.
        cls_embed (nn.Linear): The segmenter head's classification layer.
        cls_embed_key (str): Its key in the model's state dict, e.g.
            ``'panoptic_head.cls_embed.weight'``.
        class_count_keys (str): The config keys that set K, for errors.
    """
    model.stage1_checkpoint_loaded = False

    def save_plain_keys(module, state_dict, prefix, local_metadata) -> None:
        _rename_prefix(state_dict, prefix + LEARNER_DDP_PREFIX,
                       prefix + 'zero_shot.')

    def check_and_unwrap(module, state_dict, prefix, local_metadata, strict,
                         missing_keys, unexpected_keys, error_msgs) -> None:
        _rename_prefix(state_dict, prefix + LEARNER_DDP_PREFIX,
                       prefix + 'zero_shot.')
        key = prefix + cls_embed_key
        if key not in state_dict:
            return
        found = tuple(state_dict[key].shape)
        expected = tuple(cls_embed.weight.shape)
        if found != expected:
            raise ValueError(
                f'The checkpoint\'s {key} has shape {found} '
                f'({found[0] - 1} classes + no-object) but this model '
                f'expects {expected} ({expected[0] - 1} classes + '
                'no-object). Load a stage-1 checkpoint trained on the same '
                f'class list, or fix {class_count_keys} in the config.')
        module.stage1_checkpoint_loaded = True

    model._register_state_dict_hook(save_plain_keys)
    model._register_load_state_dict_pre_hook(check_and_unwrap,
                                             with_module=True)


# -------------------------------------------------------------- training
def stage2_optim_wrappers(optim_wrapper: OptimWrapperDict,
                          learner: ZeroShotLearner) -> list[str]:
    """The learner's steps in order, checked against ``optim_wrapper``.

    Returns:
        list[str]: ``['generator', 'classifier']``, or ``['classifier']``
        for a learner without a generator.
    """
    if not isinstance(optim_wrapper, OptimWrapperDict) or \
            'classifier' not in optim_wrapper:
        raise TypeError(
            'Stage 2 needs an OptimWrapperDict with a `classifier` (and a '
            '`generator`) wrapper: set optim_wrapper.constructor='
            "'PADingOptimWrapperConstructor' in the config")
    steps = ['classifier']
    if learner.generator is not None:
        steps.insert(0, 'generator')
    return steps


def frozen_forward_precision(model: nn.Module,
                             optim_wrapper: OptimWrapperDict,
                             first_step: str,
                             enabled: bool) -> AbstractContextManager:
    """The autocast context of the frozen forward: the first step's.

    The reference runs its whole stage-2 forward under ``autocast()``
    (``engine_ours/train_loop.py:602-604``); without AMP the context does
    nothing. ``model`` is no DDP module, so the context adds no
    ``no_sync``.
    """
    if not enabled:
        return nullcontext()
    return optim_wrapper[first_step].optim_context(model)


def initialise_classifier(model: nn.Module, cls_embed: nn.Linear) -> None:
    """Copy stage 1's ``cls_embed`` into the learner's classifier, once.

    Raises:
        RuntimeError: The classifier is not initialised yet and no
            stage-1 checkpoint was loaded.
    """
    learner = model.learner
    if bool(learner.classifier_initialised):
        return
    if not model.stage1_checkpoint_loaded:
        raise RuntimeError(
            'Stage 2 starts from a stage-1 checkpoint, but none was '
            'loaded: set `load_from` to the stage-1 checkpoint (or --resume '
            'a stage-2 run).')
    learner.init_classifier_from(cls_embed)


def train_learner_steps(model: nn.Module, query_features: QueryFeatures,
                        optim_wrapper: OptimWrapperDict,
                        steps: list[str]) -> dict[str, Tensor]:
    """The generator step, then the classifier step, on one batch.

    Each step: the learner's losses on the frozen query features (under
    that optimizer's context: autocast under AMP, DDP's ``no_sync`` while
    accumulating), then that optimizer's update. When the learner was asked
    to (:meth:`ZeroShotLearner.request_gradient_share`), the gradient
    share of each generator loss term is measured first, on the same
    weights and dropout masks, changing nothing of the step.

    Args:
        model (nn.Module): The stage-2 model (``zero_shot``, possibly
            DDP-wrapped, and ``parse_losses``).
        query_features (QueryFeatures): Frozen embeddings (B, Q, C) and
            matched labels (B, Q).
        optim_wrapper (OptimWrapperDict): ``generator`` and
            ``classifier``.
        steps (list[str]): From :func:`stage2_optim_wrappers`.

    Returns:
        dict[str, Tensor]: Logged values, prefixed ``gen.`` and ``cls.``.
    """
    learner = unwrap_learner(model.zero_shot)
    embeddings, labels = query_features.embeddings, query_features.labels
    if learner.gradient_share_requested:
        learner.gradient_share_requested = False
        if learner.generator is not None:
            learner.gradient_share = generator_gradient_share(
                learner, embeddings, labels)
    # Under DDP the learner's losses cover the features of all ranks
    # (ZeroShotLearner.cross_rank_losses), as one process's over the whole
    # batch.
    cross_rank = is_model_wrapper(model.zero_shot)
    log_vars: dict[str, Tensor] = {}
    for step in steps:
        wrapper = optim_wrapper[step]
        with wrapper.optim_context(model.zero_shot):
            losses = model.zero_shot(
                embeddings, labels, step=step, cross_rank=cross_rank)
        loss, step_log = model.parse_losses(losses)
        wrapper.update_params(loss)
        prefix = 'gen' if step == 'generator' else 'cls'
        log_vars.update({f'{prefix}.{k}': v for k, v in step_log.items()})
    return log_vars


def classifier_for_inference(model: nn.Module) -> nn.Module:
    """The learner's classifier, refused while it is still random.

    Raises:
        RuntimeError: No stage-2 checkpoint loaded and no stage-2
            training: the predictions would be meaningless.
    """
    learner = model.learner
    if getattr(learner.classifier, 'needs_class_semantic_embeddings', False):
        # Its class weights are the embeddings of the data set's classes.
        learner.require_classes()
    if not bool(learner.classifier_initialised):
        raise RuntimeError(
            f'This stage-2 {type(model).__name__} model\'s classifier '
            '(zero_shot.classifier) was never initialised: it is random and '
            'its predictions would be meaningless. Load a stage-2 '
            'checkpoint first (mmpading.apis.load_model(cfg, '
            "'work_dirs/<stage-2 config>/iter_N.pth') or mmengine's "
            'load_checkpoint), or train stage 2; to predict with stage 1\'s '
            "classifier, build the stage-1 model (type='Mask2Former' or "
            "'EncoderDecoder').")
    return learner.classifier


def add_pred_to_datasamples(data_samples: list, results_list: list[dict]
                            ) -> list:
    """Upstream's ``add_pred_to_datasample``, plus semantic results.

    Args:
        data_samples (list[DetDataSample]): One per image.
        results_list (list[dict]): The fusion head's, with
            ``pan_results``, ``ins_results`` and (UniversalFusionHead)
            ``sem_results`` as its ``test_cfg`` asks.
    """
    for data_sample, result in zip(data_samples, results_list):
        if 'pan_results' in result:
            data_sample.pred_panoptic_seg = result['pan_results']
        if 'ins_results' in result:
            data_sample.pred_instances = result['ins_results']
        if 'sem_results' in result:
            data_sample.pred_sem_seg = result['sem_results']
    return data_samples
