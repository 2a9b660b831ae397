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

Air-gapped machines (``docs/get_started.md``): where the internet is,
``tools/install.py --download DIR`` (``make wheelhouse``) collects every
wheel mmpading needs beyond torch / torchvision, for a target Python and
platform (``--python-version 3.12 --platform manylinux_2_28_x86_64``),
plus the mmcv sdist; where it is not, ``MMPADING_WHEELHOUSE=DIR make
install`` installs from that folder alone (no package index), keeps the
torch that is there and builds mmcv from the sdist.

With CUDA ops, mmcv is built for the visible GPUs' architectures only
(``TORCH_CUDA_ARCH_LIST`` overrides), on all cores (``MAX_JOBS``
overrides); the build time is printed and kept in the environment's
``.mmpading-install.json``.

Environment variables:
    MMPADING_WHEELHOUSE: install from this folder (made by ``--download``)
        with no package index.
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
WHEELHOUSE_MANIFEST = 'mmpading-wheelhouse.json'
# mmcv's setup.py imports these at build time.
MMCV_BUILD_DEPS = ['numpy', 'packaging', 'addict', 'yapf', 'pyyaml', 'Pillow',
                   'opencv-python']
# Legacy names of manylinux tags and the glibc version they stand for.
LEGACY_MANYLINUX = {'manylinux1': (2, 5), 'manylinux2010': (2, 12),
                    'manylinux2014': (2, 17)}
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
        command = [base, '-m', 'venv', str(venv_dir)]
        if os.environ.get('MMPADING_WHEELHOUSE') and 'error' not in query(
                base, 'import json, torch; print(json.dumps({}))'):
            # An offline machine's torch (its CUDA build) lives in the base
            # interpreter: the new environment sees it and keeps it.
            command.append('--system-site-packages')
            say(f'{base} has torch: {venv_dir} will see its packages '
                '(--system-site-packages) and keep that torch')
        say(f'creating {venv_dir} with {base}')
        run(command)
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
        '"arch": sorted({"%d.%d" % torch.cuda.get_device_capability(i) '
        'for i in range(torch.cuda.device_count())}) '
        'if torch.cuda.is_available() else [], '
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
    wheelhouse = os.environ.get('MMPADING_WHEELHOUSE')
    if wheelhouse and not list(Path(wheelhouse).glob('torch-*.whl')):
        fail(f'no torch in {Path(python).parent.parent} and none in the '
             f'wheelhouse {wheelhouse}. Install your build of torch (e.g. '
             'the CUDA one of this GPU node) into an environment and '
             'activate it (the installer keeps it), or build the '
             'wheelhouse with --with-torch')
    say(f'installing {torch_pin} and {vision_pin}')
    run([python, '-m', 'pip', 'install', torch_pin, vision_pin])


def cuda_arch_list(info: dict) -> str | None:
    """``TORCH_CUDA_ARCH_LIST`` for the mmcv build.

    The user's value if set, else the visible GPUs' compute capabilities
    (one architecture builds several times faster than torch's default
    list), else None (torch's default).
    """
    if os.environ.get('TORCH_CUDA_ARCH_LIST'):
        return os.environ['TORCH_CUDA_ARCH_LIST']
    return ';'.join(info.get('arch') or []) or None


def wheel_cache_dir(info: dict, cuda_ops: bool) -> Path:
    default = Path.home() / '.cache' / 'mmpading' / 'wheels'
    root = Path(os.environ.get('MMPADING_WHEEL_CACHE', default))
    flavour = f'cu{info["cuda"]}' if cuda_ops else 'cpu'
    arch = cuda_arch_list(info) if cuda_ops else None
    if arch:
        # A wheel built for some architectures fails on the others.
        flavour += '-sm' + '_'.join(
            re.sub(r'[^0-9A-Za-z]', '', part) for part in arch.split(';'))
    torch_version = info['torch'].replace('+', '_')
    key = f'torch{torch_version}-{flavour}-py{info["python"]}'
    return root / key


def patch_cxx_standard(setup_py: Path) -> int:
    """Switch mmcv's hard-coded C++14/17 flags to C++20 (torch >= 2.10)."""
    text = setup_py.read_text()
    patched, count = re.subn(r'-std=c\+\+1[47]', '-std=c++20', text)
    setup_py.write_text(patched)
    return count


