"""tools/analysis_tools/measure_demo_seeds.py on tiny data, 2 seeds."""
import json
import shlex
import statistics
from pathlib import Path

import pytest
import torch

from mmpading.apis.toy_demo import (
    TABLE_METRICS,
    VARIANTS,
    DemoLayout,
    schedule_of,
)

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'analysis_tools' / 'measure_demo_seeds.py'


@pytest.fixture(scope='module')
def sweep_script():
    return load_tool_module(str(SCRIPT))


@pytest.mark.slow
def test_sweep_records_each_seed_and_its_spread(sweep_script, tiny_toy_root,
                                                tmp_path, capsys):
    out = tmp_path / 'results' / 'seeds.json'
    out.parent.mkdir()
    runs = tmp_path / 'runs'
    argv = ['--seeds', '2', '--stage1-iters', '2', '--stage2-iters', '2',
            '--data-root', tiny_toy_root, '--work-dir', str(runs),
            '--out', str(out)]
    sweep_script.main(argv)
    record = json.loads(out.read_text())
    assert record['command'].endswith(shlex.join(argv))
    assert record['machine']['torch_threads'] >= 1
    assert record['schedule'] == schedule_of(2, 2)
    assert [entry['seed'] for entry in record['seeds']] == [0, 1]
    for entry in record['seeds']:
        run = json.loads(Path(DemoLayout(str(
            runs / f'seed{entry["seed"]}')).run_json).read_text())
        assert run['seed'] == entry['seed']
        for label in VARIANTS:
            assert set(entry[label]) == set(TABLE_METRICS)
            for key in TABLE_METRICS:
                assert entry[label][key] == run['results'][label][key]
    # Each seed trained its own stage 1 (the seed is the training seed).
    weights = [torch.load(runs / f'seed{s}' / 'pading_toy_stage1' /
                          'iter_2.pth', map_location='cpu',
                          weights_only=False)['state_dict'] for s in (0, 1)]
    assert not all(torch.equal(weights[0][k], weights[1][k])
                   for k in weights[0])

    report = out.with_suffix('.md').read_text()
    assert '[seeds.json](seeds.json)' in report
    values = [entry['PADing']['gzsl_panoptic/PQ_hm']
              for entry in record['seeds']]
    (row, ) = [line for line in report.splitlines()
               if line.startswith('| PADing | PQ HM |')]
    assert f'{statistics.fmean(values):.1f} ± ' \
        f'{statistics.stdev(values):.1f}' in row
    assert f'{min(values):.1f}-{max(values):.1f}' in row

    # --reuse continues: finished seeds are not trained again.
    capsys.readouterr()
    sweep_script.main(argv + ['--reuse'])
    output = capsys.readouterr().out
    for seed in (0, 1):
        layout = DemoLayout(str(runs / f'seed{seed}'))
        assert f'reusing {layout.run_json}' in output
    again = json.loads(out.read_text())
    assert again['seeds'] == record['seeds']


@pytest.mark.parametrize('option, value', [('--seeds', '0'),
                                           ('--stage2-iters', '-1')])
def test_bad_counts_are_refused(sweep_script, option, value, capsys):
    with pytest.raises(SystemExit):
        sweep_script.parse_args([option, value])
    assert option in capsys.readouterr().err


def test_an_output_folder_that_does_not_exist_is_refused(sweep_script,
                                                         tmp_path, capsys):
    target = tmp_path / 'missing' / 'seeds.json'
    with pytest.raises(SystemExit):
        sweep_script.parse_args(['--out', str(target)])
    assert f'--out {target}' in capsys.readouterr().err
