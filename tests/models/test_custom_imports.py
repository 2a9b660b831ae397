"""PADing components build by name from mmdet- and mmseg-scoped configs.

The configs live outside the package and only load it through
``custom_imports``, as a user's own OpenMMLab config would.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmdet import registry as mmdet_registry
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry

REPO_ROOT = Path(__file__).resolve().parents[2]

COMPONENTS = textwrap.dedent("""\
    custom_imports = dict(imports=['mmpading'], allow_failed_imports=False)
    default_scope = '{scope}'
    components = dict(
        primitive_generator=dict(type='PrimitiveGenerator', semantic_dim=300),
        gmmn_generator=dict(type='GMMNGenerator', semantic_dim=512),
        mmd_loss=dict(type='MMDLoss'),
        relation_align_loss=dict(type='RelationAlignLoss', temperature=0.1),
        disentangle_head=dict(type='DisentangleHead', semantic_dim=256),
    )
""")

EXPECTED_TYPES = {
    'primitive_generator': 'PrimitiveGenerator',
    'gmmn_generator': 'GMMNGenerator',
    'mmd_loss': 'MMDLoss',
    'relation_align_loss': 'RelationAlignLoss',
    'disentangle_head': 'DisentangleHead',
}

UPSTREAM = {'mmdet': mmdet_registry.MODELS, 'mmseg': mmseg_registry.MODELS}


def write_config(folder: Path, scope: str) -> Path:
    path = folder / f'pading_components_{scope}.py'
    path.write_text(COMPONENTS.format(scope=scope))
    return path


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_components_build_by_type_name(tmp_path, scope):
    cfg = Config.fromfile(write_config(tmp_path, scope))
    assert cfg.default_scope == scope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        for key, type_name in EXPECTED_TYPES.items():
            component = UPSTREAM[scope].build(cfg.components[key])
            assert type(component).__name__ == type_name
            assert type(component).__module__.startswith('mmpading.models.')


def test_custom_imports_alone_registers_components(tmp_path):
    """A fresh interpreter that never imports mmpading itself."""
    configs = [str(write_config(tmp_path, scope)) for scope in UPSTREAM]
    script = textwrap.dedent(f"""\
        import sys
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        assert 'mmpading' not in sys.modules
        for path in {configs!r}:
            cfg = Config.fromfile(path)
            assert 'mmpading' in sys.modules
            if cfg.default_scope == 'mmdet':
                from mmdet.registry import MODELS
            else:
                from mmseg.registry import MODELS
            with DefaultScope.overwrite_default_scope(cfg.default_scope):
                for name, component_cfg in cfg.components.items():
                    component = MODELS.build(component_cfg)
                    print(cfg.default_scope, name, type(component).__name__)
        """)
    # The working tree's package, whatever the environment has installed.
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), env.get('PYTHONPATH')]))
    result = subprocess.run([sys.executable, '-c', script],
                            cwd=tmp_path,
                            env=env,
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = set(result.stdout.split('\n'))
    for scope in UPSTREAM:
        for key, type_name in EXPECTED_TYPES.items():
            assert f'{scope} {key} {type_name}' in lines
