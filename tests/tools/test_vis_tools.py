"""The figure tools: t-SNE of features and the prediction grid."""
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools' / 'analysis_tools'
UNSEEN = ('blue circle', 'yellow square', 'brown checker')
# Two iterations, batch 4, and no validation: the tools only need weights.
TRAIN_OPTIONS = {
    'train_dataloader.batch_size': 4,
    'default_hooks.logger.interval': 1,
    'val_cfg': None,
    'val_dataloader': None,
    'val_evaluator': None,
}


def load_tool(name: str):
    return load_tool_module(str(TOOLS / f'{name}.py'))


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOLS / f'{name}.py'), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def stage2_checkpoints(tiny_toy_root, stage1_checkpoint,
                       tmp_path_factory) -> dict[str, str]:
    """GMMN and PADing stage-2 checkpoints after 2 iterations."""
    from mmpading.apis import train_toy_config
    work_dir = tmp_path_factory.mktemp('vis_stage2')
    return {
        label: train_toy_config(
            name, str(work_dir / name), tiny_toy_root, max_iters=2,
            load_from=stage1_checkpoint, options=TRAIN_OPTIONS)
        for label, name in (('GMMN', 'pading_toy_stage2_gmmn'),
                            ('PADing', 'pading_toy_stage2'))
    }


def model_args(checkpoints: dict[str, str]) -> list[str]:
    names = {'GMMN': 'pading_toy_stage2_gmmn', 'PADing': 'pading_toy_stage2'}
    args = []
    for label, checkpoint in checkpoints.items():
        args += ['--model', label, names[label], checkpoint]
    return args


@pytest.mark.slow
def test_vis_features_writes_one_panel_per_model(tiny_toy_root,
                                                 stage2_checkpoints,
                                                 tmp_path):
    out = tmp_path / 'tsne.png'
    result = run_tool('vis_features', '--data-root', tiny_toy_root,
                      *model_args(stage2_checkpoints), '--num-images', 6,
                      '--per-class', 8, '--batch-size', 6, '--out', out)
    assert result.returncode == 0, result.stdout[-2000:] + \
        result.stderr[-3000:]
    image = mpimg.imread(out)
    height, width = image.shape[:2]
    # Two square-ish panels side by side, plus the legend.
    assert height > 300 and width > 2 * height
    for label in ('GMMN', 'PADing'):
        assert f'[{label}]' in result.stdout
    # Every unseen class has a summary row per model.
    rows = [line.strip() for line in result.stdout.splitlines()
            if line.startswith('  ')]
    for name in UNSEEN:
        assert sum(row.startswith(name) for row in rows) == 2


@pytest.mark.slow
def test_vis_predictions_writes_the_grid(tiny_toy_root, stage1_checkpoint,
                                         stage2_checkpoints, tmp_path):
    out = tmp_path / 'predictions.png'
    result = run_tool('vis_predictions', '--data-root', tiny_toy_root,
                      '--model', 'Stage 1', 'pading_toy_stage1',
                      stage1_checkpoint, '--model', 'PADing',
                      'pading_toy_stage2', stage2_checkpoints['PADing'],
                      '--num-images', 2, '--out', out)
    assert result.returncode == 0, result.stdout[-2000:] + \
        result.stderr[-3000:]
    image = mpimg.imread(out)
    height, width = image.shape[:2]
    # 2 rows x 3 columns (ground truth and two models).
    assert height > 400 and width > 1.2 * height
    summary = result.stdout.split('Pixel accuracy')[-1]
    for label in ('Stage 1', 'PADing'):
        assert label in summary
    # The first image shown has an unseen class.
    first = result.stdout.split('unseen classes in the ground truth)\n')[1]
    assert any(name in first.splitlines()[0] for name in UNSEEN)


def run_main(tool, monkeypatch, *args) -> SystemExit:
    """Run a tool's main() in this process; return the SystemExit."""
    monkeypatch.setattr(sys, 'argv', [tool.__name__, *map(str, args)])
    with pytest.raises(SystemExit) as error:
        tool.main()
    return error.value


@pytest.mark.parametrize('name', ['vis_features', 'vis_predictions'])
def test_missing_checkpoint_is_named(name, tmp_path, monkeypatch, capsys):
    missing = tmp_path / 'nowhere' / 'iter_300.pth'
    error = run_main(load_tool(name), monkeypatch, '--model', 'PADing',
                     'pading_toy_stage2', missing, '--out',
                     tmp_path / 'x.png')
    assert error.code == 2  # argparse's usage error, before any model
    message = capsys.readouterr().err
    assert f"checkpoint '{missing}' not found" in message
    assert not (tmp_path / 'x.png').exists()


def test_unknown_config_lists_the_toy_configs(tmp_path, monkeypatch,
                                               capsys):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.touch()
    error = run_main(load_tool('vis_predictions'), monkeypatch, '--model',
                     'PADing', 'pading_toy_stage3', checkpoint)
    assert error.code == 2
    message = capsys.readouterr().err
    assert "'pading_toy_stage3' is neither a file nor a toy config" in \
        message
    assert 'pading_toy_stage2_gmmn' in message


@pytest.mark.slow
def test_stage1_checkpoint_for_a_stage2_config_is_refused(
        tiny_toy_root, stage1_checkpoint, tmp_path, monkeypatch):
    error = run_main(load_tool('vis_features'), monkeypatch, '--data-root',
                     tiny_toy_root, '--model', 'PADing',
                     'pading_toy_stage2', stage1_checkpoint, '--out',
                     tmp_path / 'x.png')
    assert 'not a stage-2 checkpoint' in str(error.code)
    assert stage1_checkpoint in str(error.code)


def test_summary_finds_synthetic_features_near_their_class():
    tool = load_tool('vis_features')
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10  # classes 0, 1 seen; class 2 unseen
    real_labels = np.repeat([0, 1, 2], 20)
    real = centres[real_labels] + rng.normal(0, 0.5, (60, 3))
    synthetic_labels = np.full(10, 2)
    synthetic = centres[2] + rng.normal(0, 0.5, (10, 3))
    panel = tool.PanelFeatures('P', real, real_labels, synthetic,
                               synthetic_labels, ['a', 'b', 'c'], [0, 1],
                               [2])
    (row, ) = tool.summarise(panel, ['a', 'b', 'c'], {0, 1})
    assert row['nearest'] == 'c' and row['nc_acc'] == 100
    assert row['d_own'] < 2 < row['d_seen']
    assert row['real'] == 20 and row['synthetic'] == 10

    # Without real unseen features only the seen distances exist.
    seen_only = real_labels != 2
    panel.real, panel.real_labels = real[seen_only], real_labels[seen_only]
    (row, ) = tool.summarise(panel, ['a', 'b', 'c'], {0, 1})
    assert np.isnan(row['nc_acc']) and np.isnan(row['d_own'])
    assert row['nearest'] in ('a', 'b')
    assert '-' in tool.format_summary(panel, [row], {0, 1})


def test_prediction_accuracy_counts_seen_and_unseen_pixels():
    tool = load_tool('vis_predictions')
    offset = tool.INSTANCE_OFFSET
    void = 3
    truth = np.array([[0, 0, 2 + offset, void]])
    prediction = np.array([[0, 1, 2 + 5 * offset, 0]])
    column = tool.Column('M')
    accuracy = tool.count_accuracy(column, prediction, truth, {2}, void)
    # Instance ids do not matter; unannotated pixels do not count.
    assert accuracy == {'seen': 50.0, 'unseen': 100.0}
    assert column.accuracy == {'seen': [1, 2], 'unseen': [1, 1]}
    assert '50.0%' in tool.format_summary([column])
