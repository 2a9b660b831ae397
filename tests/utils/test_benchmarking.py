"""The timing arguments shared by the benchmark scripts."""
import argparse

import pytest
import torch

from mmpading.utils.benchmarking import (
    add_timing_arguments,
    check_timing_arguments,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument('--device', default='cpu')
    add_timing_arguments(parser, repeats=7)
    args = parser.parse_args(argv)
    check_timing_arguments(parser, args)
    return args


def test_defaults():
    args = parse()
    assert (args.repeats, args.warmup, args.threads) == (7, 2, 1)


@pytest.mark.parametrize('argv, message', [
    (('--threads', '-1'), '--threads must be >= 0'),
    (('--repeats', '0'), '--repeats must be >= 1'),
    (('--warmup', '-1'), '--warmup >= 0'),
])
def test_bad_values_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse(*argv)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_cuda_without_a_gpu_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse('--device', 'cuda')
    assert 'CUDA is not available' in capsys.readouterr().err
