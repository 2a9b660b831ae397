"""Class-index checks read values on the CPU only (no device wait)."""
import pytest
import torch

from mmpading.models.utils.class_masks import (
    check_class_indices,
    unseen_class_mask,
)


def test_cpu_indices_outside_the_range_are_named():
    check_class_indices(torch.tensor([0, 4]), 5, 'labels')
    check_class_indices(torch.tensor([], dtype=torch.long), 5, 'labels')
    with pytest.raises(ValueError, match=r'^X: labels must be in \[0, 5\) '
                       r'\(why\), got values in \[-1, 2\]$'):
        check_class_indices(torch.tensor([2, -1]), 5, 'X: labels', ' (why)')
    with pytest.raises(ValueError, match=r'got values in \[0, 5\]'):
        check_class_indices(torch.tensor([5, 0]), 5, 'labels')


def test_indices_on_another_device_are_not_read():
    # A meta tensor has no values: reading one would raise.
    on_device = torch.full((3, ), 9, dtype=torch.long, device='meta')
    check_class_indices(on_device, 5, 'labels')
    with pytest.raises(RuntimeError):
        on_device.max().item()


def test_unseen_ids_from_a_list_are_checked_before_the_device(host_reads):
    with pytest.raises(ValueError, match=r'O: unseen class ids must be in'):
        unseen_class_mask([1, 7], 5, torch.device('cpu'), 'O')
    with host_reads() as reads:
        mask = unseen_class_mask([1, 3], 5, torch.device('cpu'), 'O')
    assert mask.tolist() == [False, True, False, True, False]
    assert reads.count == 2  # min and max, of the CPU ids