def mmcv_sdist(python: str, mmcv_pin: str, folder: Path) -> Path:
    """The mmcv sdist: from the wheelhouse, else downloaded into ``folder``."""
    wheelhouse = os.environ.get('MMPADING_WHEELHOUSE')
    name = f'mmcv-{version_of(mmcv_pin)}.tar.gz'
    if wheelhouse:
        sdist = Path(wheelhouse) / name
        if not sdist.is_file():
            fail(f'the wheelhouse {wheelhouse} has no {name}; rebuild it '
                 'with tools/install.py --download (make wheelhouse)')
        return sdist
    # --no-build-isolation: mmcv's setup.py imports pkg_resources and
    # torch even to read its metadata.
    run([python, '-m', 'pip', 'download', '--no-deps',
         '--no-build-isolation', '--no-binary', ':all:', '-d', str(folder),
         mmcv_pin])
    sdists = list(folder.glob('mmcv-*.tar.gz'))
    if len(sdists) != 1:
        fail(f'expected one mmcv sdist, found {sdists}')
    return sdists[0]


def build_mmcv(python: str, mmcv_pin: str, cache: Path, cuda_ops: bool,
               info: dict) -> tuple[Path, dict]:
    """Build mmcv with ops from the sdist; the wheel goes to ``cache``.

    Returns:
        tuple[Path, dict]: The cached wheel, and what the build was
        (``seconds``, ``cuda_ops``, ``cuda_arch_list``, ``jobs``).
    """
    with tempfile.TemporaryDirectory(prefix='mmpading-mmcv-') as tmp:
        tmp_path = Path(tmp)
        sdist = mmcv_sdist(python, mmcv_pin, tmp_path / 'sdist')
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp_path / 'src', filter='data')
        src = next((tmp_path / 'src').iterdir())
        count = patch_cxx_standard(src / 'setup.py')
        say(f'patched {count} C++ standard flag(s) in mmcv setup.py to c++20')
        jobs = os.environ.get('MAX_JOBS', str(os.cpu_count() or 1))
        env = dict(os.environ, MMCV_WITH_OPS='1', MAX_JOBS=jobs)
        arch = None
        if cuda_ops:
            env['FORCE_CUDA'] = '1'
            arch = cuda_arch_list(info)
            if arch:
                env['TORCH_CUDA_ARCH_LIST'] = arch
                source = ('TORCH_CUDA_ARCH_LIST' if os.environ.get(
                    'TORCH_CUDA_ARCH_LIST') else 'the visible GPU')
                say(f'CUDA ops for compute capability {arch} only (from '
                    f'{source}; set TORCH_CUDA_ARCH_LIST to choose others)')
        else:
            env.pop('FORCE_CUDA', None)
        say(f'building mmcv with {"CUDA" if cuda_ops else "CPU"} ops with '
            f'{jobs} parallel jobs: this takes about 15 minutes on 2 cores '
            f'(once; the wheel is cached in {cache})')
        start = time.time()
        run([python, '-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps',
             '-w', str(tmp_path / 'wheels'), str(src)], env=env)
        seconds = time.time() - start
        say(f'mmcv built in {seconds:.0f} s')
        wheels = list((tmp_path / 'wheels').glob('mmcv-*.whl'))
        if len(wheels) != 1:
            fail(f'expected one mmcv wheel, found {wheels}')
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / wheels[0].name
        shutil.copy2(wheels[0], target)
        return target, dict(seconds=round(seconds, 1), cuda_ops=cuda_ops,
                            cuda_arch_list=arch, jobs=int(jobs),
                            wheel=str(target))


def ensure_mmcv(python: str, build_reqs: list[str]) -> dict | None:
    """Install mmcv with ops; returns the build record if it was built."""
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
        return None
    build = None
    cached = sorted(cache.glob(f'mmcv-{version_of(mmcv_pin)}-*.whl'))
    if cached:
        wheel = cached[-1]
        say(f'installing cached mmcv wheel {wheel}')
    else:
        run([python, '-m', 'pip', 'install', *MMCV_BUILD_DEPS])
        wheel, build = build_mmcv(python, mmcv_pin, cache, cuda_ops, info)
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
    return build


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


def _read_stamp(stamp: Path) -> dict:
    try:
        return json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


