"""tools/train.py killed with SIGKILL and resumed ends where an
uninterrupted run ends: the same weights, optimizer and scheduler states,
bit for bit (RandomStateHook, on the CPU with fixed thread counts)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmpading.engine.hooks.random_state_hook import RANDOM_STATE_KEY

from _helpers import state_differences

REPO = Path(__file__).resolve().parents[2]
MAX_ITERS = 6
# One thread: the same reductions in the same order in every run.
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
OPTIONS = [
    f'train_cfg.max_iters={MAX_ITERS}', f'train_cfg.val_interval={MAX_ITERS}',
    'train_dataloader.batch_size=4', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=1',
    # The comparison is of the training state; no validation at the end.
    'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'
]


@pytest.fixture(scope='module')
def toy_cwd(tiny_toy_root, tmp_path_factory) -> Path:
    """A working directory whose ``data/toy`` is the tiny toy set."""
    cwd = tmp_path_factory.mktemp('resume_cwd')
    (cwd / 'data').mkdir()
    (cwd / 'data' / 'toy').symlink_to(tiny_toy_root)
    return cwd


def train_command(config: str, work_dir: Path, *options: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / 'tools' / 'train.py'),
        str(REPO / 'configs' / 'toy' / config), '--work-dir',
        str(work_dir), *options
    ]


def run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=ENV, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return result.stdout + result.stderr


def saved_iteration(work_dir: Path) -> int:
    """The iteration of the checkpoint ``last_checkpoint`` names (mmengine
    writes it once the checkpoint file is complete); 0 before that."""
    try:
        saved = (work_dir / 'last_checkpoint').read_text().strip()
    except FileNotFoundError:
        return 0
    stem = Path(saved).stem
    return int(stem.split('_')[1]) if stem.startswith('iter_') else 0


def kill_after_checkpoint(command: list[str], cwd: Path, work_dir: Path,
                          iteration: int) -> int:
    """Start ``command``; SIGKILL its process group once the checkpoint of
    ``iteration`` (or a later one) is complete.

    Returns:
        int: The iteration of the last complete checkpoint.
    """
    # A file, not a pipe: a full pipe would block the run.
    log = work_dir.parent / f'{work_dir.name}.log'
    with open(log, 'w') as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=ENV, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    try:
        while saved_iteration(work_dir) < iteration:
            if process.poll() is not None:
                pytest.fail(f'training stopped before iteration {iteration}: '
                            + log.read_text()[-3000:])
            assert time.time() < deadline, 'no checkpoint after 300 s'
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return saved_iteration(work_dir)


def compare_final_checkpoints(uninterrupted: Path, resumed: Path) -> None:
    full = torch.load(uninterrupted / f'iter_{MAX_ITERS}.pth')
    again = torch.load(resumed / f'iter_{MAX_ITERS}.pth')
    assert again['meta']['iter'] == MAX_ITERS
    for key in ('state_dict', 'optimizer', 'param_schedulers',
                RANDOM_STATE_KEY):
        differences = state_differences(full[key], again[key])
        assert differences == [], f'{key} differs at {differences[:5]}'


def killed_and_resumed(config: str, root: Path, cwd: Path,
                       *options: str) -> None:
    """Kill a run after its checkpoint of iteration 2, resume it with the
    same command, and compare it with an uninterrupted run of its seed."""
    killed_dir = root / 'killed'
    command = train_command(config, killed_dir, '--cfg-options', *OPTIONS,
                            *options)
    saved_iter = kill_after_checkpoint(command, cwd, killed_dir, 2)
    assert 2 <= saved_iter < MAX_ITERS, 'killed too late to test a resume'
    assert not (killed_dir / f'iter_{MAX_ITERS}.pth').exists()
    # No randomness.seed in the configs: the killed run drew one; the
    # uninterrupted run uses it, the resumed run must find it itself.
    seed = torch.load(killed_dir / f'iter_{saved_iter}.pth')['meta']['seed']

    output = run(command + ['--resume'], cwd)
    assert f'resumed epoch: 0, iter: {saved_iter}' in output
    full_dir = root / 'uninterrupted'
    run(
        train_command(config, full_dir, '--cfg-options', *OPTIONS, *options,
                      f'randomness.seed={seed}'), cwd)
    compare_final_checkpoints(full_dir, killed_dir)


@pytest.mark.slow
def test_killed_stage2_run_resumes_exactly(toy_cwd, stage1_checkpoint,
                                           tmp_path):
    killed_and_resumed('pading_toy_stage2.py', tmp_path, toy_cwd,
                       f'load_from={stage1_checkpoint}')


@pytest.mark.slow
def test_killed_stage1_run_resumes_exactly(toy_cwd, tmp_path):
    killed_and_resumed('pading_toy_stage1.py', tmp_path, toy_cwd)
