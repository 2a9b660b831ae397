"""RandomStateHook: a resumed run repeats the uninterrupted one exactly.

The runs here are small mmengine runs in this process (a linear model with
dropout on a data set whose items draw from numpy and ``random``); the
kill -9 of real toy training is in ``tests/tools/test_train_resume.py``.
"""
import random
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmpading.engine.hooks import (
    RandomStateHook,
    StateRestoringIterator,
    capture_random_state,
    restore_random_state,
)
from mmpading.engine.hooks.random_state_hook import RANDOM_STATE_KEY

from _helpers import state_differences

REPO = Path(__file__).resolve().parents[3]
MAX_ITERS = 6
SAVED_ITER = 3


def draw_everything() -> tuple:
    """One draw from every generator the hook restores."""
    return (random.random(), float(np.random.rand()), np.random.randn(),
            torch.rand(3).tolist())


# --- the state itself ---------------------------------------------------


def test_state_round_trips_through_a_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    state = capture_random_state(sampler_seed=7)
    expected = draw_everything()

    torch.save({RANDOM_STATE_KEY: state}, tmp_path / 'ckpt.pth')
    loaded = torch.load(tmp_path / 'ckpt.pth', weights_only=True)
    draw_everything()  # move every generator on
    assert draw_everything() != expected
    assert restore_random_state(loaded[RANDOM_STATE_KEY]) == []
    assert draw_everything() == expected
    assert loaded[RANDOM_STATE_KEY]['sampler_seed'] == 7


def test_wrapper_restores_once_right_before_the_scheduled_batch():
    torch.manual_seed(0)
    state = capture_random_state()
    expected = torch.rand(1).item()
    seen = []

    def batches():
        while True:
            seen.append(torch.rand(1).item())  # what the pipeline draws
            yield len(seen)

    iterator = StateRestoringIterator(batches())
    iterator.schedule(state, batch_index=2)
    next(iterator), next(iterator)  # the skip of a resume
    assert expected not in seen
    next(iterator)
    assert seen[2] == expected  # restored before fetching batch 2
    next(iterator)
    assert seen[3] != expected  # and only once
    assert iterator.batch_index == 4
    with pytest.raises(ValueError, match='batch 1 was already fetched'):
        iterator.schedule(state, batch_index=1)


# --- small mmengine runs -----------------------------------------------


class NoisyDataset(Dataset):
    """Items draw from numpy and ``random``, as RandomFlip does."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> dict:
        noise = float(np.random.rand()) + random.random()
        return dict(
            inputs=torch.full((4, ), index / 10) + noise,
            target=torch.tensor([float(index % 3)]))


class NoisyModel(BaseModel):
    """Dropout and torch noise, as the stage-2 generator has."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, inputs, target=None, mode='tensor'):
        output = self.linear(self.dropout(inputs)) + 0.01 * torch.randn(
            len(inputs), 1)
        if mode == 'loss':
            return dict(loss=((output - target)**2).mean())
        return output


class DrawAfterSaveHook(Hook):
    """Draws after the checkpoint is saved, as validation or a visualizer
    between a save and the next batch would."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        draw_everything()


def build_runner(work_dir: Path,
                 seed: int | None,
                 hook: bool = True,
                 num_workers: int = 0,
                 persistent_workers: bool = False,
                 resume_from: Path | None = None,
                 load_from: Path | None = None,
                 sampler_seed: int | None = None,
                 by_epoch: bool = False) -> Runner:
    hooks = [DrawAfterSaveHook()] + ([RandomStateHook()] if hook else [])
    sampler = dict(
        type='DefaultSampler' if by_epoch else 'InfiniteSampler',
        shuffle=True)
    if sampler_seed is not None:  # otherwise mmengine gives the run's seed
        sampler['seed'] = sampler_seed
    train_cfg = dict(by_epoch=True, max_epochs=2) if by_epoch else dict(
        by_epoch=False, max_iters=MAX_ITERS)
    return Runner(
        model=NoisyModel(),
        work_dir=str(work_dir),
        experiment_name=f'random_state_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            dataset=NoisyDataset(),
            sampler=sampler,
            batch_size=3,
            num_workers=num_workers,
            persistent_workers=persistent_workers,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(
            type='MultiStepLR', milestones=[4], by_epoch=by_epoch),
        train_cfg=train_cfg,
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=SAVED_ITER,
                by_epoch=by_epoch),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=seed),
        load_from=str(resume_from or load_from)
        if resume_from or load_from else None,
        resume=resume_from is not None)


def interrupted_and_resumed(tmp_path: Path, resume_seed: int | None,
                            **options) -> tuple[dict, dict, Runner]:
    """Final checkpoints of an uninterrupted run and of a run resumed from
    its iteration-3 checkpoint (the same as a kill after that save)."""
    full = build_runner(tmp_path / 'full', seed=5, **options)
    full.train()
    # The resumed run's own work dir holds only the iteration-3 checkpoint.
    resumed_dir = tmp_path / 'resumed'
    resumed_dir.mkdir()
    shutil.copy(tmp_path / 'full' / f'iter_{SAVED_ITER}.pth', resumed_dir)
    resumed = build_runner(
        resumed_dir,
        seed=resume_seed,
        resume_from=resumed_dir / f'iter_{SAVED_ITER}.pth',
        **options)
    resumed.train()
    return (torch.load(tmp_path / 'full' / f'iter_{MAX_ITERS}.pth'),
            torch.load(resumed_dir / f'iter_{MAX_ITERS}.pth'), resumed)


@pytest.mark.parametrize('num_workers', [0, 2])
@pytest.mark.parametrize(
    'resume_seed', [5, None], ids=['same_seed', 'no_seed_set'])
def test_resumed_run_repeats_the_uninterrupted_run(tmp_path, num_workers,
                                                   resume_seed):
    full, resumed, _ = interrupted_and_resumed(
        tmp_path, resume_seed, num_workers=num_workers)
    for key in ('state_dict', 'optimizer', 'param_schedulers',
                RANDOM_STATE_KEY):
        assert state_differences(full[key], resumed[key]) == [], key
    assert resumed['meta']['iter'] == MAX_ITERS


def test_workers_get_the_runs_seed_when_the_sampler_has_its_own(tmp_path):
    """Only the workers' seed (the run's) differs from the checkpoint's."""
    full, resumed, runner = interrupted_and_resumed(
        tmp_path, None, num_workers=2, sampler_seed=11)
    assert runner.train_dataloader.sampler.seed == 11
    assert runner.train_dataloader.worker_init_fn.keywords['seed'] == 5
    assert state_differences(full['state_dict'], resumed['state_dict']) == []


