"""Registries of mmpading.

mmpading has no registry tree of its own. Every component is registered, under
the same name, in the registries of **both** upstream scopes it serves:
mmdet (panoptic / instance configs) and mmseg (semantic configs). A config
whose ``default_scope`` is ``'mmdet'`` or ``'mmseg'`` therefore builds
``type='PrimitiveGenerator'`` by its plain name after
``custom_imports=dict(imports=['mmpading'])``.

Sub-modules: a component that extends an mmdet class (``PADing``,
``ZeroShotMask2FormerHead``, the COCO data sets, ...) builds its sub-modules
in mmdet's scope, one that extends an mmseg class (``PADingSegmentor``,
``ZeroShotMask2FormerSegHead``, ``ZeroShotCOCOStuffDataset``, ...) in
mmseg's, whatever the scope of the config that built it: its upstream
defaults and the names of upstream configs (``MSDeformAttnPixelDecoder``,
``LoadAnnotations``) then mean what they mean in that toolbox. mmpading's own
components (generators, losses, ``ZeroShotLearner``) build theirs in the
config's scope.

Why not a child registry with scope ``'mmpading'``: mmengine resolves a plain
``type`` name only in the current scope and its parents, so users would have
to write ``'mmpading.PrimitiveGenerator'`` everywhere, and switching the
default scope to ``'mmpading'`` would hide nothing but also add nothing.
See ``docs/registry.md``.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from mmdet import registry as mmdet_registry
from mmengine.registry import DefaultScope, Registry
from mmseg import registry as mmseg_registry

UPSTREAM_SCOPES = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}


def upstream_scope_of(cls: type) -> str | None:
    """The toolbox of the nearest upstream class ``cls`` extends.

    Args:
        cls (type): A component class.

    Returns:
        str | None: ``'mmdet'`` or ``'mmseg'``; None when no base class
        comes from either (the component is mmpading's own).
    """
    for base in cls.__mro__[1:]:
        if base.__module__.split('.', 1)[0] in UPSTREAM_SCOPES:
            return base.__module__.split('.', 1)[0]
    return None


def build_sub_modules_in_scope(cls: type, scope: str) -> type:
    """Make ``cls.__init__`` run with ``scope`` as the default scope.

    mmengine resolves the ``type`` of every sub-module a constructor builds
    in the *current* default scope. An mmdet head built from an mmseg
    config would look ``MSDeformAttnPixelDecoder`` up in mmseg's registry
    and fail; in its home scope it finds it, and upstream-prefixed names
    (``'mmpretrain.ConvNeXt'``) still resolve anywhere. This is what
    mmengine does for a config dict with ``_scope_``, for every build of
    the class.

    Args:
        cls (type): The component class; modified in place.
        scope (str): Scope its constructor runs in.

    Returns:
        type: ``cls``.
    """
    init = cls.__init__
    if getattr(init, 'home_scope', None) == scope:
        return cls  # inherited from a base class registered the same way

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        current = DefaultScope.get_current_instance()
        if current is not None and current.scope_name == scope:
            init(self, *args, **kwargs)
            return
        with DefaultScope.overwrite_default_scope(scope):
            init(self, *args, **kwargs)

    # inspect.getfullargspec (mmengine's ManagerMeta) ignores __wrapped__.
    __init__.__signature__ = inspect.signature(init)
    __init__.home_scope = scope
    cls.__init__ = __init__
    return cls


class MultiScopeRegistry:
    """Registers components into the same-named registry of several scopes.

    Args:
        name (str): Name of the registry in ``mmdet.registry`` and
            ``mmseg.registry``, e.g. ``'MODELS'``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.registries: dict[str, Registry] = {
            scope: getattr(module, name)
            for scope, module in UPSTREAM_SCOPES.items()
        }
        # Names registered through this object, for introspection and tests.
        self.names: list[str] = []
        # Name -> scope its sub-modules are built in (None: the config's).
        self.home_scopes: dict[str, str | None] = {}

    def register_module(self,
                        name: str | None = None,
                        force: bool = False,
                        module: type | None = None,
                        home_scope: str | None = 'auto') -> Callable | type:
        """Register ``module`` in every scope; usable as a decorator.

        Args:
            name (str, optional): Registered name; the class name if None.
            force (bool): Replace a component of the same name.
            module (type, optional): The class; returns a decorator if None.
            home_scope (str, optional): Scope the constructor builds its
                sub-modules in. ``'auto'``: the toolbox of the nearest
                upstream base class (see :func:`upstream_scope_of`); None:
                the scope of the config that builds the component.
        """

        def _register(cls: type) -> type:
            scope = upstream_scope_of(cls) if home_scope == 'auto' \
                else home_scope
            if scope is not None:
                if scope not in self.registries:
                    raise ValueError(
                        f'home_scope={scope!r} of {cls.__name__} is not one '
                        f'of {sorted(self.registries)}')
                build_sub_modules_in_scope(cls, scope)
            for registry in self.registries.values():
                registry.register_module(name=name, force=force, module=cls)
            registered = name or cls.__name__
            if registered not in self.names:
                self.names.append(registered)
            self.home_scopes[registered] = scope
            return cls

        if module is not None:
            return _register(module)
        return _register

    def current(self) -> Registry:
        """The registry of the active default scope (else mmdet's)."""
        scope = DefaultScope.get_current_instance()
        if scope is not None and scope.scope_name in self.registries:
            return self.registries[scope.scope_name]
        return self.registries['mmdet']

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        """Build ``cfg`` in the active scope's registry."""
        return self.current().build(cfg, *args, **kwargs)

    def get(self, key: str) -> type | None:
        return self.current().get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.names

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(name={self.name!r}, '
                f'scopes={list(self.registries)}, names={self.names})')


MODELS = MultiScopeRegistry('MODELS')
DATASETS = MultiScopeRegistry('DATASETS')
TRANSFORMS = MultiScopeRegistry('TRANSFORMS')
METRICS = MultiScopeRegistry('METRICS')
HOOKS = MultiScopeRegistry('HOOKS')
TASK_UTILS = MultiScopeRegistry('TASK_UTILS')
VISUALIZERS = MultiScopeRegistry('VISUALIZERS')
LOOPS = MultiScopeRegistry('LOOPS')
OPTIM_WRAPPER_CONSTRUCTORS = MultiScopeRegistry('OPTIM_WRAPPER_CONSTRUCTORS')

ALL_REGISTRIES = (MODELS, DATASETS, TRANSFORMS, METRICS, HOOKS, TASK_UTILS,
                  VISUALIZERS, LOOPS, OPTIM_WRAPPER_CONSTRUCTORS)
