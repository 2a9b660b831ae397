"""The air-gapped install: ``tools/install.py --download DIR`` builds a
wheelhouse, ``MMPADING_WHEELHOUSE=DIR`` installs from it with no index.

The end-to-end test downloads a wheelhouse for this interpreter (from the
package index this machine's pip uses), then installs mmpading from it
into a fresh virtualenv with every index unreachable. The new environment
sees this environment's torch and torchvision (and the packages they need
that the wheelhouse does not hold) through a ``.pth`` file, as an offline
GPU node's environment has its CUDA torch; mmcv comes from the wheel cache
that ``make install`` filled, so that no 15-minute build runs here.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from _helpers import load_tool_module

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL = REPO_ROOT / 'tools' / 'install.py'
# Nothing listens there: any use of a package index fails at once.
DEAD_INDEX = 'http://127.0.0.1:9/simple'


@pytest.fixture(scope='module')
def install():
    return load_tool_module(str(INSTALL))


# ------------------------------------------------------------------ units
def test_platform_tags_add_the_older_manylinux_tags(install):
    tags = install.platform_tags(['manylinux_2_28_x86_64'])
    assert tags[0] == 'manylinux_2_28_x86_64'
    # Wheels tagged only so run on a glibc 2.28 machine.
    for tag in ('manylinux_2_17_x86_64', 'manylinux2014_x86_64',
                'manylinux2010_x86_64', 'manylinux1_x86_64'):
        assert tag in tags
    assert 'manylinux_2_29_x86_64' not in tags
    assert len(tags) == len(set(tags))
    legacy = install.platform_tags(['manylinux2014_aarch64'])
    assert legacy[:2] == ['manylinux_2_17_aarch64', 'manylinux2014_aarch64']
    assert install.platform_tags(['macosx_11_0_arm64']) == [
        'macosx_11_0_arm64'
    ]


def test_pip_is_asked_for_the_target_s_wheels(install):
    options = install.pip_target_options('3.12', ['manylinux_2_28_x86_64'])
    assert options[0] == '--only-binary=:all:'
    assert options[1:5] == ['--python-version', '3.12', '--implementation',
                            'cp']
    platforms = options[6::2]
    assert options[5::2] == ['--platform'] * len(platforms)
    assert platforms == install.platform_tags(['manylinux_2_28_x86_64'])
    # This machine: no target options beyond wheels-only.
    assert install.pip_target_options(None, []) == ['--only-binary=:all:']


def test_target_options_need_download(install, capsys):
    with pytest.raises(SystemExit):
        install.parse_args(['--python-version', '3.12'])
    assert '--download' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        install.parse_args(['--download', 'x', '--python-version', '312'])
    assert 'e.g. 3.12' in capsys.readouterr().err


@pytest.fixture
def clean_pip_env(monkeypatch):
    """use_wheelhouse sets these; the test's changes are undone after."""
    for name in ('PIP_NO_INDEX', 'PIP_FIND_LINKS', 'MMPADING_WHEELHOUSE'):
        monkeypatch.setenv(name, 'unset-by-test')
        monkeypatch.delenv(name)


def write_manifest(folder: Path, **fields) -> None:
    manifest = dict(python_version='{}.{}'.format(*sys.version_info[:2]),
                    files=[])
    manifest.update(fields)
    (folder / 'mmpading-wheelhouse.json').write_text(json.dumps(manifest))


def refusal(install, capsys, call) -> str:
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 1
    return capsys.readouterr().err


def test_missing_wheelhouse_is_named(install, capsys, tmp_path,
                                     clean_pip_env):
    missing = tmp_path / 'nowhere'
    message = refusal(install, capsys,
                      lambda: install.use_wheelhouse(str(missing)))
    assert str(missing) in message and 'make wheelhouse' in message
    assert 'PIP_NO_INDEX' not in os.environ


def test_folder_without_manifest_is_refused(install, capsys, tmp_path,
                                            clean_pip_env):
    (tmp_path / 'some.whl').write_bytes(b'')
    message = refusal(install, capsys,
                      lambda: install.use_wheelhouse(str(tmp_path)))
    assert 'mmpading-wheelhouse.json' in message
    assert 'tools/install.py --download' in message


def test_incomplete_copy_is_refused(install, capsys, tmp_path,
                                    clean_pip_env):
    (tmp_path / 'a-1.0-py3-none-any.whl').write_bytes(b'')
    write_manifest(tmp_path, files=['a-1.0-py3-none-any.whl',
                                    'mmcv-2.1.0.tar.gz'])
    message = refusal(install, capsys,
                      lambda: install.use_wheelhouse(str(tmp_path)))
    assert 'mmcv-2.1.0.tar.gz' in message and 'copy it again' in message


def test_complete_wheelhouse_switches_every_index_off(install, tmp_path,
                                                      clean_pip_env):
    write_manifest(tmp_path)
    assert install.use_wheelhouse(str(tmp_path)) == tmp_path.resolve()
    assert os.environ['PIP_NO_INDEX'] == '1'
    assert os.environ['PIP_FIND_LINKS'] == str(tmp_path.resolve())


def test_wheelhouse_of_another_python_is_refused(install, capsys, tmp_path):
    write_manifest(tmp_path, python_version='3.99')
    message = refusal(
        install, capsys,
        lambda: install.check_wheelhouse_python(tmp_path, sys.executable))
    here = '{}.{}'.format(*sys.version_info[:2])
    assert 'Python 3.99' in message and f'Python {here}' in message
    assert f'--python-version {here}' in message


