#!/usr/bin/env python3
"""Install the OpenMMLab stack and mmpading into a virtual environment.

Run through ``make install``. Standard library only: it runs before anything
is installed. Every version pin lives in ``requirements/``.

Steps:
    1. Pick the environment: the active virtualenv (``$VIRTUAL_ENV``), or
       ``.venv`` in the repository, created if missing.
    2. torch + torchvision, unless a compatible torch is already there.
    3. mmcv with ops, built from the sdist (patched for C++20), cached as a
       wheel keyed by torch version and CUDA flavour.
    4. mmengine, mmdet, mmseg, mmpretrain and the rest; panopticapi-lite
       without dependencies; then mmpading itself (editable).

A second run checks installed versions and returns in seconds. An
environment that another clone of mmpading was installed into is switched
to this clone, and the installer says so (and how to switch back).

Environment variables:
    MMPADING_FORCE_CUDA=1: build mmcv's CUDA ops even if no GPU is visible
        (``FORCE_CUDA=1`` is honoured too).
    MMPADING_WHEEL_CACHE: where built mmcv wheels are kept
        (default ``~/.cache/mmpading/wheels``).
    PYTHON: interpreter used to create ``.venv`` (default: this one).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQ = REPO / 'requirements'
STAMP_NAME = '.mmpading-install.json'
# Oldest torch we accept from a user's environment; mmcv 2.1.0 + mmdet 3.3.0
# are known to run on 2.1 and newer.
MIN_TORCH = (2, 1)


def say(msg: str) -> None:
    print(f'[install] {msg}', flush=True)


def fail(msg: str) -> None:
    print(f'[install] ERROR: {msg}', file=sys.stderr, flush=True)
    sys.exit(1)


def read_requirements(name: str) -> list[str]:
    lines = []
    for line in (REQ / name).read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def pin_of(reqs: list[str], dist: str) -> str:
    for req in reqs:
        if re.split(r'[<>=!~ \[]', req, maxsplit=1)[0].lower() == dist:
            return req
    fail(f'no pin for {dist} in requirements/')
    raise AssertionError('unreachable')


def version_of(req: str) -> str:
    return req.split('==', 1)[1]


def run(cmd: list[str], **kwargs) -> None:
    say('$ ' + ' '.join(cmd))
    result = subprocess.run(cmd, **kwargs)
    if result.returncode != 0:
        fail(f'command failed with exit code {result.returncode}: '
             + ' '.join(cmd))


def query(python: str, code: str) -> dict:
    """Run ``code`` in the target interpreter; it prints one JSON object.

    It runs outside the repository: ``python -c`` puts the working directory
    first on ``sys.path``, where this clone's ``mmpading`` (and its
    ``*.egg-info``) would hide what the environment itself has installed.
    """
    out = subprocess.run([python, '-c', code], capture_output=True,
                         text=True, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        return {'error': out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def target_python() -> str:
    venv = os.environ.get('VIRTUAL_ENV')
    if venv:
        python = Path(venv) / 'bin' / 'python'
        if not python.exists():
            fail(f'VIRTUAL_ENV={venv} has no bin/python; deactivate it or '
                 'fix the environment')
        say(f'using the active virtualenv {venv}')
        return str(python)
    venv_dir = REPO / '.venv'
    python = venv_dir / 'bin' / 'python'
    if not python.exists():
        base = os.environ.get('PYTHON', sys.executable)
        say(f'creating {venv_dir} with {base}')
        run([base, '-m', 'venv', str(venv_dir)])
    else:
        say(f'using {venv_dir}')
    return str(python)


# Reads installed distribution versions without importing heavy packages.
PROBE = r'''
import json, importlib.metadata as md, importlib.util as iu, sys
names = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
out = {}
for n in %s:
    try:
        out[n] = md.version(n)
    except md.PackageNotFoundError:
        out[n] = None
try:
    spec = iu.find_spec('mmcv._ext')
    out['mmcv._ext'] = spec is not None
except Exception:
    out['mmcv._ext'] = False
print(json.dumps(out))
'''


def installed_versions(python: str, dists: list[str]) -> dict:
    return query(python, PROBE % repr(dists))


def torch_info(python: str) -> dict:
    return query(python, (
        'import json, sys, torch; print(json.dumps({'
        '"torch": torch.__version__, "cuda": torch.version.cuda, '
        '"gpu": torch.cuda.is_available(), '
        '"python": "%d%d" % sys.version_info[:2]}))'))


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r'\d+', text.split('+')[0])[:3])


def ensure_torch(python: str, build_reqs: list[str]) -> None:
    torch_pin = pin_of(build_reqs, 'torch')
    vision_pin = pin_of(build_reqs, 'torchvision')
    have = installed_versions(python, ['torch', 'torchvision'])
    if have.get('torch'):
        version = parse_version(have['torch'])
        if version[:2] < MIN_TORCH:
            fail(f'torch {have["torch"]} is installed but mmpading needs '
                 f'torch >= {".".join(map(str, MIN_TORCH))}; upgrade it '
                 f'(pip install "{torch_pin}" "{vision_pin}") or use a new '
                 'environment')
        if have.get('torchvision'):
            say(f'keeping torch {have["torch"]} with torchvision '
                f'{have["torchvision"]}')
            return
        # torchvision's minor version is torch's + 15 since torch 2.0.
        vision = f'torchvision==0.{version[1] + 15}.*'
        say(f'torch {have["torch"]} found without torchvision: installing '
            f'{vision} (mmpretrain needs it)')
        run([python, '-m', 'pip', 'install', vision,
             f'torch=={have["torch"]}'])
        return
    say(f'installing {torch_pin} and {vision_pin}')
    run([python, '-m', 'pip', 'install', torch_pin, vision_pin])


def wheel_cache_dir(info: dict, cuda_ops: bool) -> Path:
    default = Path.home() / '.cache' / 'mmpading' / 'wheels'
    root = Path(os.environ.get('MMPADING_WHEEL_CACHE', default))
    flavour = f'cu{info["cuda"]}' if cuda_ops else 'cpu'
    torch_version = info['torch'].replace('+', '_')
    key = f'torch{torch_version}-{flavour}-py{info["python"]}'
    return root / key


def patch_cxx_standard(setup_py: Path) -> int:
    """Switch mmcv's hard-coded C++14/17 flags to C++20 (torch >= 2.10)."""
    text = setup_py.read_text()
    patched, count = re.subn(r'-std=c\+\+1[47]', '-std=c++20', text)
    setup_py.write_text(patched)
    return count


