"""``make install`` from a second clone into an environment another clone
installed mmpading into.

The environment is a throwaway virtualenv without pip; an editable install
is faked the way pip leaves one (a ``.dist-info`` with ``direct_url.json``
and a ``.pth`` that puts the clone on ``sys.path``), so nothing touches the
environment the tests run in.
"""
import json
import os
import shutil
import sys
import venv
from pathlib import Path

import pytest

from _helpers import load_tool_module

REPO_ROOT = Path(__file__).resolve().parents[2]
DIST_INFO = 'mmpading-0.0.0.dist-info'


@pytest.fixture(scope='module')
def install():
    return load_tool_module(str(REPO_ROOT / 'tools' / 'install.py'))


def make_clone(folder: Path) -> Path:
    """A "clone": what the probes look at is its ``mmpading`` package."""
    (folder / 'mmpading').mkdir(parents=True)
    (folder / 'mmpading' / '__init__.py').write_text("__version__ = '0.0.0'\n")
    return folder


def fake_editable_install(site_packages: Path, clone: Path) -> None:
    """What ``pip install -e CLONE`` leaves in ``site-packages``."""
    dist_info = site_packages / DIST_INFO
    shutil.rmtree(dist_info, ignore_errors=True)
    dist_info.mkdir()
    (dist_info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: mmpading\nVersion: 0.0.0\n')
    (dist_info / 'direct_url.json').write_text(json.dumps({
        'url': clone.resolve().as_uri(),
        'dir_info': {'editable': True}
    }))
    (site_packages / '__editable__.mmpading-0.0.0.pth').write_text(
        f'{clone.resolve()}\n')


@pytest.fixture
def shared_env(tmp_path):
    """A virtualenv that clone A was installed into, its mim link to A."""
    env_dir = tmp_path / 'env'
    venv.create(env_dir, with_pip=False, symlinks=os.name != 'nt')
    python = env_dir / 'bin' / 'python'
    site_packages = next((env_dir / 'lib').glob('python*/site-packages'))
    clone_a = make_clone(tmp_path / 'clone_a')
    clone_b = make_clone(tmp_path / 'clone_b')
    fake_editable_install(site_packages, clone_a)
    (site_packages / 'mmpading').symlink_to(
        clone_a / 'mmpading', target_is_directory=True)
    return dict(python=str(python), site_packages=site_packages,
                clone_a=clone_a.resolve(), clone_b=clone_b.resolve())


def test_installed_source_reads_the_environment_not_the_working_dir(
        install, shared_env, monkeypatch):
    # make runs the installer inside the new clone, whose own mmpading
    # folder must not be mistaken for the installed one.
    monkeypatch.chdir(shared_env['clone_b'])
    source = install.installed_source(shared_env['python'])
    assert source['editable_dir'] == shared_env['clone_a']
    assert source['package_dir'] == shared_env['clone_a'] / 'mmpading'
    assert source['mim_link'] == shared_env['clone_a'] / 'mmpading'
    assert install.other_clone(source,
                               shared_env['clone_b']) == shared_env['clone_a']
    assert install.other_clone(source, shared_env['clone_a']) is None


def test_installed_source_of_an_environment_without_mmpading(
        install, tmp_path):
    env_dir = tmp_path / 'bare_env'
    venv.create(env_dir, with_pip=False, symlinks=os.name != 'nt')
    source = install.installed_source(str(env_dir / 'bin' / 'python'))
    assert source == {'editable_dir': None, 'package_dir': None,
                      'mim_link': None, 'location': None}
    assert install.other_clone(source, tmp_path) is None


def test_a_regular_install_is_not_another_clone(install, tmp_path):
    site_packages = tmp_path / 'site-packages'
    source = {'editable_dir': None,
              'package_dir': site_packages / 'mmpading',
              'mim_link': None, 'location': site_packages}
    assert install.other_clone(source, tmp_path / 'clone') is None


def run_up_to_date_install(install, shared_env, monkeypatch, repo: Path):
    """``make install`` in ``repo`` when every pinned version is in place.

    pip is replaced by a fake that installs ``-e FOLDER`` the way pip
    would; every command is recorded.
    """
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        assert cmd[1:5] == ['-m', 'pip', 'install', '--no-deps'], cmd
        fake_editable_install(shared_env['site_packages'], Path(cmd[-1]))

    monkeypatch.setattr(install, 'REPO', repo)
    monkeypatch.setattr(install, 'target_python',
                        lambda: shared_env['python'])
    monkeypatch.setattr(install, 'up_to_date', lambda *args: True)
    monkeypatch.setattr(install, 'run', fake_run)
    monkeypatch.setattr(sys, 'argv', ['tools/install.py'])
    monkeypatch.chdir(repo)
    install.main()
    return commands


def test_second_clone_says_it_takes_the_environment_over(
        install, shared_env, monkeypatch, capsys):
    clone_a, clone_b = shared_env['clone_a'], shared_env['clone_b']
    commands = run_up_to_date_install(install, shared_env, monkeypatch,
                                      clone_b)
    out = capsys.readouterr().out
    venv_dir = Path(shared_env['python']).parent.parent
    assert f'came from the clone {clone_a};' in out
    assert f'now comes from this clone, {clone_b}' in out
    assert f'cd {clone_a} && VIRTUAL_ENV={venv_dir} make install' in out
    assert f'pointed at {clone_a / "mmpading"}; it now points at ' \
        f'{clone_b / "mmpading"}' in out
    # Even with every version up to date, the package is re-pointed too,
    # so that imports and mim agree on the clone.
    assert commands[-1][-2:] == ['-e', str(clone_b)]
    link = shared_env['site_packages'] / 'mmpading'
    assert Path(os.path.realpath(link)) == clone_b / 'mmpading'
    source = install.installed_source(shared_env['python'])
    assert source['editable_dir'] == source['package_dir'].parent == clone_b
    assert install.other_clone(source, clone_b) is None


def test_the_same_clone_again_is_silent(install, shared_env, monkeypatch,
                                        capsys):
    commands = run_up_to_date_install(install, shared_env, monkeypatch,
                                      shared_env['clone_a'])
    out = capsys.readouterr().out
    assert 'NOTE' not in out and 'pointed at' not in out
    assert commands == []
    assert 'everything is installed and up to date' in out


def test_a_deleted_first_clone_is_named_as_gone(install, shared_env,
                                                monkeypatch, capsys):
    shutil.rmtree(shared_env['clone_a'])
    run_up_to_date_install(install, shared_env, monkeypatch,
                           shared_env['clone_b'])
    out = capsys.readouterr().out
    assert f'came from the clone {shared_env["clone_a"]} (that folder no ' \
        'longer exists)' in out
    link = shared_env['site_packages'] / 'mmpading'
    assert Path(os.path.realpath(link)) == shared_env['clone_b'] / 'mmpading'
