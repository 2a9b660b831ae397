"""tools/train.py and tools/test.py as a user runs them (subprocesses)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmpading.datasets.toy_generator import (
    DEFAULT_STUFF_CLASSES,
    DEFAULT_THING_CLASSES,
    generate_toy_dataset,
)

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
FAST = [
    'train_dataloader.batch_size=4', 'val_dataloader.batch_size=3',
    'test_dataloader.batch_size=3', 'default_hooks.logger.interval=1',
    'default_hooks.checkpoint.interval=1'
]


@pytest.fixture(scope='module')
def toy_cwd(tmp_path_factory) -> Path:
    """A working directory holding ``data/toy``, as the configs expect."""
    cwd = tmp_path_factory.mktemp('toy_cwd')
    generate_toy_dataset(
        str(cwd / 'data' / 'toy'), num_train=12, num_val=6, image_size=64)
    return cwd


@pytest.fixture(scope='module')
def elsewhere(tmp_path_factory) -> Path:
    """A working directory without ``data/toy``: a path left relative to
    the config's data root would fail here."""
    return tmp_path_factory.mktemp('elsewhere')


def tool(name: str, *args: str) -> list[str]:
    return [sys.executable, str(REPO / 'tools' / name), *map(str, args)]


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return result.stdout + result.stderr


