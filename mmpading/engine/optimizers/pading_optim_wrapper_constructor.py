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


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PADingOptimWrapperConstructor:
    """Builds an :class:`OptimWrapperDict` from named optimizer configs.

    Each key of ``optim_wrapper_cfg`` (other than mmengine's own
    ``constructor`` / ``paramwise_cfg``) is one optimizer, given as an
    ordinary optim-wrapper config. Its trainable parameters are those of
    the modules the stage-2 learner assigns to that name
    (``ZeroShotLearner.optimizer_groups()``: ``generator`` = the generator
    and the disentanglement head, ``classifier`` = the classifier).
    Example::

        optim_wrapper = dict(
            constructor='PADingOptimWrapperConstructor',
            generator=dict(optimizer=dict(type='Adam', lr=5e-4)),
            classifier=dict(
                optimizer=dict(type='SGD', lr=1e-3, momentum=0.9,
                               weight_decay=5e-4)))

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
        if not optim_wrapper_cfg:
            raise ValueError('optim_wrapper needs at least one named '
                             'optimizer config')
        self.optim_wrapper_cfg = {
            name: dict(cfg)
            for name, cfg in optim_wrapper_cfg.items()
        }

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
