"""One optimizer per named group of sub-modules (PADing's stage 2)."""
from __future__ import annotations

from mmengine.model.wrappers import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn

from mmpading.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if is_model_wrapper(module) else module


def get_submodule_through_wrappers(model: nn.Module,
                                   path: str) -> nn.Module | None:
    """``model.get_submodule(path)``, stepping through DDP wrappers.

    Returns None when an attribute on the path is None (an optional part
    that the config switched off, e.g. no disentanglement head).
    """
    module = _unwrap(model)
    for name in path.split('.'):
        if not hasattr(module, name):
            raise KeyError(
                f'optim_wrapper: the model has no sub-module {path!r} '
                f'({type(module).__name__} has no attribute {name!r})')
        module = getattr(module, name)
        if module is None:
            return None
        module = _unwrap(module)
    return module


def learner_optimizer_groups(model: nn.Module,
                             name: str) -> list[nn.Module]:
    """The modules the model's learner assigns to optimizer ``name``.

    The learner is the model's ``zero_shot`` attribute (through DDP
    wrappers); its ``optimizer_groups()`` maps group names to modules.

    Raises:
        ValueError: If the model has no learner, or the learner no group
            of that name; the message names the fix.
    """
    model = _unwrap(model)
    learner = getattr(model, 'zero_shot', None)
    if learner is None or not hasattr(_unwrap(learner), 'optimizer_groups'):
        raise ValueError(
            f'optim_wrapper.{name} gives no `modules` and '
            f'{type(model).__name__} has no stage-2 learner (`zero_shot` '
            'with optimizer_groups()) to take them from; give '
            f"modules=[...] (dotted paths, e.g. ['zero_shot.classifier']).")
    groups = _unwrap(learner).optimizer_groups()
    if name not in groups:
        raise ValueError(
            f'optim_wrapper.{name}: the learner has no optimizer group '
            f'{name!r} (its groups: {sorted(groups)}); rename the group or '
            'give modules=[...].')
    return [_unwrap(module) for module in groups[name]]


# The paper's stage-2 optimizers, the reference's in every setting
# (docs/parity.md): the generator with the disentanglement head Adam 5e-4;
# the classifier SGD 1e-3, momentum 0.9, weight decay 5e-4.
DEFAULT_OPTIMIZERS = dict(
    generator=dict(type='Adam', lr=5e-4, weight_decay=0.0),
    classifier=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))


def optimizer_group_cfgs(optim_wrapper_cfg: dict) -> dict[str, dict]:
    """Each optimizer's wrapper config: the given ones over the defaults.

    A group of :data:`DEFAULT_OPTIMIZERS` that the config leaves out gets
    its default optimizer; one given without ``optimizer``, or with an
    ``optimizer`` without ``type``, changes fields of the default (e.g.
    ``classifier=dict(optimizer=dict(lr=2e-3))``); ``None`` switches a
    group off. Another group name needs a full ``optimizer``.

    Raises:
        ValueError: A group that is not a dict, or a new group without an
            optimizer type.
    """
    groups = {
        name: dict(optimizer=dict(optimizer))
        for name, optimizer in DEFAULT_OPTIMIZERS.items()
    }
    for name, cfg in optim_wrapper_cfg.items():
        if cfg is None:
            # A default group switched off.
            groups.pop(name, None)
            continue
        if not isinstance(cfg, dict):
            raise ValueError(
                f'optim_wrapper.{name} must be an optim-wrapper config '
                f'dict, got {cfg!r}')
        cfg = dict(cfg)
        optimizer = dict(cfg.get('optimizer') or {})
        if 'type' not in optimizer:
            if name not in DEFAULT_OPTIMIZERS:
                raise ValueError(
                    f'optim_wrapper.{name} has no optimizer type; give '
                    "optimizer=dict(type='SGD', lr=...) (the groups with "
                    f'defaults: {sorted(DEFAULT_OPTIMIZERS)})')
            optimizer = {**DEFAULT_OPTIMIZERS[name], **optimizer}
        cfg['optimizer'] = optimizer
        groups[name] = cfg
    return groups


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PADingOptimWrapperConstructor:
    """Builds an :class:`OptimWrapperDict` from named optimizer configs.

    Each key of ``optim_wrapper_cfg`` (other than mmengine's own
    ``constructor`` / ``paramwise_cfg``) is one optimizer, given as an
    ordinary optim-wrapper config; ``generator`` and ``classifier``
    default to the paper's (:data:`DEFAULT_OPTIMIZERS`,
    :func:`optimizer_group_cfgs`), so a stage-2 config needs only::

        optim_wrapper = dict(
            _delete_=True, constructor='PADingOptimWrapperConstructor')

    and states what differs, e.g. ``classifier=dict(optimizer=dict(
    lr=2e-3))`` or ``generator=dict(type='AmpOptimWrapper')``. Each
    optimizer's trainable parameters are those of the modules the stage-2
    learner assigns to its name (``ZeroShotLearner.optimizer_groups()``:
    ``generator`` = the generator and the disentanglement head,
    ``classifier`` = the classifier).

    ``modules``, dotted paths of sub-modules (e.g.
    ``modules=['zero_shot.classifier']``), overrides the learner's choice
    for one optimizer. A group without trainable parameters (the
    generator of the projection baseline) builds no optimizer.

    Args:
        optim_wrapper_cfg (dict): The named optimizer configs.
        paramwise_cfg (dict, optional): Not supported; must be None.
    """

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg:
            raise ValueError('PADingOptimWrapperConstructor does not '
                             'support paramwise_cfg')
        self.optim_wrapper_cfg = optimizer_group_cfgs(optim_wrapper_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            cfg = dict(cfg)
            paths = cfg.pop('modules', None)
            if paths is not None:
                modules = [
                    get_submodule_through_wrappers(model, path)
                    for path in paths
                ]
            else:
                modules = learner_optimizer_groups(model, name)
            params, seen = [], set()
            for module in modules:
                if module is None:
                    continue
                for param in module.parameters():
                    if param.requires_grad and id(param) not in seen:
                        seen.add(id(param))
                        params.append(param)
            if not params:
                # e.g. the generator group of the projection baseline.
                continue
            optimizer_cfg = dict(cfg.pop('optimizer'))
            optimizer_cfg['params'] = params
            cfg.setdefault('type', 'OptimWrapper')
            cfg['optimizer'] = OPTIMIZERS.build(optimizer_cfg)
            wrappers[name] = OPTIM_WRAPPERS.build(cfg)
        if not wrappers:
            raise ValueError('optim_wrapper: no trainable parameters in any '
                             'of the configured modules')
        return OptimWrapperDict(**wrappers)
