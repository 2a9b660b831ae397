"""``mim train mmpading`` / ``mim test mmpading`` on the toy data set.

openmim finds a codebase through its installed distribution: the package
folder ``<location>/mmpading`` must hold ``.mim/tools`` and ``.mim/configs``
(setup.py creates them as package data).
"""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmpading.datasets.toy_generator import generate_toy_dataset

REPO = Path(__file__).resolve().parents[2]

FAST = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
    'train_dataloader.batch_size=2', 'val_dataloader.batch_size=3',
    'test_dataloader.batch_size=3', 'default_hooks.checkpoint.interval=1'
]


def mim(*args: str, cwd: Path, expect_success: bool = True) -> str:
    result = subprocess.run([sys.executable, '-m', 'mim', *map(str, args)],
                            cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    output = result.stdout + result.stderr
    if not expect_success:
        assert result.returncode != 0, output[-3000:]
        return output
    # The first traceback is the cause; the end shows where mim stopped.
    start = output.find('Traceback')
    first = output[start:start + 4000] if start >= 0 else ''
    assert result.returncode == 0, f'{first}\n...\n{output[-3000:]}'
    return output


def test_mim_finds_tools_and_configs_of_the_installed_package():
    from mim.utils import get_installed_path, is_installed
    assert is_installed('mmpading')
    package = Path(get_installed_path('mmpading'))
    for name in ('tools/train.py', 'tools/test.py',
                 'configs/toy/pading_toy_stage1.py'):
        path = package / '.mim' / name
        assert path.is_file(), (
            f'mim looks for {path}: the installed mmpading package must '
            'ship .mim/{tools,configs} (run `make install`)')


@pytest.mark.slow
def test_mim_train_then_test_on_the_toy_config(tmp_path):
    """From a folder outside the repository, with the toy set elsewhere:
    mim passes --data-root on to tools/train.py and tools/test.py."""
    data_root = tmp_path / 'toy_set'
    generate_toy_dataset(str(data_root), num_train=12, num_val=6,
                         image_size=64)
    cwd = tmp_path / 'outside'
    cwd.mkdir()
    assert REPO not in cwd.parents
    work_dir = tmp_path / 'mim_train'
    # A bare config name: mim looks it up among the package's configs.
    output = mim('train', 'mmpading', 'pading_toy_stage1.py', '--gpus', 0,
                 '--work-dir', work_dir, '--data-root', data_root,
                 '--cfg-options', *FAST, cwd=cwd)
    assert 'we find the config file in codebase mmpading' in output
    assert '.mim/tools/train.py' in output
    assert f'data root: data/toy/ -> {data_root}/' in output
    assert 'Training finished successfully' in output
    checkpoint = work_dir / 'iter_2.pth'
    assert torch.load(checkpoint)['meta']['iter'] == 2

    output = mim('test', 'mmpading', 'pading_toy_stage1.py', '--checkpoint',
                 checkpoint, '--gpus', 0, '--work-dir',
                 tmp_path / 'mim_test', '--data-root', data_root,
                 '--cfg-options', *FAST, cwd=cwd)
    assert '.mim/tools/test.py' in output
    assert 'Testing finished successfully' in output
    # Stage 1 (upstream Mask2Former) has panoptic and instance outputs.
    for key in ('gzsl_panoptic/PQ_hm', 'gzsl_instance/segm_mAP50_hm'):
        assert key in output

    # Without --data-root the relative data/toy/ is looked for in cwd: the
    # message says so, and how to point elsewhere.
    output = mim('test', 'mmpading', 'pading_toy_stage1.py', '--checkpoint',
                 checkpoint, '--gpus', 0, cwd=cwd, expect_success=False)
    assert "data_root 'data/toy/'" in output
    assert f'relative to the current folder {cwd}' in output
    assert '--data-root DIR' in output
