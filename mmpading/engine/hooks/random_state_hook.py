"""Save the random state in checkpoints so a resumed run continues exactly."""
from __future__ import annotations

import random
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmengine.dataset import worker_init_fn as default_worker_init_fn
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpading.registry import HOOKS

# The checkpoint key the states are stored under.
RANDOM_STATE_KEY = 'random_state'


def capture_random_state(sampler_seed: int | None = None) -> dict[str, Any]:
    """The states of the global random number generators, checkpoint-ready.

    Only plain Python values and CPU byte tensors, so the dict pickles into
    a checkpoint and loads with ``torch.load(weights_only=True)`` too.

    Args:
        sampler_seed (int, optional): The training sampler's seed, kept so a
            resumed run can replay the same data order.

    Returns:
        dict: ``python`` (``random``), ``numpy`` (``np.random``), ``torch``
        (CPU generator, uint8 tensor), ``cuda`` (the current CUDA device's
        generator, uint8 tensor; None without an initialised GPU) and
        ``sampler_seed``.
    """
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    cuda_state = None
    # Only the current device: get_rng_state_all() would create a CUDA
    # context on every visible GPU (hundreds of MiB each on rank 0).
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_state = torch.cuda.get_rng_state()
    return dict(
        python=dict(
            version=version,
            internal=list(internal),
            gauss_next=gauss_next),
        numpy=dict(
            bit_generator=numpy_state['bit_generator'],
            key=numpy_state['state']['key'].tolist(),
            pos=int(numpy_state['state']['pos']),
            has_gauss=int(numpy_state['has_gauss']),
            gauss=float(numpy_state['gauss'])),
        torch=torch.get_rng_state(),
        cuda=cuda_state,
        sampler_seed=sampler_seed)


def restore_random_state(state: dict[str, Any]) -> list[str]:
    """Set the global generators to a :func:`capture_random_state` state.

    Args:
        state (dict): A captured state; tensors may live on any device (a
            GPU resume maps the checkpoint onto the GPU).

    Returns:
        list[str]: What could not be restored (an empty list when all was),
        e.g. a CUDA state in a run without a GPU.
    """
    python = state['python']
    random.setstate((python['version'], tuple(python['internal']),
                     python['gauss_next']))
    numpy = state['numpy']
    np.random.set_state(
        dict(
            bit_generator=numpy['bit_generator'],
            state=dict(
                key=np.asarray(numpy['key'], dtype=np.uint32),
                pos=numpy['pos']),
            has_gauss=numpy['has_gauss'],
            gauss=numpy['gauss']))
    # The setters need CPU byte tensors.
    torch.set_rng_state(state['torch'].cpu())
    skipped = []
    cuda_state = state.get('cuda')
    if cuda_state is not None:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_state.cpu())
        else:
            skipped.append('the CUDA generator (no GPU in this run)')
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        skipped.append('the CUDA generator (the checkpoint was written '
                       'without a GPU)')
    return skipped


def _check_random_state(state: Any) -> None:
    """Refuse a malformed ``random_state`` before the run starts."""
    required = ('python', 'numpy', 'torch')
    if not isinstance(state, dict) or any(key not in state
                                          for key in required):
        found = sorted(state) if isinstance(state, dict) else type(
            state).__name__
        raise ValueError(
            f'RandomStateHook: the resumed checkpoint\'s '
            f'{RANDOM_STATE_KEY!r} entry is malformed (expected the keys '
            f'{list(required)}, found {found}). Resume from another '
            f'checkpoint, or delete that entry (the run then starts with '
            f'a fresh random state).')


