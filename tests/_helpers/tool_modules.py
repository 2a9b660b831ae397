"""Import a script of ``tools/`` as a module, for tests of its functions."""
from __future__ import annotations

import importlib.util
import os.path as osp
import sys
from types import ModuleType


def load_tool_module(path: str) -> ModuleType:
    """Import the script at ``path`` as the module named by its stem.

    The module is registered in ``sys.modules`` before it runs (dataclasses
    look their module up there) and reused by later calls. As for a script
    that Python runs, the script's folder is on ``sys.path`` (appended,
    so that it shadows nothing), where the script finds the modules of its
    folder by name (``benchmark_stage2`` imports ``benchmark_setup``); the
    test shares one copy of each with the script.

    Args:
        path (str): The script, e.g. ``tools/analysis_tools/vis_features.py``.

    Returns:
        ModuleType: The executed module.
    """
    path = osp.abspath(path)
    if osp.dirname(path) not in sys.path:
        sys.path.append(osp.dirname(path))
    name = osp.splitext(osp.basename(path))[0]
    module = sys.modules.get(name)
    if module is not None and osp.abspath(
            getattr(module, '__file__', '') or '') == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
