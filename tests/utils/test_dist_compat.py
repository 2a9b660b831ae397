"""setup_cpu_distributed: explicit, process-wide; ``import mmpading`` is not.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mmengine.dist import utils as dist_utils
from mmengine.model import MMDistributedDataParallel

from mmpading.utils import dist_compat, setup_cpu_distributed

REPO = Path(__file__).resolve().parents[2]
LAUNCHERS = ('_init_dist_pytorch', '_init_dist_slurm')


@pytest.fixture
def restored(monkeypatch):
    """mmengine's own functions for the test, whatever earlier tests of
    this process set up (the tools' main() calls the set-up), and the
    state before the test afterwards."""
    def unpatched(function):
        while getattr(function, '__wrapped__', None) is not None:
            function = function.__wrapped__
        return function

    for name in LAUNCHERS:
        monkeypatch.setattr(dist_utils, name,
                            unpatched(getattr(dist_utils, name)))
    monkeypatch.setattr(MMDistributedDataParallel, '__init__',
                        unpatched(MMDistributedDataParallel.__init__))


def test_import_mmpading_patches_nothing_process_wide():
    """In a fresh interpreter: the same functions before and after the
    import; the set-up then replaces them, once."""
    script = textwrap.dedent('''
        import torch
        from mmengine.dist import utils as dist_utils
        from mmengine.model import MMDistributedDataParallel
        names = ('_init_dist_pytorch', '_init_dist_slurm')
        before = [getattr(dist_utils, n) for n in names]
        ddp_init = MMDistributedDataParallel.__init__
        set_device = torch.cuda.set_device

        import mmpading
        from mmpading.utils import setup_cpu_distributed
        assert [getattr(dist_utils, n) for n in names] == before
        assert MMDistributedDataParallel.__init__ is ddp_init
        assert torch.cuda.set_device is set_device

        setup_cpu_distributed()
        setup_cpu_distributed()
        for name, original in zip(names, before):
            assert getattr(dist_utils, name).__wrapped__ is original, name
        assert MMDistributedDataParallel.__init__.__wrapped__ is ddp_init
        assert torch.cuda.set_device is set_device
        print('ok')
    ''')
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith('ok')


def test_cpu_launcher_uses_gloo_and_skips_the_device(monkeypatch):
    calls = []

    def init_dist(backend, **kwargs):
        torch.cuda.set_device(3)  # would fail without a GPU
        calls.append((backend, kwargs))

    monkeypatch.setattr(dist_compat, 'get_device', lambda: 'cpu')
    dist_compat._cpu_launcher(init_dist)('nccl', init_backend='x')
    assert calls == [('gloo', dict(init_backend='x'))]
    # The no-op lasted only for the call.
    assert torch.cuda.set_device.__name__ == 'set_device'


def test_ddp_of_a_cpu_module_with_device_ids(restored, tmp_path):
    """mmengine's Runner passes device_ids=[LOCAL_RANK]: torch refuses it
    for a CPU module until the set-up drops it."""
    store = dist.FileStore(str(tmp_path / 'store'), 1)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match='device_ids'):
            MMDistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[0])
        setup_cpu_distributed()
        wrapped = MMDistributedDataParallel(torch.nn.Linear(2, 2),
                                            device_ids=[0])
        assert wrapped.device_ids is None
    finally:
        dist.destroy_process_group()
