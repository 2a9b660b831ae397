"""Shared fixtures."""
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def drop_closed_log_streams():
    """After each test, detach log handlers whose stream pytest closed.

    A Runner built under ``capsys`` / ``capfd`` gives its MMLogger a
    StreamHandler on the captured stream; that logger stays mmengine's
    current instance, so a later test that logs before building its own
    would write to the closed stream ('--- Logging error ---').
    """
    yield
    import logging

    from mmengine.logging import MMLogger
    loggers = list(MMLogger._instance_dict.values()) + [logging.getLogger()]
    for logger in loggers:
        for handler in list(logger.handlers):
            stream = getattr(handler, 'stream', None)
            if stream is not None and getattr(stream, 'closed', False):
                logger.removeHandler(handler)


@pytest.fixture(scope='session')
def word2vec_dir() -> Path:
    """The real ZSI word2vec files shipped with the package.

    ``mmpading/resources/word2vec`` of the imported package: the
    ``word_w2v_withbg_{48_17,65_15}.txt`` release files (see
    ``mmpading/resources/README.md``).
    """
    from mmpading.utils.package_resources import resources_root
    return Path(resources_root()) / 'word2vec'


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

    from mmpading.utils.config_utils import toy_config

    from _helpers import tiny_run_options
    work_dir = tmp_path_factory.mktemp('stage1')
    cfg = toy_config('pading_toy_stage1', tiny_toy_root, str(work_dir),
                     **tiny_run_options(2))
    # No evaluation here (mmengine validates at max_iters otherwise).
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.train()
    return str(work_dir / 'iter_2.pth')


@pytest.fixture(scope='session')
def stage2_checkpoint(tiny_toy_root, stage1_checkpoint,
                      tmp_path_factory) -> str:
    """A PADing stage-2 checkpoint after 2 iterations (batch 4, no
    validation) on the tiny toy set, from :func:`stage1_checkpoint`."""
    from mmpading.apis import train_toy_config
    work_dir = tmp_path_factory.mktemp('stage2')
    return train_toy_config(
        'pading_toy_stage2', str(work_dir), tiny_toy_root, max_iters=2,
        load_from=stage1_checkpoint, quiet_console=True, options={
            'train_dataloader.batch_size': 4,
            'default_hooks.logger.interval': 1,
            'val_cfg': None,
            'val_dataloader': None,
            'val_evaluator': None,
        })


@pytest.fixture
def cpu_autocast_wrapper() -> type:
    """An OptimWrapper class whose context autocasts to bfloat16 on the CPU,
    as AmpOptimWrapper's does on a GPU (AMP code paths without a GPU)."""
    import torch
    from mmengine.optim import OptimWrapper

    class CpuAutocastWrapper(OptimWrapper):

        @contextmanager
        def optim_context(self, model):
            with super().optim_context(model), torch.autocast(
                    'cpu', dtype=torch.bfloat16):
                yield

    return CpuAutocastWrapper
