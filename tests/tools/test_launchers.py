"""tools/dist_*.sh and tools/slurm_*.sh as a user runs them.

The distributed runs use two CPU processes with the gloo backend on a
generated toy data set. The Slurm scripts run against a fake ``srun`` that
records its arguments.
"""
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from mmpading.datasets.toy_generator import generate_toy_dataset
from mmpading.utils.config_utils import toy_config

from _helpers import build_with_dataset_meta

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
STAGE1 = REPO / 'configs/toy/pading_toy_stage1.py'
STAGE2 = REPO / 'configs/toy/pading_toy_stage2.py'
SCRIPTS = ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
           'slurm_test.sh')
# Two iterations, batch 2 per process, a checkpoint every iteration.
FAST = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
    'train_dataloader.batch_size=2', 'val_dataloader.batch_size=3',
    'test_dataloader.batch_size=3', 'default_hooks.checkpoint.interval=1',
    'default_hooks.logger.interval=1', 'env_cfg.dist_cfg.backend=gloo'
]

# A hook that dumps, on every rank, the trainable parameters before and
# after training, the wrapper type of each top-level submodule and the
# images the rank trained on. Only rank 0 writes checkpoints, so this is how
# the test sees whether DDP kept the ranks in step.
PROBE = '''
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def trainable(model):
    params = {}
    for name, child in model.named_children():
        inner = child.module if is_model_wrapper(child) else child
        for key, param in inner.named_parameters(prefix=name):
            if param.requires_grad:
                params[key] = param.detach().clone()
    return params


@HOOKS.register_module()
class RankParamsProbe(Hook):

    def before_train(self, runner):
        self.before = trainable(runner.model.module)
        self.img_ids = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.img_ids += [s.img_id for s in data_batch['data_samples']]

    def after_train(self, runner):
        model = runner.model.module
        torch.save(
            dict(wrapper=type(runner.model).__name__,
                 children={n: type(c).__name__
                           for n, c in model.named_children()},
                 before=self.before, after=trainable(model),
                 img_ids=self.img_ids),
            f'{runner.work_dir}/probe_rank{get_rank()}.pt')
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def launcher_env(**extra: str) -> dict:
    """This interpreter as ``python``; a fresh port for the launcher."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    env['PATH'] = os.pathsep.join(
        [str(Path(sys.executable).parent), env.get('PATH', '')])
    env.update(extra)
    return env


def run(cmd: list, cwd: Path, env: dict) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, failure_report(output)
    return output


def failure_report(output: str) -> str:
    """The first traceback (the cause) and the end of a failed run's log."""
    start = output.find('Traceback')
    first = output[start:start + 4000] if start >= 0 else ''
    return f'{first}\n...\n{output[-3000:]}'


def build_model(name: str, toy_cwd: Path) -> torch.nn.Module:
    cfg = toy_config(name, str(toy_cwd / 'data' / 'toy'))
    init_default_scope('mmdet')
    return build_with_dataset_meta(cfg)


@pytest.fixture(scope='module')
def toy_cwd(tmp_path_factory) -> Path:
    """A working directory holding ``data/toy``, as the configs expect."""
    cwd = tmp_path_factory.mktemp('launch_cwd')
    generate_toy_dataset(
        str(cwd / 'data' / 'toy'), num_train=12, num_val=6, image_size=64)
    return cwd


@pytest.fixture(scope='module')
def stage1_dist(toy_cwd) -> tuple[Path, str]:
    """Stage 1 trained by ``tools/dist_train.sh CONFIG 2``."""
    work_dir = toy_cwd / 'stage1'
    output = run([TOOLS / 'dist_train.sh', STAGE1, 2, '--work-dir', work_dir,
                  '--cfg-options', *FAST], toy_cwd, launcher_env())
    return work_dir, output


@pytest.mark.slow
def test_dist_train_stage1_in_two_processes(stage1_dist, toy_cwd):
    work_dir, output = stage1_dist
    assert 'Distributed training: True' in output
    assert 'GPU number: 2' in output  # mmengine's name for the world size
    assert "dist_cfg: {'backend': 'gloo'}" in output
    checkpoint = torch.load(work_dir / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    # Saved from the unwrapped model: no DDP ``module.`` prefix.
    assert not any(key.startswith('module.')
                   for key in checkpoint['state_dict'])
    model = build_model('pading_toy_stage1', toy_cwd)
    load_checkpoint(model, str(work_dir / 'iter_2.pth'), strict=True)
    weight = model.panoptic_head.cls_embed.weight
    assert torch.equal(
        weight, checkpoint['state_dict']['panoptic_head.cls_embed.weight'])


@pytest.mark.slow
def test_dist_train_stage2_wraps_only_the_learner(stage1_dist, toy_cwd):
    probe_dir = toy_cwd / 'probe'
    probe_dir.mkdir()
    (probe_dir / 'rank_params_probe.py').write_text(PROBE)
    config = probe_dir / 'pading_toy_stage2_probe.py'
    config.write_text(
        f'_base_ = {str(STAGE2)!r}\n'
        "custom_imports = dict(imports=['mmpading', 'rank_params_probe'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='RankParamsProbe')]\n")
    work_dir = toy_cwd / 'stage2'
    stage1_ckpt = stage1_dist[0] / 'iter_2.pth'
    env = launcher_env(PYTHONPATH=os.pathsep.join(
        filter(None, [str(probe_dir), os.environ.get('PYTHONPATH')])))
    output = run([TOOLS / 'dist_train.sh', config, 2, '--work-dir', work_dir,
                  '--cfg-options', f'load_from={stage1_ckpt}', *FAST],
                 toy_cwd, env)
    assert 'GPU number: 2' in output

    ranks = [torch.load(work_dir / f'probe_rank{rank}.pt')
             for rank in (0, 1)]
    for probe in ranks:
        # Only the learner is wrapped; the frozen segmenter is not.
        assert probe['wrapper'] == 'MMSeparateDistributedDataParallel'
        assert probe['children']['zero_shot'] == 'MMDistributedDataParallel'
        assert probe['children']['backbone'] == 'ResNet'
        assert probe['children']['panoptic_head'] == 'Mask2FormerHead'
        assert probe['after']
        assert all(key.startswith('zero_shot.') for key in probe['after'])
    # The ranks trained on different images ...
    assert ranks[0]['img_ids'] != ranks[1]['img_ids']
    after0, after1 = ranks[0]['after'], ranks[1]['after']
    assert after0.keys() == after1.keys()
    # ... and still hold the same weights: DDP averaged the gradients.
    for key in after0:
        assert torch.equal(after0[key], after1[key]), key
    # Both optimizers stepped: the generator moved from its initial weights,
    # the classifier from stage 1's cls_embed it starts from.
    assert any(
        not torch.equal(after0[key], ranks[0]['before'][key])
        for key in after0 if key.startswith('zero_shot.generator.'))
    stage1 = torch.load(stage1_ckpt)['state_dict']
    assert not torch.equal(after0['zero_shot.classifier.weight'],
                           stage1['panoptic_head.cls_embed.weight'])

    checkpoint = torch.load(work_dir / 'iter_2.pth')
    assert checkpoint['meta']['iter'] == 2
    state = checkpoint['state_dict']
    assert not any('.module.' in key or key.startswith('module.')
                   for key in state)
    assert int(state['zero_shot.classifier_initialised']) == 1
    for key, value in after0.items():
        assert torch.equal(state[key], value), key
    model = build_model('pading_toy_stage2', toy_cwd)
    load_checkpoint(model, str(work_dir / 'iter_2.pth'), strict=True)
    assert bool(model.learner.classifier_initialised)


@pytest.mark.slow
def test_dist_test_prints_gzsl_metrics(stage1_dist, toy_cwd):
    checkpoint = stage1_dist[0] / 'iter_2.pth'
    out = toy_cwd / 'dist_test' / 'predictions.pkl'
    output = run([TOOLS / 'dist_test.sh', STAGE1, checkpoint, 2,
                  '--work-dir', toy_cwd / 'dist_test', '--out', out,
                  '--cfg-options', *FAST], toy_cwd, launcher_env())
    assert 'GPU number: 2' in output
    # Stage 1 (upstream Mask2Former) has panoptic and instance outputs.
    for key in ('gzsl_panoptic/PQ_hm', 'gzsl_instance/segm_mAP50_hm'):
        assert key in output
    # The two processes' predictions were gathered: every validation image
    # exactly once.
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    annotations = json.loads(
        (toy_cwd / 'data/toy/annotations/panoptic_val.json').read_text())
    assert sorted(p['img_id'] for p in predictions) == sorted(
        image['id'] for image in annotations['images'])


def record_script(path: Path, log_name: str) -> None:
    """An executable that writes its argv (and PYTHONPATH) and does nothing.
    """
    path.write_text(
        '#!/usr/bin/env bash\n'
        f'log="$(dirname "$0")/{log_name}"\n'
        'printf "%s\\n" "$PYTHONPATH" > "$log"\n'
        'printf "%s\\n" "$@" >> "$log"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def recorded(path: Path) -> tuple[str, list[str]]:
    pythonpath, *argv = path.read_text().splitlines()
    return pythonpath, argv


@pytest.mark.parametrize('script', SCRIPTS)
def test_scripts_are_executable(script):
    assert os.access(TOOLS / script, os.X_OK)


@pytest.mark.parametrize('script,tool,positional', [
    ('dist_train.sh', 'train.py', ['cfg.py']),
    ('dist_test.sh', 'test.py', ['cfg.py', 'ckpt.pth']),
])
def test_dist_scripts_pass_torchrun_options(tmp_path, script, tool,
                                            positional):
    record_script(tmp_path / 'python', 'python.log')
    env = dict(os.environ, PYTHON=str(tmp_path / 'python'), NNODES='2',
               NODE_RANK='1', MASTER_ADDR='10.1.2.3', PORT='23456')
    subprocess.run([TOOLS / script, *positional, '4', '--cfg-options',
                    'work_dir=a b'], env=env, check=True, timeout=60)
    pythonpath, argv = recorded(tmp_path / 'python.log')
    assert Path(pythonpath.split(':')[0]).resolve() == REPO
    assert argv[:7] == [
        '-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
        '--master_addr=10.1.2.3', '--nproc_per_node=4',
        '--master_port=23456'
    ]
    assert Path(argv[7]).resolve() == TOOLS / tool
    # Extra arguments arrive unchanged, spaces included.
    assert argv[8:] == [*positional, '--launcher', 'pytorch',
                        '--cfg-options', 'work_dir=a b']


def test_dist_train_defaults(tmp_path):
    record_script(tmp_path / 'python', 'python.log')
    env = {key: value for key, value in os.environ.items()
           if key not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')}
    env['PYTHON'] = str(tmp_path / 'python')
    subprocess.run([TOOLS / 'dist_train.sh', 'cfg.py', '2'], env=env,
                   check=True, timeout=60)
    _, argv = recorded(tmp_path / 'python.log')
    assert argv[2:7] == [
        '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1',
        '--nproc_per_node=2', '--master_port=29500'
    ]


@pytest.mark.parametrize('script,tool,expected', [
    ('slurm_train.sh', 'train.py', ['cfg.py', '--work-dir=work dir',
                                    '--launcher=slurm']),
    ('slurm_test.sh', 'test.py', ['cfg.py', 'work dir', '--launcher=slurm']),
])
def test_slurm_scripts_pass_job_options(tmp_path, script, tool, expected):
    record_script(tmp_path / 'srun', 'srun.log')
    env = dict(os.environ, PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}',
               GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='3',
               SRUN_ARGS='--quotatype=auto --time=10')
    env.pop('PYTHON', None)
    # The fourth argument is the work dir (train) or the checkpoint (test).
    result = subprocess.run(
        [TOOLS / script, 'gpu_part', 'pading_job', 'cfg.py', 'work dir',
         '--cfg-options', 'a=1 2'], env=env, capture_output=True,
        text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pythonpath, argv = recorded(tmp_path / 'srun.log')
    assert Path(pythonpath.split(':')[0]).resolve() == REPO
    assert argv[:10] == [
        '-p', 'gpu_part', '--job-name=pading_job', '--gres=gpu:8',
        '--ntasks=16', '--ntasks-per-node=8', '--cpus-per-task=3',
        '--kill-on-bad-exit=1', '--quotatype=auto', '--time=10'
    ]
    assert argv[10:12] == ['python', '-u']
    assert Path(argv[12]).resolve() == TOOLS / tool
    assert argv[13:] == [*expected, '--cfg-options', 'a=1 2']


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py']),
])
def test_scripts_refuse_missing_arguments(tmp_path, script, args):
    record_script(tmp_path / 'srun', 'srun.log')
    record_script(tmp_path / 'python', 'python.log')
    env = dict(os.environ, PYTHON=str(tmp_path / 'python'),
               PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}')
    result = subprocess.run([TOOLS / script, *args], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'usage:' in result.stderr
    assert not (tmp_path / 'srun.log').exists()
    assert not (tmp_path / 'python.log').exists()
