"""The test tree itself: pytest collects it without packages."""
from collections import Counter
from pathlib import Path

TESTS_ROOT = Path(__file__).parent


def test_test_files_have_unique_basenames():
    """Without __init__.py files pytest imports test modules by basename:
    two files of one name stop the whole collection ("import file
    mismatch")."""
    names = Counter(path.name for path in TESTS_ROOT.rglob('test_*.py'))
    assert [name for name, count in names.items() if count > 1] == []