class StateRestoringIterator:
    """Wraps the train loop's data iterator to restore a state in time.

    ``schedule(state, batch_index)`` makes the wrapper restore ``state``
    right before it fetches the batch of that index (0-based, counting
    every ``next()``, mmengine's resume skip included), and only then.

    Args:
        iterator (Iterator): The train loop's ``dataloader_iterator``.
    """

    def __init__(self, iterator: Iterator) -> None:
        self.iterator = iterator
        # Index of the batch the next next() fetches.
        self.batch_index = 0
        self._pending: tuple[int, dict[str, Any]] | None = None
        self.skipped: list[str] = []

    def schedule(self, state: dict[str, Any], batch_index: int) -> None:
        """Restore ``state`` right before batch ``batch_index`` is fetched."""
        if batch_index < self.batch_index:
            raise ValueError(
                f'StateRestoringIterator: batch {batch_index} was already '
                f'fetched (next batch: {self.batch_index})')
        self._pending = (batch_index, state)

    def __iter__(self) -> StateRestoringIterator:
        return self

    def __next__(self) -> Any:
        if self._pending is not None and \
                self._pending[0] == self.batch_index:
            self.skipped = restore_random_state(self._pending[1])
            self._pending = None
        self.batch_index += 1
        return next(self.iterator)

    def __getattr__(self, name: str) -> Any:
        # Anything else (e.g. ``_dataloader``) is the wrapped iterator's.
        if name == 'iterator':  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.iterator, name)


