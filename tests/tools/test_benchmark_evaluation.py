"""tools/analysis_tools/benchmark_evaluation.py end to end on a tiny set."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import load_tool_module

pytest.importorskip('hotcoco')

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'analysis_tools' / 'benchmark_evaluation.py'
bench = load_tool_module(str(SCRIPT))


def run_script(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), '--no-progress', *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=300)


def test_times_both_backends_and_reports_equality(tmp_path, capsys):
    work_dir = tmp_path / 'set'
    args = ('--num-images', 5, '--height', 60, '--width', 80, '--instances',
            20, '--work-dir', work_dir)
    result = run_script(*args)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ('panoptic', 'instance', 'semantic', 'total'):
        assert any(line.split()[:1] == [name] and line.endswith('x')
                   for line in out.splitlines()), name
    assert 'equal: yes' in out
    report = json.loads(
        (work_dir / 'benchmark_reference_hotcoco.json').read_text())
    assert report['equality']['equal']
    for name in ('panoptic', 'instance', 'semantic'):
        item = report['equality'][name]
        assert item['keys'] > 10 and not item['mismatched']
        assert item['max_abs_diff'] <= 1e-6
        assert report['results']['reference'][name].keys() == \
            report['results']['hotcoco'][name].keys()
        assert all(t > 0 for t in (report['seconds']['reference'][name],
                                   report['seconds']['hotcoco'][name]))
    assert len(list((work_dir / 'pred_instances').iterdir())) == 5
    assert report['spec']['instances_per_image'] == 20

    # The data set is reused; one backend alone times without comparing.
    assert bench.main([*map(str, args), '--no-progress', '--backends',
                       'hotcoco']) == 0
    again = capsys.readouterr().out
    assert 'data set ready in 0.0 s' in again
    assert 'equal:' not in again
    assert (work_dir / 'benchmark_hotcoco.json').is_file()


def test_a_folder_it_did_not_write_is_left_alone(tmp_path, capsys):
    (tmp_path / 'mine.txt').write_text('keep')
    assert bench.main(['--num-images', '2', '--height', '32', '--width',
                       '32', '--work-dir', str(tmp_path)]) == 2
    assert 'is not the data set of this setting' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['mine.txt']


def test_a_mismatch_is_reported_and_fails():
    same = {'k': 1.0, 'n': float('nan')}
    results = dict(reference={n: dict(same) for n in bench.METRIC_NAMES},
                   hotcoco={n: dict(same) for n in bench.METRIC_NAMES})
    assert bench.compare(results, 1e-6)['equal']
    results['hotcoco']['instance']['k'] = 1.0 + 2e-6
    results['hotcoco']['semantic']['n'] = 0.0
    report = bench.compare(results, 1e-6)
    assert not report['equal']
    assert report['instance']['mismatched'] == ['k']
    assert report['semantic']['mismatched'] == ['n']
    assert report['panoptic']['mismatched'] == []
