"""tools/analysis_tools/tool_arguments.py: the arguments tools share."""
import argparse
from pathlib import Path

import pytest
import torch

from _helpers import load_tool_module

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools'
tool_arguments = load_tool_module(str(TOOLS / 'tool_arguments.py'))


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument('--device', default='cpu')
    tool_arguments.add_timing_arguments(parser, repeats=7)
    args = parser.parse_args(argv)
    tool_arguments.check_timing_arguments(parser, args)
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


def test_model_arguments_refuse_equal_labels_and_missing_files(
        tmp_path, capsys):
    checkpoint = tmp_path / 'a.pth'
    checkpoint.write_bytes(b'')

    def parse_models(*argv: str) -> None:
        parser = argparse.ArgumentParser()
        tool_arguments.add_model_arguments(parser, 'a column')
        args = parser.parse_args(argv)
        tool_arguments.check_model_arguments(parser, args)

    model = ('--model', 'A', 'pading_toy_stage2', str(checkpoint))
    with pytest.raises(SystemExit):
        parse_models(*model, *model)
    assert 'labels must differ' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_models('--model', 'B', 'pading_toy_stage2',
                     str(tmp_path / 'missing.pth'))
    assert "checkpoint '" in capsys.readouterr().err
