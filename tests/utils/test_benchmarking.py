"""The figures and tables shared by the benchmark scripts."""
import pytest
import torch


def test_mib_and_missing_figures():
    from mmpading.utils.benchmarking import mib
    assert mib(3 * 2**20) == '3.0'
    assert mib(3.4 * 2**20, 0) == '3'
    assert mib(None) == 'n/a'


def test_table_columns_are_aligned(capsys):
    from mmpading.utils.benchmarking import print_table
    print_table('T', ['a', 'long header'], [['12345', '1'], ['1', '22']])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == 'T'
    assert len({len(line) for line in lines[1:]}) == 1  # one width
    assert lines[3].endswith(' 1') and lines[4].endswith('22')


def test_resident_memory_figures():
    import resource

    from mmpading.utils.benchmarking import max_rss_bytes, proc_status_bytes
    current = proc_status_bytes('VmRSS')
    peak = max_rss_bytes(resource.getrusage(resource.RUSAGE_SELF))
    assert 0 < current <= peak * 1.01
    with pytest.raises(KeyError):
        proc_status_bytes('NoSuchFigure')


def test_loss_values_are_detached_floats():
    from mmpading.utils.benchmarking import loss_values
    weight = torch.tensor(2.0, requires_grad=True)
    values = loss_values(dict(loss=weight * 3, count=4, nan=float('nan')))
    assert values['loss'] == 6.0 and values['count'] == 4.0
    assert all(isinstance(value, float) for value in values.values())
    assert values['nan'] != values['nan']  # NaN passes through