def train_sampler(dataloader: Any) -> Any:
    """The index sampler of ``dataloader`` (inside its batch sampler)."""
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    sampler = getattr(batch_sampler, 'sampler', None)
    return sampler if sampler is not None else getattr(
        dataloader, 'sampler', None)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Makes a resumed iteration-based run repeat the uninterrupted one.

    mmengine's resume restores weights, optimizer and scheduler states and
    the iteration, then re-seeds the global generators: the resumed run
    draws other dropout masks, flips, sampled points and synthetic
    features than the interrupted run would have, and drifts away from it.
    This hook stores the state of Python's ``random``, numpy's global
    generator, torch's CPU generator and the current CUDA device's
    generator in every checkpoint (``checkpoint['random_state']``) and
    restores it on resume.

    When: right before batch ``k`` (the first one after a checkpoint at
    iteration ``k``) is fetched, in both runs. A resumed run restores it
    after mmengine's skip of the ``k`` trained batches (the skip runs the
    data pipeline, which draws random numbers); the uninterrupted run
    re-applies the state it saved, so whatever ran between the save and
    batch ``k`` (validation, a visualizer) cannot make the two runs differ.
    All checkpoints of one iteration (e.g. a ``best`` one after
    validation) hold the same state.

    Data order: mmengine's skip replays the sampler, but the sampler was
    built with the new run's seed before the checkpoint was read. When
    ``randomness.seed`` is not set, that seed is a fresh random one; the
    hook then gives the sampler (mmengine's ``InfiniteSampler`` /
    ``DefaultSampler``) the checkpoint's seed, and the workers' seed
    (mmengine's ``worker_init_fn``) the run's restored seed.

    What is exact:

    - ``num_workers=0``: the resumed run reaches bit-identical weights on
      the CPU (same thread count; ``tests/engine/hooks`` and
      ``tests/tools/test_train_resume.py`` check it).
    - ``num_workers > 0``: the pipeline runs in worker processes whose
      states are not in the checkpoint, but mmengine seeds each worker from
      the run's seed, its id and rank, and the skip replays the same
      batches through the same workers, so they reach the same states
      (checked with 2 workers). Not exact with a ``worker_init_fn`` that
      does not reseed, or with ``persistent_workers=True`` when the
      resumed run was started without ``randomness.seed`` (its workers
      already run with the fresh seed; a warning says so).
    - Distributed runs: only rank 0 writes checkpoints, so only rank 0's
      state is restored; the other ranks continue from the run's seed.
    - GPU: the CUDA state is restored, but non-deterministic kernels make
      GPU runs differ even without an interruption.
    - Iteration-based loops only (``IterBasedTrainLoop``, as every mmpading
      config); with another loop the hook saves the state but does not
      restore it, and says so.

    A checkpoint without a random state (written before this hook was
    added) still resumes; a warning says the random state starts fresh.
    """

    def __init__(self) -> None:
        self._iterator: StateRestoringIterator | None = None
        # (iteration, state) of the last save: every checkpoint of one
        # iteration holds the same state.
        self._saved: tuple[int, dict[str, Any]] | None = None
        # (iteration, state or None) of the last loaded checkpoint.
        self._loaded: tuple[int, dict[str, Any] | None] | None = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the loaded state; :meth:`before_train` decides whether it
        is a resume (the loop's iteration is then the checkpoint's)."""
        self._loaded = (checkpoint.get('meta', {}).get('iter', 0),
                        checkpoint.get(RANDOM_STATE_KEY))

    def before_train(self, runner) -> None:
        """Wrap the data iterator; schedule the restore of a resume."""
        loop = runner.train_loop
        if not hasattr(loop, 'dataloader_iterator'):
            runner.logger.warning(
                f'RandomStateHook: {type(loop).__name__} is not an '
                'iteration-based loop; the random state is saved in '
                'checkpoints but a resume does not restore it.')
            return
        resumed = self._loaded is not None and runner.iter > 0 and \
            self._loaded[0] == runner.iter
        if resumed and self._loaded[1] is not None:
            _check_random_state(self._loaded[1])
            self._align_data_seeds(runner, self._loaded[1])
        self._iterator = StateRestoringIterator(loop.dataloader_iterator)
        loop.dataloader_iterator = self._iterator
        if not resumed:
            self._loaded = None
            return
        state = self._loaded[1]
        self._loaded = None
        if state is None:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint of iteration {runner.iter} '
                'holds no random state (written before RandomStateHook '
                'was added); the resumed run starts with a fresh random '
                'state and will not repeat the uninterrupted run exactly.')
        elif get_rank() == 0:
            # Other ranks' states were not saved (see the class docstring).
            self._iterator.schedule(state, runner.iter)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the state; the uninterrupted run re-applies it before the
        next batch, as a resumed run does."""
        iteration = checkpoint['meta']['iter']
        if self._saved is None or self._saved[0] != iteration:
            sampler = train_sampler(runner.train_dataloader)
            self._saved = (iteration,
                           capture_random_state(
                               getattr(sampler, 'seed', None)))
        checkpoint[RANDOM_STATE_KEY] = self._saved[1]
        if self._iterator is not None and \
                iteration >= self._iterator.batch_index:
            self._iterator.schedule(self._saved[1], iteration)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        """Say once what a restore could not set (e.g. no GPU now)."""
        if self._iterator is not None and self._iterator.skipped:
            runner.logger.warning(
                'RandomStateHook: not restored: ' +
                '; '.join(self._iterator.skipped) +
                '; those draws start fresh.')
            self._iterator.skipped = []

    def _align_data_seeds(self, runner, state: dict[str, Any]) -> None:
        """Give the sampler and the workers the interrupted run's seeds."""
        loop = runner.train_loop
        dataloader = loop.dataloader
        changed = False
        sampler = train_sampler(dataloader)
        saved_seed = state.get('sampler_seed')
        current_seed = getattr(sampler, 'seed', None)
        if saved_seed is not None and current_seed is not None and \
                saved_seed != current_seed:
            if isinstance(sampler, (InfiniteSampler, DefaultSampler)):
                sampler.seed = saved_seed
                changed = True
            else:
                runner.logger.warning(
                    f'RandomStateHook: the sampler '
                    f'{type(sampler).__name__} was built with seed '
                    f'{current_seed}, the checkpoint\'s is {saved_seed}; '
                    'the data order differs from the interrupted run. Set '
                    f'randomness.seed={saved_seed} to resume exactly.')
        init_fn = getattr(dataloader, 'worker_init_fn', None)
        if isinstance(init_fn, partial) and \
                init_fn.func is default_worker_init_fn and \
                init_fn.keywords.get('seed', runner.seed) != runner.seed:
            # mmengine seeds workers with the run's seed at build time;
            # resume has restored the interrupted run's seed since.
            dataloader.worker_init_fn = partial(
                init_fn.func, *init_fn.args,
                **{**init_fn.keywords, 'seed': runner.seed})
            changed = True
            if dataloader.num_workers > 0 and dataloader.persistent_workers:
                runner.logger.warning(
                    'RandomStateHook: the persistent data workers already '
                    f'run with seed {init_fn.keywords["seed"]}, not the '
                    f'checkpoint\'s {runner.seed}; set '
                    f'randomness.seed={runner.seed} to resume exactly.')
        if changed:
            if isinstance(sampler, InfiniteSampler):
                # A new index stream from the seed: the one made at build
                # time was started by the old iterator, and closing that
                # iterator closes it too.
                sampler.indices = sampler._indices_of_rank()
            # The old iterator drew indices (and started workers) with the
            # old seeds.
            loop.dataloader_iterator = type(loop.dataloader_iterator)(
                dataloader)
