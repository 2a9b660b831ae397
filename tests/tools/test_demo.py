"""tools/demo.py end to end on a tiny toy set with a tiny schedule."""
import json
import statistics
import subprocess
import sys
from pathlib import Path

import mmcv
import pytest

from mmpading.apis.toy_demo import STAGE1_CONFIG, VARIANTS, DemoLayout
from mmpading.apis.toy_experiments import READABLE_OVERLAYS
from mmpading.datasets.toy_generator import generate_toy_dataset
from mmpading.visualization.panoptic_overlay_visualizer import TITLE_BAND

REPO = Path(__file__).resolve().parents[2]


def run_demo(data_root: Path, work_dir: Path, iters: int, *extra: str):
    return subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'demo.py'), '--data-root',
         str(data_root), '--work-dir', str(work_dir), '--stage1-iters',
         str(iters), '--stage2-iters', str(iters), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=900)


def fake_sweep(path: Path, schedule: dict) -> dict:
    """A seed sweep as measure_demo_seeds.py writes it (2 seeds)."""
    record = dict(schedule=schedule, seeds=[
        dict(seed=seed, **{label: {'gzsl_panoptic/PQ_unseen': unseen,
                                   'gzsl_panoptic/PQ_hm': hm}
                           for label in VARIANTS})
        for seed, unseen, hm in ((0, 3.0, 5.5), (1, 16.0, 24.0))])
    path.write_text(json.dumps(record))
    return record


def fake_stage2_spread(path: Path, iterations: int) -> list[float]:
    """A diagnosis as diagnose_unseen.py writes it (3 seeds); HM-PQs."""
    hms = [40.0, 44.5, 47.0]
    record = dict(config=VARIANTS['PADing'], stage2_iters=iterations,
                  seeds=[dict(seed=seed, curve=[dict(
                      iteration=iterations,
                      pq=dict(seen=55.0, unseen=hm * 0.8, hm=hm))])
                      for seed, hm in enumerate(hms)])
    path.write_text(json.dumps(record))
    return hms


@pytest.mark.slow
def test_demo_prints_the_table_and_keeps_the_earlier_run(tmp_path):
    data_root = tmp_path / 'toy'
    generate_toy_dataset(str(data_root), num_train=12, num_val=4,
                         image_size=64)
    work_dir = tmp_path / 'work_dirs'
    layout = DemoLayout(str(work_dir))
    sweep_file = tmp_path / 'demo_seeds.json'
    schedule = {name: 2 for name in (STAGE1_CONFIG, *VARIANTS.values())}
    sweep = fake_sweep(sweep_file, schedule)
    stage2_file = tmp_path / 'unseen_diagnosis.json'
    hms = fake_stage2_spread(stage2_file, 2)

    first = run_demo(data_root, work_dir, 2, '--seed-spread',
                     str(sweep_file), '--stage2-spread', str(stage2_file))
    assert first.returncode == 0, first.stderr[-3000:]
    output = first.stdout
    assert 'Generalized zero-shot results' in output
    for row in ('PQ', 'SQ', 'RQ', 'mIoU', 'mAP50 (mask)'):
        assert any(line.startswith(row) for line in output.splitlines())
    results = json.loads(Path(layout.results_json).read_text())
    assert set(results) == set(VARIANTS)
    for metrics in results.values():
        assert 'gzsl_panoptic/PQ_hm' in metrics
    # Each run where `tools/train.py configs/toy/<name>.py` puts it.
    for name in (STAGE1_CONFIG, *VARIANTS.values()):
        assert (Path(layout.run_dir(name)) / 'iter_2.pth').is_file()
    # One overlay (ground truth | prediction) per validation image, in the
    # readable layout: upscaled, a title band, a legend on the right.
    overlays = sorted(Path(layout.overlay_dir).glob('*.png'))
    assert len(overlays) == 4
    scale = READABLE_OVERLAYS['scale']
    height, width = mmcv.imread(str(overlays[0])).shape[:2]
    assert height >= scale * 64 + TITLE_BAND
    assert width > 2 * scale * 64
    assert 'Generalized zero-shot results' in \
        Path(layout.summary_txt).read_text()

    # The spread of the given sweep, beside the table.
    assert 'Across 2 seeds (' in output
    (line, ) = [x for x in output.splitlines() if x.startswith('  PADing')]
    for name, key in (('PQ unseen', 'gzsl_panoptic/PQ_unseen'),
                      ('PQ HM', 'gzsl_panoptic/PQ_hm')):
        values = [entry['PADing'][key] for entry in sweep['seeds']]
        assert f'{name} {statistics.fmean(values):.1f} ± ' \
            f'{statistics.stdev(values):.1f}' in line
    assert 'This run: seed 0' in output
    # And PADing's spread over stage-2 seeds of one stage-1 model.
    (line, ) = [x for x in output.splitlines()
                if x.startswith('PADing across 3 stage-2 seeds')]
    assert f'PQ HM {statistics.fmean(hms):.1f} ± ' \
        f'{statistics.stdev(hms):.1f}' in line
    assert 'unseen PQ 0 in 0 of 3 seeds' in line
    assert 'Not comparable' not in output

    # The console: no config dumps or parameter lists; the log has them.
    everything = output + first.stderr
    for noise in ('paramwise_options', 'Config:', 'System environment',
                  'pkg_resources is deprecated'):
        assert noise not in everything
    (log, ) = (Path(layout.run_dir(STAGE1_CONFIG))).glob('*/*.log')
    log_text = log.read_text()
    assert 'paramwise_options -- ' in log_text
    assert 'Config:' in log_text and 'System environment' in log_text

    # A second demo keeps the first: its folders are moved aside.
    stage1 = Path(layout.run_dir(STAGE1_CONFIG))
    first_checkpoint = (stage1 / 'iter_2.pth').read_bytes()
    missing = tmp_path / 'no_sweep.json'
    second = run_demo(data_root, work_dir, 1, '--no-overlays',
                      '--seed-spread', str(missing), '--stage2-spread',
                      str(stage2_file))
    assert second.returncode == 0, second.stderr[-3000:]
    (kept, ) = work_dir.glob(f'{STAGE1_CONFIG}.*')
    assert (kept / 'iter_2.pth').read_bytes() == first_checkpoint
    assert f'{stage1} is now {kept}' in second.stdout
    assert (stage1 / 'iter_1.pth').is_file()
    kept_outputs = [p for p in work_dir.glob('demo.*')]
    assert len(kept_outputs) == 1
    assert (kept_outputs[0] / 'results.json').is_file()
    # No sweep beside the table: the demo says so.
    assert 'Seed spread: not measured yet' in second.stdout
    assert f'{missing.with_suffix(".md")} is missing' in second.stdout
    # The diagnosis was measured with 2 stage-2 iterations, this run has 1.
    assert ('Not comparable with this run: 2 stage-2 iterations there, 1 '
            'here.') in second.stdout


@pytest.mark.parametrize('option', ['--seed-spread', '--stage2-spread'])
def test_a_broken_seed_sweep_stops_the_demo_first(tmp_path, option):
    broken = tmp_path / 'demo_seeds.json'
    broken.write_text('{"seeds": [')
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'demo.py'), '--work-dir',
         str(tmp_path / 'work'), '--data-root', str(tmp_path / 'toy'),
         option, str(broken)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith('error: ')
    assert str(broken) in result.stderr
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'work').exists()
    assert not (tmp_path / 'toy').exists()
