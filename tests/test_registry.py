"""Every mmpading component resolves by name in mmdet and mmseg scope."""
import pytest
from mmdet import registry as mmdet_registry
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry

from mmpading.registry import ALL_REGISTRIES, MODELS, MultiScopeRegistry

REGISTERED = [(reg.name, name) for reg in ALL_REGISTRIES for name in reg.names]


def test_components_are_registered():
    assert REGISTERED, 'importing mmpading registered nothing'


@pytest.mark.parametrize('scope,upstream', [('mmdet', mmdet_registry),
                                            ('mmseg', mmseg_registry)])
@pytest.mark.parametrize('registry_name,name', REGISTERED)
def test_name_resolves_in_scope(scope, upstream, registry_name, name):
    upstream_registry = getattr(upstream, registry_name)
    with DefaultScope.overwrite_default_scope(scope):
        cls = upstream_registry.get(name)
    assert cls is not None, f'{name} not found in {scope}.{registry_name}'
    assert cls.__module__.startswith('mmpading.')


def test_register_module_reaches_both_scopes():
    registry = MultiScopeRegistry('MODELS')

    class _ProbeComponentForRegistryTest:
        pass

    registry.register_module(module=_ProbeComponentForRegistryTest)
    try:
        for upstream in (mmdet_registry, mmseg_registry):
            assert upstream.MODELS.get(
                '_ProbeComponentForRegistryTest') is \
                _ProbeComponentForRegistryTest
        assert '_ProbeComponentForRegistryTest' in registry
    finally:
        for upstream in (mmdet_registry, mmseg_registry):
            upstream.MODELS._module_dict.pop(
                '_ProbeComponentForRegistryTest')


def test_build_uses_the_active_scope():
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert MODELS.current() is mmseg_registry.MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert MODELS.current() is mmdet_registry.MODELS