# ------------------------------------------------------------- wheelhouse
def platform_tags(platforms: list[str]) -> list[str]:
    """Each platform tag and the older manylinux tags it accepts.

    ``pip download --platform`` matches tags exactly, and many wheels are
    tagged only ``manylinux2014_x86_64`` or ``manylinux_2_17_x86_64``: a
    ``manylinux_2_28_x86_64`` machine runs them, so they are asked for too.

    Args:
        platforms (list[str]): Tags such as ``manylinux_2_28_x86_64``.

    Returns:
        list[str]: The tags in order, newest first, without repeats.
    """
    tags: list[str] = []
    for platform in platforms:
        modern = re.fullmatch(r'manylinux_(\d+)_(\d+)_(\w+)', platform)
        legacy = re.fullmatch(r'(manylinux\d+)_(\w+)', platform)
        if modern:
            major, newest, arch = int(modern[1]), int(modern[2]), modern[3]
        elif legacy and legacy[1] in LEGACY_MANYLINUX:
            (major, newest), arch = LEGACY_MANYLINUX[legacy[1]], legacy[2]
        else:
            tags.append(platform)
            continue
        for minor in range(newest, 4, -1):
            tags.append(f'manylinux_{major}_{minor}_{arch}')
            for name, version in LEGACY_MANYLINUX.items():
                if version == (major, minor):
                    tags.append(f'{name}_{arch}')
    return list(dict.fromkeys(tags))


def pip_target_options(python_version: str | None,
                       platforms: list[str]) -> list[str]:
    """``pip download`` options for wheels of another Python / platform.

    Wheels only: pip cannot build an sdist for another target.
    """
    options = ['--only-binary=:all:']
    if python_version:
        options += ['--python-version', python_version, '--implementation',
                    'cp']
    for tag in platform_tags(platforms):
        options += ['--platform', tag]
    return options


def download_wheelhouse(folder: Path, python_version: str | None,
                        platforms: list[str], with_torch: bool) -> None:
    """Collect every wheel of an install, and the mmcv sdist, in ``folder``.

    Runs ``pip download`` of this interpreter (``make wheelhouse`` uses the
    environment's), which needs torch for the mmcv sdist: mmcv's setup.py
    imports it even to read its metadata.
    """
    probe = query(sys.executable, 'import json, torch; '
                  'print(json.dumps({"torch": torch.__version__}))')
    if 'error' in probe:
        fail(f'{sys.executable} cannot import torch, which pip needs to read '
             'the mmcv sdist; run the download with the environment\'s '
             'python: make wheelhouse WHEELHOUSE=DIR (installs first)')
    folder.mkdir(parents=True, exist_ok=True)
    build_reqs = read_requirements('build.txt')
    target = pip_target_options(python_version, platforms)
    tags = platform_tags(platforms)
    packages = ['pip>=24', *[r for r in build_reqs if not r.startswith((
        'torch', 'torchvision', 'mmcv'))], *MMCV_BUILD_DEPS,
        *read_requirements('runtime.txt'), *read_requirements('tests.txt'),
        *read_requirements('optional.txt')]
    if with_torch:
        packages += [pin_of(build_reqs, 'torch'),
                     pin_of(build_reqs, 'torchvision')]
    this_python = '{}.{}'.format(*sys.version_info[:2])
    start = time.time()
    say(f'downloading the wheels of mmpading\'s dependencies into {folder}'
        f' (Python {python_version or this_python}, '
        f'platform {", ".join(tags) if tags else "this machine"})')
    pip = [sys.executable, '-m', 'pip', 'download', '-d', str(folder)]
    run([*pip, *target, *packages])
    run([*pip, *target, '--no-deps', *read_requirements('nodeps.txt')])
    mmcv_pin = pin_of(build_reqs, 'mmcv')
    run([*pip, '--no-deps', '--no-build-isolation', '--no-binary', ':all:',
         mmcv_pin])
    files = sorted(path.name for path in folder.iterdir()
                   if path.name != WHEELHOUSE_MANIFEST)
    manifest = dict(
        python_version=python_version or this_python,
        platforms=tags or None,
        with_torch=with_torch,
        mmcv_sdist=f'mmcv-{version_of(mmcv_pin)}.tar.gz',
        requirements_digest=requirement_digest(),
        created=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        files=files)
    (folder / WHEELHOUSE_MANIFEST).write_text(json.dumps(manifest, indent=2))
    size = sum(path.stat().st_size for path in folder.iterdir())
    say(f'wheelhouse ready in {time.time() - start:.0f} s: {len(files)} '
        f'files, {size / 2**20:.0f} MiB in {folder}. On the machine without '
        f'internet: MMPADING_WHEELHOUSE={folder} make install')


