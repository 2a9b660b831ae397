"""Packaging of mmpading.

Version pins live in ``requirements/`` (read here and by
``tools/install.py``). ``make install`` is the supported way to install:
mmcv must be built from source against the installed torch first.
"""
import os
import os.path as osp
import shutil
import sys
import warnings

from setuptools import find_namespace_packages, find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    namespace: dict = {}
    with open(osp.join(HERE, 'mmpading', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), namespace)
    return namespace['__version__']


def parse_requirements(name: str) -> list:
    requirements = []
    with open(osp.join(HERE, 'requirements', name)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                requirements.append(line)
    return requirements


# Data shipped in the package, named mmpading::<path> in configs (see
# mmpading/utils/package_resources.py). Its folders hold no Python code;
# setuptools wants them listed as (namespace) packages to ship their files.
RESOURCE_PACKAGES = [
    'mmpading.' + name for name in find_namespace_packages(
        where=osp.join(HERE, 'mmpading'),
        include=['resources', 'resources.*'])
]


def add_mim_extension() -> None:
    """Ship ``configs`` and ``tools`` as package data for ``mim``.

    mim looks for ``<package>/.mim/{configs,tools}``: symlinks for an
    editable install, copies for a wheel or sdist.
    """
    if any(arg in sys.argv for arg in ('develop', 'editable_wheel')):
        mode = 'symlink'
    elif any(arg in sys.argv for arg in ('sdist', 'bdist_wheel', 'install')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'mmpading', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools'):
        src = osp.join(HERE, name)
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            try:
                os.symlink(osp.relpath(src, mim_path), dst)
                continue
            except OSError:
                warnings.warn(f'could not symlink {src}; copying instead',
                              stacklevel=1)
        shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmpading',
        version=get_version(),
        description='PADing zero-shot panoptic, instance and semantic '
        'segmentation for mmdet 3.x / mmsegmentation 1.x',
        long_description=open(osp.join(HERE, 'README.md')).read(),
        long_description_content_type='text/markdown',
        license='Apache License 2.0',
        python_requires='>=3.10',
        packages=find_packages(include=['mmpading', 'mmpading.*']) +
        RESOURCE_PACKAGES,
        include_package_data=True,
        package_data={
            'mmpading': ['.mim/**/*'],
            **{package: ['*']
               for package in RESOURCE_PACKAGES},
        },
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'tests': parse_requirements('tests.txt'),
            'mim': parse_requirements('optional.txt'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False,
    )