def build_mmcv(python: str, mmcv_pin: str, cache: Path,
               cuda_ops: bool) -> Path:
    with tempfile.TemporaryDirectory(prefix='mmpading-mmcv-') as tmp:
        tmp_path = Path(tmp)
        # --no-build-isolation: mmcv's setup.py imports pkg_resources and
        # torch even to read its metadata.
        run([python, '-m', 'pip', 'download', '--no-deps',
             '--no-build-isolation', '--no-binary', ':all:', '-d',
             str(tmp_path / 'sdist'), mmcv_pin])
        sdists = list((tmp_path / 'sdist').glob('mmcv-*.tar.gz'))
        if len(sdists) != 1:
            fail(f'expected one mmcv sdist, found {sdists}')
        with tarfile.open(sdists[0]) as archive:
            archive.extractall(tmp_path / 'src', filter='data')
        src = next((tmp_path / 'src').iterdir())
        count = patch_cxx_standard(src / 'setup.py')
        say(f'patched {count} C++ standard flag(s) in mmcv setup.py to c++20')
        jobs = os.environ.get('MAX_JOBS', str(os.cpu_count() or 1))
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=jobs)
        if cuda_ops:
            env['FORCE_CUDA'] = '1'
        else:
            env.pop('FORCE_CUDA', None)
        cores = os.cpu_count() or 1
        say(f'building mmcv with {"CUDA" if cuda_ops else "CPU"} ops on '
            f'{cores} cores: this takes about 15 minutes on 2 cores (once; '
            f'the wheel is cached in {cache})')
        start = time.time()
        run([python, '-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps',
             '-w', str(tmp_path / 'wheels'), str(src)], env=env)
        say(f'mmcv built in {time.time() - start:.0f} s')
        wheels = list((tmp_path / 'wheels').glob('mmcv-*.whl'))
        if len(wheels) != 1:
            fail(f'expected one mmcv wheel, found {wheels}')
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / wheels[0].name
        shutil.copy2(wheels[0], target)
        return target


