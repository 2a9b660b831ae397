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


@pytest.fixture(scope='module')
def seed_checkpoints(tiny_toy_root, stage1_checkpoint,
                     tmp_path_factory) -> str:
    """Two tiny stage-2 runs (seeds 0 and 1): the checkpoint pattern."""
    from mmpading.apis import train_toy_config
    root = tmp_path_factory.mktemp('tradeoff_seeds')
    for seed in (0, 1):
        checkpoint = train_toy_config(
            'pading_toy_stage2', str(root / f'seed{seed}'), tiny_toy_root,
            seed=seed, max_iters=2, load_from=stage1_checkpoint,
            options=TRAIN_OPTIONS)
    return checkpoint.replace('/seed1/', '/seed{seed}/')


@pytest.mark.slow
def test_seeds_give_means_paired_tests_and_a_held_out_choice(
        tool, tiny_toy_root, seed_checkpoints, tmp_path):
    out = tmp_path / 'seeds.png'
    tool.main([
        '--data-root', tiny_toy_root, '--seeds', '0', '1',
        '--model', 'A', 'pading_toy_stage2', seed_checkpoints,
        '--model', 'B', 'pading_toy_stage2', seed_checkpoints,
        '--gammas', '0', '1', '--dev-data-root', tiny_toy_root,
        '--work-dir', str(tmp_path / 'work'), '--out', str(out)
    ])
    raw = json.loads(out.with_suffix('.json').read_text())
    for label in ('A', 'B'):
        per_seed = raw['summary'][label]['PQ']['ausuc_per_seed']
        assert set(per_seed) == {'0', '1'}
        assert raw['summary'][label]['PQ']['ausuc'] == pytest.approx(
            sum(per_seed.values()) / 2)
        # The held-out choice is read at its gamma on the reported set.
        dev = raw['dev'][label]
        assert set(dev['gamma_per_seed'].values()) <= {0, 1}
        chosen = [raw['runs'][f'{label}/seed{s}'][f'{g:g}']
                  ['gzsl_panoptic/PQ_hm']
                  for s, g in dev['gamma_per_seed'].items()]
        assert dev['hm_at_choice']['mean'] == pytest.approx(
            sum(chosen) / 2)
    # The best model at gamma = 0 against the other one calibrated.
    gaps = [raw['dev'][label].get('leader_at_0_minus_this')
            for label in ('A', 'B')]
    assert sum(gap is None for gap in gaps) == 1
    gap = next(gap for gap in gaps if gap is not None)
    assert gap['n'] == 2 and gap['leader'] in ('A', 'B')
    # The same checkpoints under two labels: a paired difference of 0.
    pq = [row for row in raw['comparisons'] if row['metric'] == 'PQ']
    assert len(pq) == 1 and pq[0]['mean_diff'] == 0 and pq[0]['n'] == 2
    text = out.with_suffix('.md').read_text()
    assert '| B − A | PQ |' in text and 'held-out draw' in text


def test_seed_arguments_are_checked(tool, tiny_toy_root, tmp_path, capsys):
    ckpt = tmp_path / 'seed0.pth'
    ckpt.write_bytes(b'')
    base = ['--data-root', tiny_toy_root]
    cases = [
        (['--seeds', '0', '1', '--model', 'A', 'pading_toy_stage2',
          str(ckpt)], 'must hold "{seed}"'),
        (['--seeds', '0', '--model', 'A', 'pading_toy_stage2',
          str(tmp_path / 'seed{seed}.pth')], 'at least two seeds'),
        (['--dev-data-root', tiny_toy_root, '--model', 'A',
          'pading_toy_stage2', str(ckpt)], '--dev-data-root needs --seeds'),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit):
            tool.parse_args(base + argv)
        assert message in capsys.readouterr().err
