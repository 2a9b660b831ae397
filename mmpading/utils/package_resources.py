"""Data files shipped inside the package, named ``mmpading::<name>``.

The package carries a few data files in ``mmpading/resources/`` (for
example the ZSI word2vec class embeddings). A config names one without an
absolute path, in the spirit of mmengine's ``mmdet::`` config prefix::

    class_embeddings = 'mmpading::class_embeddings/word2vec_zsi_48_17.json'

The name is resolved against the ``resources/`` folder of the *imported*
``mmpading`` package, so a source checkout, an editable install and an
installed wheel (or ``mim install``) find the same file. Any other string is
an ordinary file path and is returned unchanged.
"""
from __future__ import annotations

import difflib
import os
import os.path as osp

PACKAGE_RESOURCE_PREFIX = 'mmpading::'
# Files of resources/ that describe the data rather than being data.
_NOT_RESOURCES = ('README.md', )
_NOT_RESOURCE_PREFIXES = ('LICENSE', )


def resources_root() -> str:
    """Absolute path of the installed package's ``resources/`` folder."""
    package_dir = osp.dirname(osp.dirname(osp.abspath(__file__)))
    return osp.join(package_dir, 'resources')


def is_package_resource(path: str) -> bool:
    """Whether ``path`` is an ``mmpading::<name>`` resource name."""
    return isinstance(path, str) and path.startswith(PACKAGE_RESOURCE_PREFIX)


def list_package_resources(folder: str = '') -> list[str]:
    """The ``mmpading::<name>`` names of the shipped data files.

    Args:
        folder (str): Only list the files under ``resources/<folder>``
            (e.g. ``'class_embeddings'``); ``''`` lists every one.

    Returns:
        list[str]: Sorted resource names, e.g.
        ``['mmpading::class_embeddings/word2vec_zsi_48_17.json', ...]``.
    """
    root = resources_root()
    start = osp.join(root, folder) if folder else root
    names = []
    for directory, _, files in os.walk(start):
        for file_name in files:
            if file_name in _NOT_RESOURCES or \
                    file_name.startswith(_NOT_RESOURCE_PREFIXES):
                continue
            relative = osp.relpath(osp.join(directory, file_name), root)
            names.append(PACKAGE_RESOURCE_PREFIX +
                         relative.replace(osp.sep, '/'))
    return sorted(names)


def resolve_package_resource(path: str, what: str = 'file') -> str:
    """The file a path or an ``mmpading::<name>`` resource name points at.

    Args:
        path (str): A file path (returned unchanged, whether or not it
            exists: the caller reports a missing file) or
            ``mmpading::<name>``, ``<name>`` relative to ``resources/``.
        what (str): What the file is, for the error message (e.g.
            ``'class embedding file'``).

    Returns:
        str: The path to open.

    Raises:
        FileNotFoundError: For a resource name the package does not ship;
            the message lists the shipped resources of the same folder
            (all of them when the folder is unknown) and says how to give a
            file of one's own instead.
    """
    if not is_package_resource(path):
        return path
    name = path[len(PACKAGE_RESOURCE_PREFIX):].strip('/')
    root = resources_root()
    resolved = osp.normpath(osp.join(root, name))
    # A resource name never leaves resources/ ('..' or an absolute name).
    inside = bool(name) and not osp.isabs(name) and \
        osp.commonpath([root, resolved]) == root
    if inside and osp.isfile(resolved):
        return resolved
    # List the files of the folder asked for when it is one of resources/.
    folder = name.split('/', 1)[0] if inside and '/' in name else ''
    if not (folder and osp.isdir(osp.join(root, folder))):
        folder = ''
    available = list_package_resources(folder)
    matches = difflib.get_close_matches(path, available, n=1, cutoff=0.6)
    hint = f' Did you mean {matches[0]!r}?' if matches else ''
    listing = ''.join(f'\n  {resource}' for resource in available) or \
        ' (none)'
    raise FileNotFoundError(
        f'{what[:1].upper()}{what[1:]} {path!r} is not a resource of the '
        f'installed mmpading package (looked for {resolved}).{hint} Shipped '
        f'resources:{listing}\nName one of them, or give the path of a '
        'file of your own instead.')
