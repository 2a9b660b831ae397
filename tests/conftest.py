"""Shared fixtures."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def shared_data_dir() -> Path:
    """The read-only reference data (real word2vec class embeddings).

    It lives beside the repository in ``../shared/data``; set
    ``MMPADING_SHARED_DATA`` to point elsewhere.
    """
    path = Path(os.environ.get('MMPADING_SHARED_DATA',
                               REPO_ROOT.parent / 'shared' / 'data'))
    if not path.is_dir():
        pytest.fail(f'reference data not found at {path}; set '
                    'MMPADING_SHARED_DATA to the folder holding '
                    'word_w2v_withbg_48_17.txt')
    return path
