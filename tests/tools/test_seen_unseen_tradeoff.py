"""tools/analysis_tools/seen_unseen_tradeoff.py: the γ sweep and AUSUC."""
import json
from pathlib import Path

import pytest

from _helpers import load_tool_module

TOOL = (Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools' /
        'seen_unseen_tradeoff.py')
# Two iterations, batch 4, and no validation: the tool only needs weights.
TRAIN_OPTIONS = {
    'train_dataloader.batch_size': 4,
    'val_cfg': None,
    'val_dataloader': None,
    'val_evaluator': None,
}


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.fixture(scope='module')
def pading_checkpoint(tiny_toy_root, stage1_checkpoint,
                      tmp_path_factory) -> str:
    from mmpading.apis import train_toy_config
    return train_toy_config(
        'pading_toy_stage2', str(tmp_path_factory.mktemp('tradeoff')),
        tiny_toy_root, max_iters=2, load_from=stage1_checkpoint,
        options=TRAIN_OPTIONS)


def test_seen_class_ids_follow_the_data_sets_split(tool, tiny_toy_root):
    split = json.loads((Path(tiny_toy_root) / 'split.json').read_text())
    ids = tool.seen_class_ids('pading_toy_stage2', tiny_toy_root)
    assert len(ids) == len(split['seen'])
    assert len(ids) + len(split['unseen']) > max(ids)


@pytest.mark.slow
def test_sweep_ends_and_its_zero_point(tool, tiny_toy_root,
                                       pading_checkpoint, tmp_path):
    from mmpading.apis import evaluate_toy_config
    out = tmp_path / 'r' / 'tradeoff.png'
    summary = tool.main([
        '--data-root', tiny_toy_root, '--model', 'PADing',
        'pading_toy_stage2', pading_checkpoint, '--gammas', '-1', '0', '1',
        '--work-dir', str(tmp_path / 'work'), '--out', str(out)
    ])
    raw = json.loads(out.with_suffix('.json').read_text())
    runs = raw['runs']['PADing']
    # gamma = 0 is the uncalibrated evaluation.
    plain = evaluate_toy_config('pading_toy_stage2', pading_checkpoint,
                                str(tmp_path / 'plain'), tiny_toy_root)
    for key, value in plain.items():
        assert runs['0'][key] == pytest.approx(float(value), abs=1e-9), key
    # The ends of the curve: at -1 no unseen class wins a segment, at +1
    # no seen class does.
    assert runs['-1']['gzsl_panoptic/PQ_unseen'] == 0
    assert runs['-1']['gzsl_semseg/mIoU_unseen'] == 0
    assert runs['1']['gzsl_panoptic/PQ_seen'] == 0
    assert runs['1']['gzsl_semseg/mIoU_seen'] == 0
    for row in summary['PADing'].values():
        assert 0 <= row['ausuc'] <= 1
    assert raw['summary'] == summary
    assert '| PADing | PQ |' in out.with_suffix('.md').read_text()
    assert out.stat().st_size > 10_000


def test_bad_input_is_refused_before_any_work(tool, tiny_toy_root,
                                              tmp_path, capsys):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'')
    cases = [
        (['--model', 'A', 'pading_toy_stage2', str(tmp_path / 'no.pth')],
         'not found'),
        (['--model', 'A', 'pading_toy_stage2', str(ckpt), '--model', 'A',
          'pading_toy_stage2', str(ckpt)], 'labels must differ'),
        (['--model', 'A', 'pading_toy_stage2', str(ckpt), '--gammas', '0'],
         'at least two'),
        (['--model', 'A', 'no_such_config', str(ckpt)], 'no_such_config'),
        (['--model', 'A', 'pading_toy_stage2', str(ckpt),
          '--feature-cache', str(tmp_path)], 'manifest.json'),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit):
            tool.parse_args(['--data-root', tiny_toy_root, *args])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(['--data-root', str(tmp_path), '--model', 'A',
                         'pading_toy_stage2', str(ckpt)])
    assert 'holds no toy data set' in capsys.readouterr().err