def refused(cmd: list[str], cwd: Path) -> str:
    """Run a tool that must refuse its input: a one-line error, no trace."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode != 0, result.stdout[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    return result.stderr


@pytest.fixture(scope='module')
def stage1_training(toy_cwd, elsewhere) -> tuple[Path, str]:
    """Stage 1 for 2 iterations, run from a folder without ``data/toy``
    and pointed at the toy set with ``--data-root``."""
    work_dir = toy_cwd / 'stage1'
    output = run(
        tool('train.py', REPO / 'configs/toy/pading_toy_stage1.py',
             '--work-dir', work_dir, '--data-root', toy_cwd / 'data' / 'toy',
             '--cfg-options', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=100', *FAST), elsewhere)
    return work_dir / 'iter_2.pth', output


@pytest.fixture(scope='module')
def stage1_run(stage1_training) -> Path:
    return stage1_training[0]


@pytest.fixture(scope='module')
def stage2_run(toy_cwd, stage1_run) -> Path:
    """Stage 2 for 2 iterations from ``stage1_run``."""
    work_dir = toy_cwd / 'stage2_short'
    run(tool('train.py', REPO / 'configs/toy/pading_toy_stage2.py',
             '--work-dir', work_dir, '--cfg-options',
             f'load_from={stage1_run}', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=100', *FAST), toy_cwd)
    return work_dir / 'iter_2.pth'


def tool_main(monkeypatch, name: str, *args) -> str:
    """Run ``tools/<name>`` in this process; it must refuse its input.

    Returns:
        str: The message of its ``SystemExit``.
    """
    module = load_tool_module(str(REPO / 'tools' / name))
    monkeypatch.setattr(sys, 'argv', [name, *map(str, args)])
    with pytest.raises(SystemExit) as error:
        module.main()
    assert isinstance(error.value.code, str), error.value.code
    assert error.value.code.startswith('error: ')
    return error.value.code


@pytest.mark.slow
def test_train_tool_reads_the_data_root_from_anywhere(stage1_training,
                                                      toy_cwd, elsewhere):
    checkpoint, output = stage1_training
    assert f'data root: data/toy/ -> {toy_cwd}/data/toy/' in output
    assert torch.load(checkpoint)['meta']['iter'] == 2
    assert not (elsewhere / 'data').exists()


@pytest.mark.slow
def test_test_tool_prints_gzsl_metrics(toy_cwd, elsewhere, stage1_run):
    output = run(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             stage1_run, '--work-dir', toy_cwd / 'test', '--data-root',
             toy_cwd / 'data' / 'toy', '--cfg-options', *FAST), elsewhere)
    # Stage 1 (upstream Mask2Former) has panoptic and instance outputs.
    for key in ('gzsl_panoptic/PQ_hm', 'gzsl_instance/segm_mAP50_hm'):
        assert key in output
    assert 'warning:' not in output


def test_test_tool_refuses_a_missing_checkpoint(toy_cwd):
    stderr = refused(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             toy_cwd / 'missing.pth'), toy_cwd)
    assert 'missing.pth' in stderr


@pytest.mark.slow
def test_stage2_config_refuses_a_stage1_checkpoint(toy_cwd, stage1_run):
    stderr = refused(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage2.py',
             stage1_run, '--work-dir', toy_cwd / 'refused'), toy_cwd)
    assert f"checkpoint '{stage1_run}' is a stage-1 checkpoint" in stderr
    assert 'zero_shot.*' in stderr and 'random' in stderr
    assert 'stage-2 training' in stderr and 'stage-1 config' in stderr
    # Refused before any work: no run folder was started.
    assert not (toy_cwd / 'refused').exists()


@pytest.mark.slow
def test_stage1_config_says_the_stage2_classifier_is_ignored(
        toy_cwd, elsewhere, stage2_run):
    # --cfg-options data_root=... re-roots like --data-root.
    output = run(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             stage2_run, '--work-dir', toy_cwd / 'test_stage2_as_1',
             '--cfg-options', f'data_root={toy_cwd}/data/toy', *FAST),
        elsewhere)
    assert f'--cfg-options data_root={toy_cwd}/data/toy' in output
    assert 'gzsl_panoptic/PQ_hm' in output
    warning = (f"warning: checkpoint '{stage2_run}' is a stage-2 (PADing) "
               'checkpoint')
    assert output.count(warning) == 2  # before and after the metrics
    assert "stage-2 classifier (zero_shot.*) is ignored" in output
    assert 'To evaluate PADing, pass the stage-2 config' in output


@pytest.mark.slow
def test_resume_of_stage2_from_a_stage1_checkpoint_is_refused(
        toy_cwd, stage1_run):
    work_dir = toy_cwd / 'resume_refused'
    stderr = refused(
        tool('train.py', REPO / 'configs/toy/pading_toy_stage2.py',
             '--work-dir', work_dir, '--resume', stage1_run), toy_cwd)
    assert f"--resume: checkpoint '{stage1_run}' is a stage-1 checkpoint" \
        in stderr
    assert f'--cfg-options load_from={stage1_run}' in stderr
    assert not work_dir.exists()


@pytest.mark.slow
def test_resume_auto_in_a_stage1_work_dir_is_refused(toy_cwd, stage1_run,
                                                     monkeypatch):
    monkeypatch.chdir(toy_cwd)
    message = tool_main(monkeypatch, 'train.py',
                        REPO / 'configs/toy/pading_toy_stage2.py',
                        '--work-dir', stage1_run.parent, '--resume')
    assert f'the latest checkpoint of the work dir {stage1_run.parent}' in \
        message
    assert 'is a stage-1 checkpoint' in message
    assert 'give this run its own --work-dir' in message


@pytest.mark.slow
def test_truncated_checkpoint_is_named(toy_cwd, stage1_run, tmp_path,
                                       monkeypatch):
    truncated = tmp_path / 'iter_3.pth'
    data = stage1_run.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    stderr = refused(
        tool('test.py', REPO / 'configs/toy/pading_toy_stage1.py',
             truncated), toy_cwd)
    assert f"Checkpoint '{truncated}' cannot be read" in stderr
    assert 'truncated' in stderr and 'Copy it again' in stderr
    monkeypatch.chdir(toy_cwd)
    message = tool_main(monkeypatch, 'train.py',
                        REPO / 'configs/toy/pading_toy_stage2.py',
                        '--work-dir', tmp_path / 'run', '--cfg-options',
                        f'load_from={truncated}')
    assert f"Checkpoint '{truncated}' cannot be read" in message


def test_missing_load_from_names_it_and_the_current_folder(
        toy_cwd, tmp_path, monkeypatch):
    monkeypatch.chdir(toy_cwd)
    message = tool_main(monkeypatch, 'train.py',
                        REPO / 'configs/toy/pading_toy_stage2.py',
                        '--work-dir', tmp_path / 'run')
    assert "load_from: checkpoint 'work_dirs/pading_toy_stage1/" in message
    assert f'relative to the current folder {toy_cwd}' in message
    assert '--cfg-options load_from=PATH' in message


@pytest.fixture
def fake_stage1_checkpoint(tmp_path) -> Path:
    path = tmp_path / 'stage1.pth'
    torch.save({'state_dict': {'backbone.x': torch.zeros(1)}}, path)
    return path


def test_data_root_of_the_config_must_exist(elsewhere, monkeypatch,
                                            fake_stage1_checkpoint):
    monkeypatch.chdir(elsewhere)
    message = tool_main(monkeypatch, 'test.py',
                        REPO / 'configs/toy/pading_toy_stage1.py',
                        fake_stage1_checkpoint)
    assert "data_root 'data/toy/'" in message
    assert f'relative to the current folder {elsewhere}' in message
    assert 'pass --data-root DIR' in message
    message = tool_main(monkeypatch, 'train.py',
                        REPO / 'configs/toy/pading_toy_stage1.py')
    assert "train_dataloader: data_root 'data/toy/'" in message


def test_bad_data_root_options_are_refused(elsewhere, tmp_path, monkeypatch,
                                           fake_stage1_checkpoint):
    monkeypatch.chdir(elsewhere)
    config = REPO / 'configs/toy/pading_toy_stage1.py'
    for name, args in (('train.py', (config, )),
                       ('test.py', (config, fake_stage1_checkpoint))):
        message = tool_main(monkeypatch, name, *args, '--data-root',
                            'no/such/toy')
        assert "--data-root 'no/such/toy' is not a folder" in message
        assert f'relative to the current folder {elsewhere}' in message
        message = tool_main(monkeypatch, name, *args, '--data-root',
                            tmp_path, '--cfg-options', 'data_root=/other')
        assert 'ask for different data roots' in message
    bare = tmp_path / 'no_data_root.py'
    bare.write_text("model = dict(type='PADing')\n")
    message = tool_main(monkeypatch, 'train.py', bare, '--data-root',
                        tmp_path)
    assert f'{bare} has no `data_root`' in message


def test_a_head_sized_for_other_classes_is_refused(tmp_path, monkeypatch,
                                                  fake_stage1_checkpoint):
    # Two things and a stuff class more than the toy configs' heads have.
    root = tmp_path / 'larger_toy'
    generate_toy_dataset(
        str(root), num_train=4, num_val=2, image_size=64,
        thing_classes=list(DEFAULT_THING_CLASSES) +
        ['cyan circle', 'magenta square'],
        stuff_classes=list(DEFAULT_STUFF_CLASSES) + ['olive stripes'])
    things = len(DEFAULT_THING_CLASSES)
    config = REPO / 'configs/toy/pading_toy_stage1.py'
    # Refused before anything is written: no work dir here afterwards.
    monkeypatch.chdir(tmp_path)
    for name, args, loader in (
            ('train.py', (config, ), 'train_dataloader'),
            ('test.py', (config, fake_stage1_checkpoint), 'test_dataloader')):
        message = tool_main(monkeypatch, name, *args, '--data-root', root)
        assert message.startswith(f'error: {loader}.dataset')
        assert (f'model.panoptic_head.num_things_classes={things} but the '
                f'data set has {things + 2} things') in message
    assert not (tmp_path / 'work_dirs').exists()


def _train_tool_module():
    return load_tool_module(str(REPO / 'tools' / 'train.py'))


def test_resume_without_checkpoints_keeps_load_from(tmp_path):
    """`--resume` on a fresh stage-2 work dir starts from stage 1."""
    train_tool = _train_tool_module()
    config = str(REPO / 'configs' / 'toy' / 'pading_toy_stage2.py')
    work_dir = tmp_path / 'stage2'
    args = train_tool.argparse.Namespace(
        config=config, launcher='none', cfg_options=None, data_root=None,
        work_dir=str(work_dir), amp=False, resume='auto')
    cfg = train_tool.build_config(args)
    assert not cfg.get('resume', False)
    assert cfg.load_from.endswith('pading_toy_stage1/iter_600.pth')

    # With a checkpoint in the work dir, the same flag resumes from it.
    work_dir.mkdir()
    (work_dir / 'iter_5.pth').write_bytes(b'')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_5.pth'))
    cfg = train_tool.build_config(args)
    assert cfg.resume is True and cfg.load_from is None


def launch_env(monkeypatch, rank: int, world_size: int) -> None:
    """The variables torchrun gives one of ``world_size`` processes."""
    for name, value in (('RANK', rank), ('WORLD_SIZE', world_size),
                        ('LOCAL_RANK', rank)):
        monkeypatch.setenv(name, str(value))


def test_stage2_shares_its_global_batch_over_the_processes(
        monkeypatch, capsys):
    module = load_tool_module(str(REPO / 'tools' / 'train.py'))
    sizes = []
    for rank in (0, 7):
        launch_env(monkeypatch, rank, 8)
        monkeypatch.setattr(sys, 'argv', [
            'train.py', str(REPO / 'configs/pading/zsp_r50.py'),
            '--launcher', 'pytorch'
        ])
        sizes.append(module.build_config(module.parse_args())
                     .train_dataloader.batch_size)
    assert sizes == [2, 1]
    # Said once, by rank 0.
    assert capsys.readouterr().out.count(
        'global_batch_size: 12 images over 8 processes') == 1


def test_a_global_batch_the_processes_cannot_share_is_refused(monkeypatch):
    launch_env(monkeypatch, 0, 16)
    message = tool_main(monkeypatch, 'train.py',
                        REPO / 'configs/pading/zsp_r50.py', '--launcher',
                        'pytorch')
    assert 'global_batch_size=12 images per iteration cannot be shared by ' \
        '16 processes' in message
