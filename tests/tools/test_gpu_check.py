"""tools/analysis_tools/gpu_check.py: the dry mode runs every part on the
CPU; a failing part is reported and the others still run; the report of a
GPU run renders every figure such a run produces."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import load_tool_module

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'tools' / 'analysis_tools' / 'gpu_check.py'


def gpu_check(out: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), '--dry-run', '--python', sys.executable,
         '--out', str(out), *options], capture_output=True, text=True,
        cwd=REPO_ROOT)


def test_dry_run_passes_every_part(tmp_path):
    result = gpu_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    assert report['dry_run'] and 'install' not in report
    parts = report['parts']
    assert list(parts) == ['versions', 'cuda_ops', 'stage1', 'stage2',
                           'inference', 'nccl']
    for name, part in parts.items():
        assert part['status'] == 'ok', (name, part)
        assert (tmp_path / f'{name}.log').is_file()
    assert parts['versions']['versions']['mmcv'] == '2.1.0'
    assert parts['cuda_ops']['point_sample_max_abs_diff'] == 0.0
    (stage1, ) = parts['stage1']['runs'].values()
    assert stage1['unmatched_weights'] == 0  # upstream got our weights
    assert all(stage1['losses_finite'].values())
    assert stage1['s_per_iter']['pading'] > 0
    (stage2, ) = parts['stage2']['runs'].values()
    assert stage2['losses_finite'] and stage2['has_generator']
    assert parts['inference']['equivalence']['ok']
    assert parts['nccl']['backend'] == 'gloo'
    assert parts['nccl']['same_weights'] and parts['nccl']['all_reduce_ok']
    text = (tmp_path / 'gpu_check.md').read_text()
    for heading in ('## Versions', '## CUDA ops against PyTorch',
                    '## Stage 1 training', '## Stage 2 training',
                    '## Inference', '## Two processes'):
        assert heading in text
    assert 'dry run' in text and '## Errors' not in text


def test_a_failing_part_is_reported_and_the_next_still_runs(tmp_path):
    # A stage-2 config where stage 1 is asked for: that part fails.
    result = gpu_check(tmp_path, '--parts', 'versions', 'stage1', 'cuda_ops',
                       '--stage1-config', 'configs/pading/zsp_r50.py')
    assert result.returncode == 1
    parts = json.loads((tmp_path / 'gpu_check.json').read_text())['parts']
    assert parts['versions']['status'] == 'ok'
    assert parts['stage1']['status'] == 'failed'
    assert 'stage-2 config' in parts['stage1']['error']
    assert parts['cuda_ops']['status'] == 'ok'  # ran after the failure
    text = (tmp_path / 'gpu_check.md').read_text()
    assert '| stage1 | failed |' in text
    assert '## Errors' in text and 'stage-2 config' in text


def test_wheelhouse_and_dry_run_exclude_each_other(capsys):
    check = load_tool_module(str(SCRIPT))
    with pytest.raises(SystemExit):
        check.parse_args(['--dry-run', '--wheelhouse', 'wh'])
    assert '--wheelhouse installs' in capsys.readouterr().err


def gpu_report() -> dict:
    """The shape of a GPU run's report (the figures are made up)."""
    stage1_run = dict(batch_size=2, image_size=[1024, 1024],
                      s_per_iter=dict(pading=0.52, upstream=0.5), ratio=1.04,
                      paired_ratio=1.03,
                      cuda_peak_bytes=dict(pading=2**34, upstream=2**34),
                      losses_finite=dict(pading=True, upstream=True))
    stage2_run = dict(batch_size=12, data='synthetic 928x928',
                      median_ms=dict(total=900.0, frozen=800.0,
                                     generator=80.0, classifier=20.0),
                      cuda_peak_bytes=2**35, losses_finite=True)
    return dict(
        command='python3 tools/analysis_tools/gpu_check.py --wheelhouse wh',
        finished='now', wall_s=540.0, dry_run=False,
        install=dict(status='ok', seconds=300.0),
        parts=dict(
            versions=dict(
                status='ok', seconds=3, python='3.12.3',
                versions=dict(torch='2.5.1', mmcv='2.1.0', mmdet='3.3.0'),
                torch_cuda='12.4', cudnn=90100, driver='550.0',
                gpus=[dict(name='GPU', capability='9.0', memory_gib=139.8)],
                mmcv_ops=dict(compiling_cuda='12.4', compiler='GCC 12'),
                mmcv_build=dict(seconds=280.0, cuda_ops=True,
                                cuda_arch_list='9.0', jobs=16)),
            cuda_ops=dict(status='ok', seconds=5, device='cuda:0',
                          msda_queries=21504,
                          msda_max_abs_diff=dict(output=1e-6,
                                                 grad_value=2e-6),
                          msda_ms=dict(cuda_kernel=0.5, pytorch=3.0),
                          point_sample_max_abs_diff=1e-7),
            stage1=dict(status='ok', seconds=60,
                        runs=dict(fp32=stage1_run, amp=stage1_run)),
            stage2=dict(status='ok', seconds=60,
                        runs=dict(fp32=stage2_run, amp=stage2_run)),
            inference=dict(
                status='ok', seconds=40, batch_size=1,
                image_size=[800, 1216], repeats=20, target_met=True,
                equivalence=dict(ok=True),
                settings={'(a) panoptic + instance, both': dict(
                    ours=50.0, upstream=49.0, ratio=1.02,
                    paired_ratio=1.01)}),
            nccl=dict(status='skipped', seconds=2,
                      reason='1 GPU visible; the NCCL run needs 2')))


def test_report_of_a_gpu_run_renders_every_figure():
    check = load_tool_module(str(SCRIPT))
    text = check.markdown(gpu_report())
    assert '| install | ok | 300 |' in text
    assert 'build: 280.0 s, CUDA ops True, arch 9.0, 16 jobs' in text
    assert 'MultiScaleDeformableAttention grad_value: max abs diff' in text
    assert 'cuda_kernel 0.50, pytorch 3.00' in text
    assert '| amp | 2 x 1024² | 0.520 | 0.500 | 1.040 (1.030) |' in text
    # Stage 2 per image against upstream's stage-1 per image:
    # (0.9 / 12) / (0.5 / 2) = 0.3.
    assert '| amp | 12 (synthetic 928x928) | 0.900 | 800 / 80 / 20 |' in text
    assert text.count('| 0.300 |') == 2
    assert 'Target (a) <= 1.03: met.' in text
    assert '| nccl | skipped | 2 | 1 GPU visible' in text
