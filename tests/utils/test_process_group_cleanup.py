"""process_group_cleanup: tools leave no process group to interpreter exit.
"""
import pytest
import torch.distributed as dist

from mmpading.utils import process_group_cleanup


def init_single_process_group(tmp_path) -> None:
    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)


def test_group_is_destroyed_after_the_block(tmp_path):
    with process_group_cleanup():
        init_single_process_group(tmp_path)
        assert dist.is_initialized()
    assert not dist.is_initialized()


def test_group_is_destroyed_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError, match='boom'):
        with process_group_cleanup():
            init_single_process_group(tmp_path)
            raise RuntimeError('boom')
    assert not dist.is_initialized()


def test_without_a_group_nothing_happens():
    with process_group_cleanup():
        pass
    assert not dist.is_initialized()


def test_ranks_wait_for_each_other_only_after_success(tmp_path,
                                                     monkeypatch):
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
    barriers = []
    monkeypatch.setattr(dist, 'barrier', lambda: barriers.append(1))
    with process_group_cleanup():
        init_single_process_group(tmp_path / 'a')
    assert barriers == [1]
    with pytest.raises(RuntimeError, match='boom'):
        with process_group_cleanup():
            init_single_process_group(tmp_path / 'b')
            raise RuntimeError('boom')
    assert barriers == [1] and not dist.is_initialized()
