"""load_tool_module: scripts imported once, dataclasses work, failures clean.
"""
import sys

import pytest

from _helpers import load_tool_module

SCRIPT = '''
from dataclasses import dataclass


@dataclass
class Row:
    value: int


ROW = Row(3)
'''


def test_script_is_imported_once_with_working_dataclasses(tmp_path):
    path = tmp_path / 'tool_under_test_a.py'
    path.write_text(SCRIPT)
    try:
        module = load_tool_module(str(path))
        assert module.ROW.value == 3
        assert load_tool_module(str(path)) is module
        assert sys.modules['tool_under_test_a'] is module
    finally:
        sys.modules.pop('tool_under_test_a', None)


def test_a_failing_script_leaves_no_module_behind(tmp_path):
    path = tmp_path / 'tool_under_test_b.py'
    path.write_text('raise RuntimeError("bad tool")\n')
    with pytest.raises(RuntimeError, match='bad tool'):
        load_tool_module(str(path))
    assert 'tool_under_test_b' not in sys.modules


def test_a_script_imports_the_modules_of_its_folder(tmp_path):
    folder = tmp_path / 'scripts'
    folder.mkdir()
    (folder / 'shared_piece_c.py').write_text('VALUE = 7\n')
    (folder / 'tool_under_test_c.py').write_text(
        'from shared_piece_c import VALUE\n')
    try:
        module = load_tool_module(str(folder / 'tool_under_test_c.py'))
        assert module.VALUE == 7
        assert sys.path.index(str(folder)) > 0  # after what was there
    finally:
        for name in ('tool_under_test_c', 'shared_piece_c'):
            sys.modules.pop(name, None)
        sys.path.remove(str(folder))