def ensure_mmcv(python: str, build_reqs: list[str]) -> None:
    mmcv_pin = pin_of(build_reqs, 'mmcv')
    have = installed_versions(python, ['mmcv'])
    info = torch_info(python)
    if 'error' in info:
        fail(f'torch does not import: {info["error"]}')
    forced = (os.environ.get('MMPADING_FORCE_CUDA') == '1'
              or os.environ.get('FORCE_CUDA') == '1')
    cuda_ops = bool(info['gpu'] or forced) and info['cuda'] is not None
    cache = wheel_cache_dir(info, cuda_ops)
    if have.get('mmcv') == version_of(mmcv_pin) and have.get('mmcv._ext') \
            and _mmcv_ops_import(python):
        say(f'mmcv {have["mmcv"]} with ops already installed')
        return
    cached = sorted(cache.glob(f'mmcv-{version_of(mmcv_pin)}-*.whl'))
    if cached:
        wheel = cached[-1]
        say(f'installing cached mmcv wheel {wheel}')
    else:
        # mmcv's setup.py imports these at build time.
        run([python, '-m', 'pip', 'install', 'numpy', 'packaging',
             'addict', 'yapf', 'pyyaml', 'Pillow', 'opencv-python'])
        wheel = build_mmcv(python, mmcv_pin, cache, cuda_ops)
    run([python, '-m', 'pip', 'install', '--force-reinstall', '--no-deps',
         str(wheel)])
    run([python, '-m', 'pip', 'install', str(wheel)])
    if not _mmcv_ops_import(python):
        fail('mmcv installed but "import mmcv.ops" fails. Remove the cached '
             f'wheel ({cache}) and rerun `make install` to rebuild it; if the '
             'build skipped the ops ("No module named mmcv._ext"), check that '
             'torch imports in this environment and that the build ran with '
             '--no-build-isolation.')
    say('import mmcv.ops works')


def _mmcv_ops_import(python: str) -> bool:
    result = subprocess.run([python, '-c', 'import mmcv.ops'],
                            capture_output=True, text=True)
    return result.returncode == 0


def requirement_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(REQ.glob('*.txt')) + [Path(__file__).resolve(),
                                             REPO / 'setup.py']:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# Where the environment's ``mmpading`` comes from, without importing it.
SOURCE_PROBE = r'''
import importlib.metadata as md, importlib.util as iu, json
from urllib.parse import unquote, urlparse
out = {'location': None, 'editable_dir': None, 'origin': None}
try:
    dist = md.distribution('mmpading')
except md.PackageNotFoundError:
    dist = None
if dist is not None:
    out['location'] = str(dist.locate_file(''))
    direct_url = json.loads(dist.read_text('direct_url.json') or '{}')
    url = urlparse(direct_url.get('url', ''))
    if direct_url.get('dir_info', {}).get('editable') and url.scheme == 'file':
        out['editable_dir'] = unquote(url.path)
try:
    spec = iu.find_spec('mmpading')
except (ImportError, ValueError):
    spec = None
if spec is not None and spec.origin:
    out['origin'] = spec.origin
print(json.dumps(out))
'''


def installed_source(python: str) -> dict:
    """Where the environment's ``mmpading`` currently comes from.

    Returns:
        dict: ``editable_dir``: the folder of an editable install (pip's
        ``direct_url.json``); ``package_dir``: the real folder ``import
        mmpading`` loads (through an editable finder or the mim link);
        ``mim_link``: the folder the mim link points at; ``location``: the
        distribution's ``site-packages``. Each is a resolved path or None.
    """
    info = query(python, SOURCE_PROBE)
    if 'error' in info:
        return {'editable_dir': None, 'package_dir': None,
                'mim_link': None, 'location': None}
    package_dir = None
    if info.get('origin'):
        package_dir = Path(info['origin']).resolve().parent
    mim_link = None
    if info.get('location'):
        link = Path(info['location']) / 'mmpading'
        if link.is_symlink():
            mim_link = Path(os.path.realpath(link))
    editable = info.get('editable_dir')
    return {
        'editable_dir': Path(editable).resolve() if editable else None,
        'package_dir': package_dir,
        'mim_link': mim_link,
        'location': Path(info['location']).resolve()
        if info.get('location') else None,
    }


def other_clone(source: dict, repo: Path) -> Path | None:
    """The clone other than ``repo`` that ``source`` points at, if any.

    A regular (non-editable) install's package folder lies in the
    environment, not in a clone, and does not count.
    """
    ours = repo.resolve()
    candidates = [source['editable_dir']]
    for package in (source['package_dir'], source['mim_link']):
        if package is not None and package.parent != source['location']:
            # A source checkout's package folder sits in the clone itself.
            candidates.append(package.parent)
    for folder in candidates:
        if folder is not None and folder != ours:
            return folder
    return None


