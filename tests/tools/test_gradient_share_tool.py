"""tools/analysis_tools/gradient_share.py on the tiny toy set."""
import json
from pathlib import Path

import pytest
import torch

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'analysis_tools' / 'gradient_share.py'
TOY_STAGE2 = str(REPO / 'configs' / 'toy' / 'pading_toy_stage2.py')
AD_TERMS = ('loss_recon', 'loss_unrelated_kl', 'loss_relation', 'loss_align')


@pytest.fixture(scope='module')
def tool():
    return load_tool_module(str(TOOL))


@pytest.fixture(autouse=True)
def few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run(tool, *argv) -> dict:
    return tool.main([str(arg) for arg in argv])


def test_toy_config_with_a_stage1_checkpoint(tool, tiny_toy_root,
                                             stage1_checkpoint, tmp_path,
                                             capsys):
    out = tmp_path / 'share.json'
    result = run(tool, TOY_STAGE2, stage1_checkpoint, '--data-root',
                 tiny_toy_root, '--batches', 2, '--batch-size', 2, '--json',
                 out)
    printed = capsys.readouterr().out
    assert result['weights'].endswith('(stage 1)')
    assert not result['synthetic']
    assert result['batches'] + result['skipped'] == 2
    assert list(result['group_shares']) == ['mmd', 'synthetic_cls', 'align',
                                            'disentangle']
    assert sum(result['group_shares'].values()) == pytest.approx(1.0)
    assert sum(result['term_shares'].values()) == pytest.approx(1.0)
    ratios = [batch['ad_ratio'] for batch in result['per_batch']]
    assert result['ad_ratio'] == pytest.approx(sum(ratios) / len(ratios))
    assert 0 < result['ad_ratio'] < 1  # lambda = 1e-4: A and D are small
    assert result['lambda_weight'] == 1e-4
    assert json.loads(out.read_text())['ad_ratio'] == result['ad_ratio']
    assert 'lambda x (A + D) / (MMD + synthetic CE)' in printed
    assert 'disentanglement (D: recon+kl+relation)' in printed
    assert 'SYNTHETIC' not in printed

    # lambda x 10 through --cfg-options: A and D norms x 10, the rest equal.
    scaled = run(tool, TOY_STAGE2, stage1_checkpoint, '--data-root',
                 tiny_toy_root, '--batches', 2, '--batch-size', 2,
                 '--cfg-options', 'model.zero_shot.lambda_weight=0.001')
    for key in AD_TERMS:
        assert scaled['term_norms'][key] == pytest.approx(
            10 * result['term_norms'][key], rel=1e-4), key
    for key in ('loss_mmd', 'loss_synthetic_cls'):
        assert scaled['term_norms'][key] == pytest.approx(
            result['term_norms'][key], rel=1e-6), key
    assert scaled['ad_ratio'] == pytest.approx(10 * result['ad_ratio'],
                                               rel=1e-4)


def test_stage2_checkpoints_are_measured_and_checked(tool, tiny_toy_root,
                                                    stage1_checkpoint,
                                                    tmp_path):
    args = tool.parse_args([TOY_STAGE2, stage1_checkpoint, '--data-root',
                            tiny_toy_root])
    cfg, _ = tool.load_config(args, str(tmp_path))
    model, _ = tool.build_model(cfg, args)
    # As a stage-2 run saves it: the learner with its classifier set.
    state = model.state_dict()
    torch.save(dict(state_dict=state), tmp_path / 'stage2.pth')
    result = run(tool, TOY_STAGE2, tmp_path / 'stage2.pth', '--data-root',
                 tiny_toy_root, '--batches', 1, '--batch-size', 2)
    assert result['weights'].endswith('(stage 2)')

    partial = {key: value for key, value in state.items()
               if not key.startswith('zero_shot.generator.')}
    torch.save(dict(state_dict=partial), tmp_path / 'partial.pth')
    with pytest.raises(SystemExit) as exit_info:
        run(tool, TOY_STAGE2, tmp_path / 'partial.pth', '--data-root',
            tiny_toy_root)
    message = str(exit_info.value.code)
    assert 'lacks learner weights of this config' in message
    assert 'zero_shot.generator.' in message


def test_synthetic_inputs_and_random_weights_are_labelled(
        tool, tiny_toy_root, capsys):
    result = run(tool, TOY_STAGE2, '--random-weights', '--synthetic',
                 '--image-size', 64, '--batches', 1, '--batch-size', 2,
                 '--data-root', tiny_toy_root)
    printed = capsys.readouterr().out
    assert result['synthetic']
    assert result['weights'] == 'random weights (seed 0)'
    assert result['data'].startswith('SYNTHETIC: random 64x64 images')
    assert 'SYNTHETIC INPUTS / RANDOM WEIGHTS' in printed
    assert result['ad_ratio'] > 0


def test_missing_coco_data_is_named(tool, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/coco here
    config = REPO / 'configs' / 'pading' / 'zsp_r50.py'
    with pytest.raises(SystemExit) as exit_info:
        run(tool, config, '--random-weights')
    message = str(exit_info.value.code)
    assert message.startswith('gradient_share.py: error:')
    assert 'data/coco/embeddings/clip_vit-b16_coco_panoptic.json' in message
    assert 'panoptic_train2017_seen_zsp_coco.json' in message
    assert '--synthetic' in message


@pytest.mark.parametrize('argv,error', [
    ([TOY_STAGE2], 'give a CHECKPOINT or --random-weights'),
    ([TOY_STAGE2, 'missing.pth'], "checkpoint 'missing.pth' not found"),
    ([TOY_STAGE2, '--random-weights', '--batches', '0'],
     '--batches must be >= 1'),
    ([TOY_STAGE2, '--random-weights', '--image-size', '64'],
     '--image-size applies to --synthetic'),
    (['no_such_config', '--random-weights'], 'neither a file'),
])
def test_bad_arguments(tool, argv, error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize('config,error', [
    ('pading_toy_stage1', 'is a stage-1 config'),
    ('pading_toy_stage2_projection', 'has no generator'),
])
def test_configs_without_a_generator_are_refused(tool, tiny_toy_root,
                                                 config, error):
    with pytest.raises(SystemExit) as exit_info:
        run(tool, config, '--random-weights', '--data-root', tiny_toy_root)
    assert error in str(exit_info.value.code)
