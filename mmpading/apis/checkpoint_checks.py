"""Does a checkpoint fit the stage of a config? Checked before any work.

PADing's two stages save different checkpoints: stage 1 the segmenter,
stage 2 the segmenter plus the learner (``zero_shot.*``: classifier,
generator, ...). mmengine loads either into either model non-strictly, so
a mix-up runs on silently: a stage-2 config tested with a stage-1
checkpoint evaluates a random classifier (all metrics 0, exit 0), and
``--resume`` of a stage-2 run from a stage-1 checkpoint fails deep in
mmengine's optimizer loading. :func:`check_checkpoint_fits` is the one
check ``tools/train.py``, ``tools/test.py`` and
:func:`mmpading.apis.load_model` use.
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass

from mmengine.config import Config

from mmpading.utils.compat import load_from_local
from mmpading.utils.config_utils import cwd_note

LEARNER_PREFIX = 'zero_shot.'
CACHED_MODEL_TYPE = 'PADingFromCache'
# What a stage-2 run from a feature cache (PADingFromCache) saves besides
# its learner: stage 1's classifier, which initialises the learner's.
CACHED_RUN_PREFIX = 'cls_embed.'
_INITIALISED_KEYS = ('zero_shot.classifier_initialised',
                     'zero_shot.module.classifier_initialised')
#: What the checkpoint is used for.
USES = ('test', 'load_from', 'resume')
STAGE1_CONFIG_HINT = ('the stage-1 config it was trained with (the stage-2 '
                      "config's `_base_`, e.g. configs/toy/"
                      'pading_toy_stage1.py)')
STAGE2_CONFIG_HINT = ('the stage-2 config it was trained with (e.g. '
                      'configs/toy/pading_toy_stage2.py)')
_MISSING_FIXES = {
    'test': 'Check the path of the checkpoint to evaluate.',
    'load_from': ('Train the config it comes from first (a stage-2 config '
                  'starts from the last checkpoint of its stage-1 run), or '
                  'pass --cfg-options load_from=PATH.'),
    'resume': ('Check the path, or pass --resume without a path to '
               'continue from the latest checkpoint of the work dir.'),
}


class CheckpointMismatchError(ValueError):
    """A checkpoint of the other stage than the config: named, with the
    fix."""


@dataclass(frozen=True)
class CheckpointContents:
    """What a checkpoint holds, as far as the stages are concerned.

    Attributes:
        path (str): The file.
        has_learner (bool): It holds stage-2 learner weights
            (``zero_shot.*``).
        classifier_initialised (bool): Its learner's classifier was
            initialised from stage 1's ``cls_embed`` (stage-2 training ran).
        has_segmenter (bool): It holds segmenter weights (any key besides
            the learner's and ``cls_embed.*``); a stage-2 run trained from
            a feature cache saves only its learner.
    """
    path: str
    has_learner: bool
    classifier_initialised: bool
    has_segmenter: bool = True

    @property
    def stage(self) -> int:
        """2 for a trained stage-2 checkpoint, else 1."""
        return 2 if self.has_learner and self.classifier_initialised else 1


def read_checkpoint_contents(checkpoint: str) -> CheckpointContents:
    """Read the state-dict keys of ``checkpoint`` (memory-mapped, cheap).

    Raises:
        FileNotFoundError: No such file.
        CheckpointLoadError: The file is truncated, not a checkpoint or
            holds objects torch refuses to load safely.
    """
    loaded = load_from_local(checkpoint, map_location='cpu', mmap=True)
    state_dict = loaded.get('state_dict', loaded) if isinstance(
        loaded, dict) else {}
    has_learner = any(
        isinstance(key, str) and key.startswith(LEARNER_PREFIX)
        for key in state_dict)
    flag = next((state_dict[key] for key in _INITIALISED_KEYS
                 if key in state_dict), None)
    has_segmenter = any(
        isinstance(key, str)
        and not key.startswith((LEARNER_PREFIX, CACHED_RUN_PREFIX))
        for key in state_dict)
    return CheckpointContents(
        path=checkpoint,
        has_learner=has_learner,
        classifier_initialised=flag is not None and bool(flag),
        has_segmenter=has_segmenter)


def config_stage(cfg: Config | dict) -> int:
    """The stage a config's model trains or predicts in (1 or 2): stage 2
    has a ``zero_shot`` learner; stage 1 is the upstream model."""
    model = cfg.get('model', None) or {}
    return 2 if model.get('zero_shot') is not None else 1


def _is_local(checkpoint: str) -> bool:
    """Whether mmengine would read ``checkpoint`` from the local disk."""
    return '://' not in checkpoint and '::' not in checkpoint


def _stage1_reason(contents: CheckpointContents) -> str:
    if contents.has_learner:
        return ('its stage-2 learner was never trained (zero_shot.'
                'classifier_initialised is 0: the classifier was never '
                'initialised from stage 1)')
    return 'it holds no stage-2 learner weights (zero_shot.*)'


def check_checkpoint_fits(checkpoint: str,
                          stage: int,
                          use: str,
                          source: str | None = None,
                          config: str | None = None,
                          work_dir: str | None = None,
                          needs_segmenter: bool = True) -> str | None:
    """Refuse a checkpoint of the wrong stage for ``use``; note a harmless one.

    ===========  =====================  ====================================
    config       checkpoint             result
    ===========  =====================  ====================================
    stage 2      stage 1, ``test``      refused: a random classifier
    stage 2      stage 1, ``resume``    refused: use ``load_from``
    stage 1      stage 2, ``resume``    refused: the other run's state
    stage 1      stage 2, other uses    note: ``zero_shot.*`` is ignored
    stage 2      stage 2, ``load_from`` note: continues its learner
    stage 2      learner only, any use  refused: a random segmenter
    ===========  =====================  ====================================

    A learner-only checkpoint is what a stage-2 run from a feature cache
    saves; its own model (``needs_segmenter=False``) takes it.

    Args:
        checkpoint (str): The checkpoint file. Remote ones (``s3://``,
            ``mmdet::``, ...) are not checked.
        stage (int): The config's stage (:func:`config_stage`).
        use (str): ``'test'`` (evaluate / load the weights), ``'load_from'``
            (start a training from it) or ``'resume'`` (continue its run).
        source (str, optional): Where the checkpoint came from, for the
            messages (e.g. ``'--resume'``, ``'load_from'``).
        config (str, optional): The config file, for the messages.
        work_dir (str, optional): The work dir the checkpoint was found in
            (``--resume`` without a path), for the messages.
        needs_segmenter (bool): The model takes its segmenter from the
            checkpoint (False for ``PADingFromCache``, which has none).

    Returns:
        str | None: A note to show the user when the checkpoint fits with a
        caveat, else ``None``.

    Raises:
        CheckpointMismatchError: The checkpoint belongs to the other stage.
        FileNotFoundError: No such file.
        CheckpointLoadError: The file cannot be read.
    """
    if use not in USES:
        raise ValueError(f'use must be one of {USES}, got {use!r}')
    if not _is_local(checkpoint):
        return None
    named = f'checkpoint {checkpoint!r}'
    if source is not None:
        named = f'{source}: {named}'
    if not osp.isfile(osp.expanduser(checkpoint)):
        raise FileNotFoundError(
            f'{named} does not exist{cwd_note(checkpoint)}. '
            + _MISSING_FIXES[use])
    contents = read_checkpoint_contents(checkpoint)
    if stage == 2 and needs_segmenter and contents.has_learner and \
            not contents.has_segmenter:
        raise CheckpointMismatchError(
            f'{named} holds only a stage-2 learner (zero_shot.*) trained '
            'from a feature cache, no segmenter weights: the model would '
            'run with a random segmenter. Merge it with the stage-1 '
            'checkpoint its cache was built from '
            '(python tools/model_converters/merge_cached_learner.py '
            'STAGE1 CHECKPOINT OUT) and pass OUT, or evaluate it from '
            'its cache (docs/feature_cache.md).')
    other_run = '' if work_dir is None else (
        f' The work dir {work_dir} holds a stage-{contents.stage} run: '
        'give this run its own --work-dir.')
    this_config = f'the stage-{stage} config' + (
        f' {config}' if config else '')
    if stage == 2 and contents.stage == 1:
        if use == 'test':
            raise CheckpointMismatchError(
                f'{named} is a stage-1 checkpoint, not a stage-2 checkpoint: '
                f'{_stage1_reason(contents)}, so {this_config} would '
                'evaluate a randomly initialised classifier. Evaluate the '
                'checkpoint written by the stage-2 training (an iter_*.pth '
                'of its work dir), or evaluate this stage-1 model with '
                f'{STAGE1_CONFIG_HINT}.')
        if use == 'resume':
            raise CheckpointMismatchError(
                f'{named} is a stage-1 checkpoint: {_stage1_reason(contents)}'
                f'; it cannot resume {this_config}. --resume continues a '
                'stage-2 run from one of its own checkpoints (an iter_*.pth '
                'of its work dir). To start stage 2 from this stage-1 '
                'checkpoint, run without --resume and pass --cfg-options '
                f'load_from={checkpoint}.{other_run}')
        return None
    if stage == 1 and contents.stage == 2:
        if use == 'resume':
            raise CheckpointMismatchError(
                f'{named} is a stage-2 (PADing) checkpoint and cannot '
                f'resume {this_config}: it holds stage 2\'s iteration and '
                f'optimizers. Resume it with {STAGE2_CONFIG_HINT}, or '
                'resume the stage-1 run from a stage-1 checkpoint.'
                f'{other_run}')
        if use == 'test':
            return (f'{named} is a stage-2 (PADing) checkpoint, but '
                    f'{config or "the config"} is a stage-1 config: the '
                    'checkpoint\'s '
                    'stage-2 classifier (zero_shot.*) is ignored and the '
                    'results are those of stage 1 (its cls_embed, trained '
                    'on seen classes only: unseen classes are not learnt). '
                    f'To evaluate PADing, pass {STAGE2_CONFIG_HINT}.')
        return (f'{named} is a stage-2 (PADing) checkpoint: stage 1 '
                'starts from its segmenter; its stage-2 learner '
                '(zero_shot.*) is ignored.')
    if stage == 2 and use == 'load_from':
        return (f'{named} is a stage-2 checkpoint: this run starts from its '
                'trained learner (classifier and generator), not from stage '
                "1's cls_embed. To start stage 2 afresh, load the stage-1 "
                'checkpoint instead.')
    return None


def check_config_checkpoint(cfg: Config,
                            checkpoint: str,
                            use: str,
                            source: str | None = None,
                            work_dir: str | None = None) -> str | None:
    """:func:`check_checkpoint_fits` for the stage of ``cfg``."""
    config = cfg.filename if cfg.filename and osp.isfile(
        cfg.filename) else None
    model = cfg.get('model', None) or {}
    return check_checkpoint_fits(
        checkpoint, config_stage(cfg), use, source=source, config=config,
        work_dir=work_dir,
        needs_segmenter=model.get('type') != CACHED_MODEL_TYPE)

