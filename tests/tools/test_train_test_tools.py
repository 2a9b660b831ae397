"""tools/train.py and tools/test.py as a user runs them (subprocesses)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmpading.datasets.toy_generator import generate_toy_dataset
from mmpading.testing import load_tool_module

REPO = Path(__file__).resolve().parents[2]
FAST = [
    'train_dataloader.batch_size=4', 'val_dataloader.batch_size=3',
    'test_dataloader.batch_size=3', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=1'
]


@pytest.fixture(scope='module')
def toy_cwd(tmp_path_factory) -> Path:
    """A working directory holding ``data/toy``, as the configs expect."""
    cwd = tmp_path_factory.mktemp('toy_cwd')
    generate_toy_dataset(
        str(cwd / 'data' / 'toy'), num_train=12, num_val=6, image_size=64)
    return cwd


def tool(name: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / 'tools' / name), *map(str, args)]


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope='module')
def stage1_run(toy_cwd) -> Path:
    work_dir = toy_cwd / 'stage1'
    run(tool('train.py', REPO / 'configs/toy/pading_toy_stage1.py',
             '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_iters=2', 'train_cfg.val_interval=100', *FAST),
        toy_cwd)
    return work_dir / 'iter_2.pth'


@pytest.mark.slow
def test_test_tool_prints_gzsl_metrics(toy_cwd, stage1_run):
    output = run(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             stage1_run, '--work-dir', toy_cwd / 'test', '--cfg-options',
             *FAST), toy_cwd)
    for key in ('gzsl_panoptic/PQ_hm', 'gzsl_semseg/mIoU_hm',
                'gzsl_instance/segm_mAP50_hm'):
        assert key in output


def test_test_tool_refuses_a_missing_checkpoint(toy_cwd):
    result = subprocess.run(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             toy_cwd / 'missing.pth'),
        cwd=toy_cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'missing.pth' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_killed_stage2_resumes_from_last_checkpoint(toy_cwd, stage1_run):
    work_dir = toy_cwd / 'stage2'
    config = REPO / 'configs/toy/pading_toy_stage2.py'
    options = ['--cfg-options', f'load_from={stage1_run}',
               'train_cfg.max_iters=1000', 'train_cfg.val_interval=1000',
               *FAST]
    process = subprocess.Popen(
        tool('train.py', config, '--work-dir', work_dir, *options),
        cwd=toy_cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.time() + 300
    try:
        while not (work_dir / 'iter_2.pth').exists():
            assert process.poll() is None, 'training stopped early'
            assert time.time() < deadline, 'no checkpoint after 300 s'
            time.sleep(0.5)
        time.sleep(0.5)  # let the write finish before killing
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    # mmengine names the latest complete checkpoint in last_checkpoint.
    saved = Path((work_dir / 'last_checkpoint').read_text().strip())
    saved_iter = int(saved.stem.split('_')[1])
    assert saved_iter < 1000

    target = saved_iter + 2
    resume_options = [
        option if not option.startswith('train_cfg.max_iters') else
        f'train_cfg.max_iters={target}' for option in options
    ]
    output = run(
        tool('train.py', config, '--work-dir', work_dir, '--resume',
             *resume_options), toy_cwd)
    assert f'resumed epoch: 0, iter: {saved_iter}' in output
    assert (work_dir / f'iter_{target}.pth').exists()
    final = torch.load(work_dir / f'iter_{target}.pth')
    assert final['meta']['iter'] == target
    # The resumed run kept its stage-2 classifier instead of starting over.
    assert final['state_dict']['zero_shot.classifier_initialised'] == 1


def _train_tool_module():
    return load_tool_module(str(REPO / 'tools' / 'train.py'))


def test_resume_without_checkpoints_keeps_load_from(tmp_path):
    """`--resume` on a fresh stage-2 work dir starts from stage 1."""
    train_tool = _train_tool_module()
    config = str(REPO / 'configs' / 'toy' / 'pading_toy_stage2.py')
    work_dir = tmp_path / 'stage2'
    args = train_tool.argparse.Namespace(
        config=config, launcher='none', cfg_options=None,
        work_dir=str(work_dir), amp=False, resume='auto')
    cfg = train_tool.build_config(args)
    assert not cfg.get('resume', False)
    assert cfg.load_from.endswith('pading_toy_stage1/iter_600.pth')

    # With a checkpoint in the work dir, the same flag resumes from it.
    work_dir.mkdir()
    (work_dir / 'iter_5.pth').write_bytes(b'')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_5.pth'))
    cfg = train_tool.build_config(args)
    assert cfg.resume is True and cfg.load_from is None
