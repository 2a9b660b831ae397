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


@pytest.fixture(scope='session')
def tiny_toy_root(tmp_path_factory) -> str:
    """A small generated toy data set (16 train / 6 val images, 64 px)."""
    from mmpading.datasets.toy_generator import generate_toy_dataset
    root = tmp_path_factory.mktemp('tiny_toy')
    generate_toy_dataset(
        str(root), seed=0, num_train=16, num_val=6, image_size=64)
    return str(root)


@pytest.fixture(scope='session')
def stage1_checkpoint(tiny_toy_root, tmp_path_factory) -> str:
    """A stage-1 checkpoint trained for 2 iterations on the tiny toy set."""
    from mmengine.runner import Runner

    from mmpading.testing import tiny_run_options, toy_config
    work_dir = tmp_path_factory.mktemp('stage1')
    cfg = toy_config('pading_toy_stage1', tiny_toy_root, str(work_dir),
                     **tiny_run_options(2))
    # No evaluation here (mmengine validates at max_iters otherwise).
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    return str(work_dir / 'iter_2.pth')
