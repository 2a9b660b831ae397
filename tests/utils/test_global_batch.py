"""global_batch_size: one batch for all processes of a training run."""
import pytest
from mmengine.config import Config

from mmpading.utils.global_batch import (
    GlobalBatchError,
    apply_global_batch_size,
    launcher_rank_and_world_size,
    per_process_batch_sizes,
)


@pytest.mark.parametrize('world_size, sizes', [
    (1, [12]),
    (2, [6, 6]),
    (5, [3, 3, 2, 2, 2]),
    (8, [2, 2, 2, 2, 1, 1, 1, 1]),
    (12, [1] * 12),
])
def test_the_global_batch_is_shared_out(world_size, sizes):
    assert per_process_batch_sizes(12, world_size) == sizes


def test_more_processes_than_images_are_refused():
    with pytest.raises(GlobalBatchError,
                       match=r'global_batch_size=12 .* 16 processes'):
        per_process_batch_sizes(12, 16)


@pytest.mark.parametrize('value', [0, -2, 2.5, True, '12'])
def test_bad_values_are_refused(value):
    with pytest.raises(GlobalBatchError, match='positive int'):
        per_process_batch_sizes(value, 1)


def config(**options) -> Config:
    cfg = Config(dict(global_batch_size=12,
                      train_dataloader=dict(batch_size=12)))
    cfg.merge_from_dict(options)
    return cfg


def test_each_rank_gets_its_share_and_rank0_a_note():
    sizes = []
    for rank in range(8):
        cfg = config()
        note = apply_global_batch_size(cfg, rank, 8)
        sizes.append(cfg.train_dataloader.batch_size)
    assert sizes == [2, 2, 2, 2, 1, 1, 1, 1]
    cfg = config()
    note = apply_global_batch_size(cfg, 0, 8)
    assert note.startswith('global_batch_size: 12 images over 8 processes: '
                           '2 on ranks 0-3, 1 on ranks 4-7')
    assert 'train_dataloader.batch_size=12 is replaced' in note


def test_one_process_takes_the_whole_batch():
    cfg = config()
    note = apply_global_batch_size(cfg, 0, 1)
    assert cfg.train_dataloader.batch_size == 12
    assert note == 'global_batch_size: 12 images on the one process'


def test_without_a_global_batch_nothing_changes():
    cfg = config(global_batch_size=None)
    assert apply_global_batch_size(cfg, 3, 8) is None
    assert cfg.train_dataloader.batch_size == 12


def test_auto_scale_lr_needs_an_even_split():
    cfg = config(auto_scale_lr=dict(enable=True, base_batch_size=12))
    with pytest.raises(GlobalBatchError,
                       match='auto_scale_lr.enable=True with '
                       'global_batch_size=12 over 8 processes'):
        apply_global_batch_size(cfg, 0, 8)
    # An even split: mmengine's world_size x batch_size is the global one.
    cfg = config(global_batch_size=24,
                 auto_scale_lr=dict(enable=True, base_batch_size=12))
    apply_global_batch_size(cfg, 7, 8)
    assert cfg.train_dataloader.batch_size == 3


@pytest.mark.parametrize('launcher, environ', [
    ('pytorch', dict(RANK='3', WORLD_SIZE='8', LOCAL_RANK='3')),
    ('slurm', dict(SLURM_PROCID='3', SLURM_NTASKS='8')),
    ('mpi', dict(OMPI_COMM_WORLD_RANK='3', OMPI_COMM_WORLD_SIZE='8')),
])
def test_launchers_say_rank_and_world_size(launcher, environ):
    assert launcher_rank_and_world_size(launcher, environ) == (3, 8)
    assert launcher_rank_and_world_size('none', environ) == (0, 1)


def test_a_launcher_without_its_variables_is_named():
    with pytest.raises(GlobalBatchError,
                       match='--launcher pytorch: RANK and WORLD_SIZE'):
        launcher_rank_and_world_size('pytorch', {})