def test_cuda_arch_list_is_the_visible_gpus_unless_set(install,
                                                       monkeypatch):
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST', raising=False)
    info = dict(torch='2.14.1', cuda='13.0', python='311', arch=['9.0'])
    assert install.cuda_arch_list(info) == '9.0'
    assert install.cuda_arch_list(dict(info, arch=[])) is None
    gpu_key = install.wheel_cache_dir(info, cuda_ops=True).name
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '8.0;8.6+PTX')
    assert install.cuda_arch_list(info) == '8.0;8.6+PTX'
    # Wheels for other architectures are cached apart.
    assert install.wheel_cache_dir(info, cuda_ops=True).name != gpu_key
    assert 'sm' not in install.wheel_cache_dir(info, cuda_ops=False).name


# ------------------------------------------------------------- end to end
def normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def wheelhouse_names(folder: Path) -> set[str]:
    return {normalise(path.name.split('-', 1)[0])
            for path in folder.iterdir() if path.suffix == '.whl'}


# The folders that torch, torchvision and what they need occupy in this
# environment, by distribution.
TORCH_CLOSURE = r'''
import importlib.metadata as md, json, re, sys
out, todo, seen = {}, ['torch', 'torchvision'], set()
while todo:
    name = re.sub(r'[-_.]+', '-', todo.pop()).lower()
    if name in seen:
        continue
    seen.add(name)
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    tops = {f.parts[0] for f in dist.files or []
            if f.parts[0] not in ('..', '__pycache__')}
    out[name] = sorted(str(dist.locate_file(top)) for top in tops)
    for req in dist.requires or []:
        if 'extra ==' not in req:
            todo.append(re.split(r'[ ;<>=!~\[(]', req, maxsplit=1)[0])
print(json.dumps(out))
'''


def torch_overlay(folder: Path, skip: set[str]) -> Path:
    """Links to this environment's torch closure, less ``skip``."""
    closure = json.loads(subprocess.run(
        [sys.executable, '-c', TORCH_CLOSURE], capture_output=True,
        text=True, check=True).stdout)
    assert 'torch' in closure and 'torchvision' in closure
    folder.mkdir()
    for name, tops in closure.items():
        if name in skip and name not in ('torch', 'torchvision'):
            continue
        for top in tops:
            link = folder / Path(top).name
            if not link.exists():
                link.symlink_to(top)
    return folder


@pytest.fixture(scope='module')
def wheelhouse(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('wheelhouse')
    result = subprocess.run(
        [sys.executable, str(INSTALL), '--download', str(folder)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return folder


def test_wheelhouse_holds_the_stack_and_the_mmcv_sdist(wheelhouse):
    manifest = json.loads((wheelhouse / 'mmpading-wheelhouse.json')
                          .read_text())
    assert manifest['python_version'] == '{}.{}'.format(
        *sys.version_info[:2])
    assert 'mmcv-2.1.0.tar.gz' in manifest['files']
    assert (wheelhouse / 'mmcv-2.1.0.tar.gz').is_file()
    names = wheelhouse_names(wheelhouse)
    for name in ('mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain',
                 'pycocotools', 'panopticapi-lite', 'ftfy', 'regex',
                 'openmim', 'setuptools', 'pip', 'numpy', 'opencv-python'):
        assert name in names, name
    # torch stays the target machine's unless --with-torch.
    assert 'torch' not in names and 'torchvision' not in names


def test_offline_install_from_the_wheelhouse(wheelhouse, tmp_path, install):
    info = install.torch_info(sys.executable)
    cache = install.wheel_cache_dir(info, cuda_ops=bool(info['gpu']))
    if not list(cache.glob('mmcv-2.1.0-*.whl')):
        pytest.fail(f'no cached mmcv wheel in {cache}: run `make install` '
                    'first (it builds one)')
    env_dir = tmp_path / 'env'
    venv.create(env_dir, with_pip=True, symlinks=True)
    site_packages = next((env_dir / 'lib').glob('python*/site-packages'))
    overlay = torch_overlay(tmp_path / 'torch_overlay',
                            skip=wheelhouse_names(wheelhouse))
    (site_packages / 'gpu_node_torch.pth').write_text(f'{overlay}\n')

    env = {key: value for key, value in os.environ.items()
           if not key.startswith('PIP_')}
    env.update(VIRTUAL_ENV=str(env_dir), MMPADING_WHEELHOUSE=str(wheelhouse),
               PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=DEAD_INDEX,
               PIP_EXTRA_INDEX_URL=DEAD_INDEX, PIP_DEFAULT_TIMEOUT='2',
               PIP_RETRIES='0')
    result = subprocess.run([sys.executable, str(INSTALL)], env=env,
                            capture_output=True, text=True, cwd=tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'no package index' in log
    assert 'installing cached mmcv wheel' in log
    assert 'keeping torch' in log
    python = env_dir / 'bin' / 'python'
    check = subprocess.run(
        [str(python), '-c',
         'import json, mmcv.ops, mmdet, mmengine, mmpretrain, mmseg, numpy, '
         'mmpading, torch; print(json.dumps({"numpy": numpy.__file__, '
         '"torch": torch.__file__, "mmpading": mmpading.__file__}))'],
        capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    files = json.loads(check.stdout.strip().splitlines()[-1])
    # numpy came from the wheelhouse into the new environment; torch is
    # the one that was there; mmpading is this clone (through mim's link).
    assert files['numpy'].startswith(str(site_packages))
    assert files['torch'].startswith(str(overlay))
    assert Path(files['mmpading']).resolve().is_relative_to(REPO_ROOT)
