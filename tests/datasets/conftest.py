"""A tiny toy data set shared by the data set tests."""
from pathlib import Path

import pytest

from mmpading.datasets.toy_generator import generate_toy_dataset

TINY_TOY = dict(seed=0, num_train=12, num_val=6, image_size=64,
                train_unseen_fraction=0.5, val_unseen_fraction=0.5)


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory) -> Path:
    """Folder of a 12 + 6 image, 64 px toy data set (default classes)."""
    root = tmp_path_factory.mktemp('toy')
    generate_toy_dataset(str(root), **TINY_TOY)
    return root
