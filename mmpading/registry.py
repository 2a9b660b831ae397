"""Registries of mmpading.

mmpading has no registry tree of its own. Every component is registered, under
the same name, in the registries of **both** upstream scopes it serves:
mmdet (panoptic / instance configs) and mmseg (semantic configs). A config
whose ``default_scope`` is ``'mmdet'`` or ``'mmseg'`` therefore builds
``type='PrimitiveGenerator'`` by its plain name after
``custom_imports=dict(imports=['mmpading'])``, and the component's own
sub-modules are resolved in the scope of the config that built it.

Why not a child registry with scope ``'mmpading'``: mmengine resolves a plain
``type`` name only in the current scope and its parents, so users would have
to write ``'mmpading.PrimitiveGenerator'`` everywhere, and switching the
default scope to ``'mmpading'`` would hide nothing but also add nothing.
See ``docs/registry.md``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmdet import registry as mmdet_registry
from mmengine.registry import DefaultScope, Registry
from mmseg import registry as mmseg_registry

UPSTREAM_SCOPES = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}


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

    def register_module(self,
                        name: str | None = None,
                        force: bool = False,
                        module: type | None = None) -> Callable | type:
        """Register ``module`` in every scope; usable as a decorator."""

        def _register(cls: type) -> type:
            for registry in self.registries.values():
                registry.register_module(name=name, force=force, module=cls)
            registered = name or cls.__name__
            if registered not in self.names:
                self.names.append(registered)
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