def use_wheelhouse(folder: str) -> Path:
    """Check ``MMPADING_WHEELHOUSE`` and point every pip call at it alone.

    Returns:
        Path: The wheelhouse, resolved.
    """
    path = Path(folder).expanduser().resolve()
    manifest_path = path / WHEELHOUSE_MANIFEST
    if not path.is_dir():
        fail(f'MMPADING_WHEELHOUSE={folder}: no such folder. Build one where '
             'the internet is (make wheelhouse WHEELHOUSE=DIR) and copy it '
             'here')
    if not manifest_path.is_file():
        fail(f'MMPADING_WHEELHOUSE={folder} has no {WHEELHOUSE_MANIFEST}: it '
             'was not made by tools/install.py --download (make wheelhouse)')
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        fail(f'{manifest_path} is not valid JSON ({error}); rebuild the '
             'wheelhouse')
    missing = [name for name in manifest.get('files', [])
               if not (path / name).is_file()]
    if missing:
        fail(f'the wheelhouse {path} lacks {len(missing)} of the files its '
             f'manifest lists (e.g. {missing[0]}); copy it again completely')
    # Every pip call of the installer inherits these: no index at all.
    os.environ['PIP_NO_INDEX'] = '1'
    os.environ['PIP_FIND_LINKS'] = str(path)
    os.environ['MMPADING_WHEELHOUSE'] = str(path)
    say(f'installing from the wheelhouse {path} only (no package index)')
    return path


def check_wheelhouse_python(wheelhouse: Path, python: str) -> None:
    """Refuse a wheelhouse made for another Python than the environment's."""
    manifest = json.loads((wheelhouse / WHEELHOUSE_MANIFEST).read_text())
    have = query(python, 'import json, sys; '
                 'print(json.dumps({"v": "%d.%d" % sys.version_info[:2]}))')
    wanted = manifest.get('python_version')
    if 'v' in have and wanted and have['v'] != wanted:
        fail(f'the wheelhouse {wheelhouse} holds wheels for Python {wanted}, '
             f'but {python} is Python {have["v"]}. Build one for this '
             f'Python: tools/install.py --download DIR --python-version '
             f'{have["v"]} (with --platform for another machine)')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--download',
        metavar='DIR',
        help='collect a wheelhouse in DIR instead of installing')
    parser.add_argument(
        '--python-version',
        help='with --download: target Python, e.g. 3.12 (default: this one)')
    parser.add_argument(
        '--platform',
        action='append',
        default=[],
        help='with --download: target platform tag, e.g. '
        'manylinux_2_28_x86_64 (older manylinux tags it runs are added); '
        'repeatable; default: this machine')
    parser.add_argument(
        '--with-torch',
        action='store_true',
        help='with --download: torch and torchvision too (for a machine '
        'that has no torch)')
    args = parser.parse_args(argv)
    if args.download is None and (args.python_version or args.platform
                                  or args.with_torch):
        parser.error('--python-version, --platform and --with-torch go with '
                     '--download DIR')
    if args.python_version and not re.fullmatch(r'3\.\d+',
                                                 args.python_version):
        parser.error(f'--python-version {args.python_version}: give the '
                     'major.minor version, e.g. 3.12')
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.download is not None:
        download_wheelhouse(Path(args.download).expanduser().resolve(),
                            args.python_version, args.platform,
                            args.with_torch)
        return
    start = time.time()
    wheelhouse = None
    if os.environ.get('MMPADING_WHEELHOUSE'):
        wheelhouse = use_wheelhouse(os.environ['MMPADING_WHEELHOUSE'])
    python = target_python()
    if wheelhouse is not None:
        check_wheelhouse_python(wheelhouse, python)
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
    build = ensure_mmcv(python, build_reqs)
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
    record = {'digest': requirement_digest(), 'python': python}
    earlier = _read_stamp(stamp)
    # The last mmcv build stays on record (gpu_check.py reports it).
    if build is not None or earlier.get('mmcv_build'):
        record['mmcv_build'] = build or earlier['mmcv_build']
    stamp.write_text(json.dumps(record, indent=2))
    say(f'done in {time.time() - start:.0f} s: mmpading '
        f'{check.stdout.strip()} in {python}')


if __name__ == '__main__':
    main()