def test_without_the_hook_the_resumed_run_drifts(tmp_path):
    """The comparison above can fail: mmengine alone re-seeds on resume."""
    full, resumed, _ = interrupted_and_resumed(tmp_path, 5, hook=False)
    assert RANDOM_STATE_KEY not in full
    assert state_differences(full['state_dict'], resumed['state_dict'])


def test_sampler_gets_the_checkpoints_seed(tmp_path):
    full, _, resumed = interrupted_and_resumed(tmp_path, None)
    sampler = resumed.train_dataloader.sampler
    assert sampler.seed == full[RANDOM_STATE_KEY]['sampler_seed'] == 5


def log_text(runner: Runner) -> str:
    return Path(runner.log_dir, f'{runner.timestamp}.log').read_text()


def test_checkpoint_without_random_state_resumes_with_a_warning(tmp_path):
    build_runner(tmp_path / 'full', seed=5).train()
    old = torch.load(tmp_path / 'full' / f'iter_{SAVED_ITER}.pth')
    del old[RANDOM_STATE_KEY]  # as written before the hook existed
    (tmp_path / 'old').mkdir()
    torch.save(old, tmp_path / 'old' / f'iter_{SAVED_ITER}.pth')

    runner = build_runner(
        tmp_path / 'old', seed=5,
        resume_from=tmp_path / 'old' / f'iter_{SAVED_ITER}.pth')
    runner.train()
    assert runner.iter == MAX_ITERS
    log = log_text(runner)
    assert log.count('holds no random state') == 1
    assert 'starts with a fresh random state' in log


def test_malformed_random_state_is_refused(tmp_path):
    build_runner(tmp_path / 'full', seed=5).train()
    checkpoint = torch.load(tmp_path / 'full' / f'iter_{SAVED_ITER}.pth')
    checkpoint[RANDOM_STATE_KEY] = dict(torch=torch.get_rng_state())
    (tmp_path / 'bad').mkdir()
    torch.save(checkpoint, tmp_path / 'bad' / f'iter_{SAVED_ITER}.pth')
    runner = build_runner(
        tmp_path / 'bad', seed=5,
        resume_from=tmp_path / 'bad' / f'iter_{SAVED_ITER}.pth')
    with pytest.raises(ValueError, match="'random_state' entry is malformed"):
        runner.train()
    assert not (tmp_path / 'bad' / f'iter_{SAVED_ITER + 1}.pth').exists()

    # Loaded through load_from (not a resume), the entry is ignored.
    runner = build_runner(
        tmp_path / 'load_from', seed=5,
        load_from=tmp_path / 'bad' / f'iter_{SAVED_ITER}.pth')
    runner.train()
    assert runner.iter == MAX_ITERS


def test_load_from_does_not_restore(tmp_path):
    """A stage-2 run loads stage 1's checkpoint without its random state."""
    build_runner(tmp_path / 'first', seed=5).train()
    runner = build_runner(
        tmp_path / 'second', seed=5,
        load_from=tmp_path / 'first' / f'iter_{MAX_ITERS}.pth')
    runner.train()
    log = log_text(runner)
    assert 'random state' not in log
    # The run drew from its seed, not from the loaded state: it repeats
    # the first run's checkpoints (which started from the same seed).
    first = torch.load(tmp_path / 'first' / f'iter_{SAVED_ITER}.pth')
    second = torch.load(tmp_path / 'second' / f'iter_{SAVED_ITER}.pth')
    assert state_differences(first[RANDOM_STATE_KEY],
                             second[RANDOM_STATE_KEY]) == []


def test_persistent_workers_with_a_fresh_seed_are_named(tmp_path):
    _, _, resumed = interrupted_and_resumed(
        tmp_path, None, num_workers=2, persistent_workers=True)
    assert 'persistent data workers already run with seed' in log_text(
        resumed)
    assert 'randomness.seed=5' in log_text(resumed)


def test_epoch_based_loop_is_told_it_is_not_restored(tmp_path):
    runner = build_runner(tmp_path / 'epochs', seed=5, by_epoch=True)
    runner.train()
    assert 'is not an iteration-based loop' in log_text(runner)
    checkpoint = torch.load(tmp_path / 'epochs' / 'epoch_2.pth')
    assert RANDOM_STATE_KEY in checkpoint


def test_every_config_has_the_hook_once():
    """Stage-2 configs inherit the hook from their stage-1 base config."""
    configs = sorted((REPO / 'configs').rglob('*.py'))
    assert len(configs) > 10
    for path in configs:
        hooks = Config.fromfile(path).get('custom_hooks') or []
        types = [hook['type'] for hook in hooks]
        assert types.count('RandomStateHook') == 1, (path, types)