def announce_other_clone(python: str, previous: Path, repo: Path) -> None:
    """Say that the environment stops using the clone ``previous``."""
    venv = Path(python).parent.parent
    gone = '' if previous.exists() else ' (that folder no longer exists)'
    say(f'NOTE: mmpading in {venv} came from the clone {previous}{gone}; it '
        f'now comes from this clone, {repo.resolve()}: `import mmpading`, '
        '`mim train|test mmpading` and their configs and tools. To point '
        f'it back: cd {previous} && VIRTUAL_ENV={venv} make install')


def install_this_clone(python: str) -> None:
    """Editable install of this clone, and the mim link to it."""
    say('installing mmpading (editable)')
    run([python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
         '-e', str(REPO)])
    link_for_mim(python)


def link_for_mim(python: str) -> None:
    """Let openmim find the editable install's ``.mim/{tools,configs}``.

    mim looks for a codebase at ``<distribution location>/<name>``. For a
    PEP 660 editable install that is ``site-packages/mmpading``, which does
    not exist (an import hook serves the package from the repository), so
    ``mim train mmpading`` fails. A symlink there to the repository's
    package gives mim the path; imports resolve to the same files.
    """
    info = query(python, 'import importlib.metadata as m, json; '
                 "d = m.distribution('mmpading'); "
                 "print(json.dumps({'location': str(d.locate_file(''))}))")
    if 'error' in info:
        fail('mmpading is not installed: ' + ' '.join(info['error']))
    link = Path(info['location']) / 'mmpading'
    target = REPO / 'mmpading'
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink():
        say(f'the mim link {link} pointed at {os.path.realpath(link)}; it '
            f'now points at {target}')
        link.unlink()
    elif link.exists():
        return  # a regular (non-editable) install ships its own copy
    say(f'linking {link} -> {target} for mim')
    link.symlink_to(target, target_is_directory=True)


def up_to_date(python: str, stamp: Path, pinned: dict[str, str]) -> bool:
    """True if the last install's inputs and the pinned versions hold."""
    if not stamp.exists():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except json.JSONDecodeError:
        return False
    if recorded.get('digest') != requirement_digest():
        return False
    have = installed_versions(python, list(pinned) + ['mmpading', 'torch'])
    if not have.get('mmcv._ext') or not have.get('mmpading') \
            or not have.get('torch'):
        return False
    return all(have.get(name) == version for name, version in pinned.items())


def main() -> None:
    # No options: this gives `-h` a help text instead of an installation.
    argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    start = time.time()
    python = target_python()
    build_reqs = read_requirements('build.txt')
    runtime = read_requirements('runtime.txt')
    pinned = {r.split('==')[0].lower(): r.split('==')[1]
              for r in runtime + build_reqs + read_requirements('nodeps.txt')
              if '==' in r and not r.startswith(('torch', 'torchvision'))}
    stamp = Path(python).parent.parent / STAMP_NAME
    # Another clone installed into this environment before: it is about to
    # be replaced by this one, which a shared virtualenv must not hide.
    previous = other_clone(installed_source(python), REPO)
    if previous is not None:
        announce_other_clone(python, previous, REPO)
    if up_to_date(python, stamp, pinned):
        if previous is not None:
            install_this_clone(python)
        else:
            link_for_mim(python)
        say('everything is installed and up to date '
            f'({time.time() - start:.1f} s)')
        return
    say('installing pip and build tools')
    tools = [r for r in build_reqs
             if not r.startswith(('torch', 'torchvision', 'mmcv'))]
    run([python, '-m', 'pip', 'install', '--upgrade', 'pip>=24', *tools])
    ensure_torch(python, build_reqs)
    ensure_mmcv(python, build_reqs)
    say('installing the OpenMMLab stack and test tools')
    run([python, '-m', 'pip', 'install', *runtime,
         *read_requirements('tests.txt'), *read_requirements('optional.txt')])
    run([python, '-m', 'pip', 'install', '--no-deps',
         *read_requirements('nodeps.txt')])
    install_this_clone(python)
    if not _mmcv_ops_import(python):
        fail('a later install step replaced mmcv; rerun `make install`')
    check = subprocess.run(
        [python, '-c', 'import mmpading, mmdet, mmseg, mmpretrain; '
         'print(mmpading.__version__)'], capture_output=True, text=True)
    if check.returncode != 0:
        fail('the stack installed but does not import:\n' + check.stderr)
    stamp.write_text(json.dumps({'digest': requirement_digest(),
                                 'python': python}))
    say(f'done in {time.time() - start:.0f} s: mmpading '
        f'{check.stdout.strip()} in {python}')


if __name__ == '__main__':
    main()
