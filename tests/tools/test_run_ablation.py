"""tools/analysis_tools/run_ablation.py: statistics, verdict, report, runs."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'analysis_tools' / 'run_ablation.py'


@pytest.fixture(scope='module')
def ablation():
    return load_tool_module(str(SCRIPT))


def fake_metrics(pq_hm: float, offset: float = 0.0) -> dict:
    """Metrics with every key the report reads, HM-PQ set to ``pq_hm``."""
    metrics = {}
    for prefix in ('gzsl_panoptic/PQ', 'gzsl_panoptic/SQ',
                   'gzsl_panoptic/RQ', 'gzsl_semseg/mIoU',
                   'gzsl_instance/segm_mAP50', 'gzsl_instance/bbox_mAP50'):
        metrics.update({f'{prefix}_seen': 60.0 + offset,
                        f'{prefix}_unseen': 10.0 + offset,
                        f'{prefix}_hm': 20.0 + offset})
    metrics['gzsl_panoptic/PQ_hm'] = pq_hm
    return metrics


def fake_results(hm_by_variant: dict[str, list[float]]) -> dict:
    return {key: {seed: fake_metrics(value)
                  for seed, value in enumerate(values)}
            for key, values in hm_by_variant.items()}


def labels(ablation) -> dict:
    return {v.key: v.label for v in ablation.ABLATION_VARIANTS}


def test_mean_std_is_the_sample_std(ablation):
    def stats(values):
        runs = {seed: {HM: value} for seed, value in enumerate(values)}
        return ablation.summarise(runs, HM)

    HM = 'gzsl_panoptic/PQ_hm'
    result = stats([1.0, 2.0, 3.0, 4.0])
    assert result.mean == pytest.approx(2.5)
    assert result.std == pytest.approx(math.sqrt(5 / 3))  # n - 1
    assert (stats([7.0]).mean, stats([7.0]).std) == (7.0, 0.0)
    assert all(math.isnan(v) for v in (stats([]).mean, stats([]).std))


def test_verdict_matches_when_each_component_helps(ablation):
    results = fake_results({
        'projection': [0, 0, 0], 'gmmn': [5, 6, 4], 'p': [8, 9, 7],
        'p_a': [10, 12, 9], 'pading': [14, 15, 13]})
    lines = ablation.ordering_verdict(results, labels(ablation))
    assert lines[0].startswith('**The ordering matches the paper**')
    assert '0 of 4 lower it significantly' in lines[0]
    assert not any('unlike the paper' in line for line in lines)
    # Paired, seed by seed: P + A minus P is 2, 3, 2.
    (step, ) = [line for line in lines if line.startswith('- P + A > P:')]
    assert 'difference +2.3' in step and 'higher in 3 of 3 seeds' in step


def test_verdict_calls_a_rise_that_is_not_significant_noise(ablation):
    results = fake_results({
        'projection': [0, 0, 0], 'gmmn': [5, 6, 4], 'p': [8, 9, 7],
        'p_a': [10, 12, 9], 'pading': [30, 5, 8]})
    lines = ablation.ordering_verdict(results, labels(ablation))
    # The mean rises (14.3 vs 10.3) but the paired test finds nothing.
    assert lines[0].startswith('**The ordering partly matches the paper**')
    assert '3 of 4 added components' in lines[0]
    (noisy, ) = [line for line in lines if 'no significant' in line]
    assert noisy.startswith('- PADing (P + A + D) ≈ P + A')
    assert 'higher in 1 of 3 seeds' in noisy


def test_verdict_names_the_step_that_breaks_the_order(ablation):
    results = fake_results({
        'projection': [0, 0, 0], 'gmmn': [5, 6, 4], 'p': [3, 2, 1],
        'p_a': [10, 12, 9], 'pading': [14, 15, 13]})
    lines = ablation.ordering_verdict(results, labels(ablation))
    assert lines[0].startswith('**The ordering partly matches the paper**')
    assert '3 of 4 added components' in lines[0]
    assert '1 of 4 lower it significantly' in lines[0]
    broken = [line for line in lines if 'unlike the paper' in line]
    assert len(broken) == 1 and broken[0].startswith('- P < GMMN')
    assert 'higher in 0 of 3 seeds' in broken[0]


def test_report_tables_charts_and_raw_metrics(ablation, tmp_path):
    results = fake_results({
        'projection': [0, 0, 0], 'gmmn': [5, 6, 4], 'pading': [14, 13, 15]})
    sweep = fake_results({100: [9, 10, 11], 400: [14, 13, 15]})
    args = ablation.parse_args(['--out', str(tmp_path / 'r' / 'abl.md')])
    text = ablation.write_report(results, sweep, args,
                                 fake_metrics(0.0), elapsed_s=90.0)
    assert (tmp_path / 'r' / 'abl.md').read_text() == text
    for row in ('| Projection |', '| GMMN |', '| PADing (P + A + D) |'):
        assert sum(line.startswith(row) for line in text.splitlines()) == 3
    # Table 1 HM-PQ of PADing: mean 14.0, sample std 1.0, so the 95% CI
    # half-width is t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.5.
    pading_row = next(line for line in text.splitlines()
                      if line.startswith('| PADing (P + A + D) | 60.0'))
    assert '| 14.0 ± 2.5 |' in pading_row
    assert '| 400 (default) |' in text and '| 100 |' in text
    assert '| PADing (P + A + D) | 41.5 | 15.3 | 22.3 |' in text
    for png in ('abl.png', 'abl_primitives.png'):
        assert (tmp_path / 'r' / png).stat().st_size > 10_000
    raw = json.loads((tmp_path / 'r' / 'abl.json').read_text())
    assert raw['seeds'] == [0, 1, 2]
    assert raw['variants']['gmmn']['1']['gzsl_panoptic/PQ_hm'] == 6


def test_report_names_the_split_of_its_data_set(ablation, tmp_path):
    root = tmp_path / 'other_split'
    root.mkdir()
    (root / 'split.json').write_text(json.dumps(
        dict(name='toy', seen=['blue circle', 'grey stripes'],
             unseen=['red circle', 'purple checker'])))
    results = fake_results({'projection': [0, 0], 'pading': [3, 4]})
    args = ablation.parse_args(['--data-root', str(root), '--out',
                                str(tmp_path / 'abl.md')])
    text = ablation.write_report(results, {}, args, None, elapsed_s=None)
    assert 'all 4 classes; unseen: red circle, purple checker' in text
    assert 'blue circle' not in text.split('```')[0].split('unseen:')[1]
    assert 'split unknown' in ablation.split_description(str(tmp_path))



def timed(results: dict, seconds: float) -> dict:
    return {key: {seed: {**m, 'wall_time_s': seconds}
                  for seed, m in runs.items()}
            for key, runs in results.items()}


def test_report_states_the_configs_schedule_and_counts_every_run(
        ablation, tmp_path):
    from mmpading.utils.config_utils import toy_config
    root = tmp_path / 'toy'
    root.mkdir()
    (root / 'split.json').write_text(json.dumps(
        dict(name='toy', seen=['a', 'b', 'c'], unseen=['d'])))
    results = timed(fake_results({'p_a': [1, 2], 'pading': [3, 4]}), 60.0)
    sweep = timed(fake_results({100: [5, 6]}), 60.0)
    sweep[400] = results['pading']
    # The sweeps' default points are the Table 1 runs: not counted again.
    lambdas = {'pading': {1e-4: results['pading'],
                          1.0: timed(fake_results({0: [7, 8]}), 60.0)[0]}}
    args = ablation.parse_args(['--data-root', str(root), '--out',
                                str(tmp_path / 'abl.md'), '--seeds', '0',
                                '1', '--feature-cache'])
    text = ablation.write_report(results, sweep, args, None, None, lambdas)
    stage1 = toy_config('pading_toy_stage1', str(root)).train_cfg.max_iters
    stage2 = toy_config('pading_toy_stage2', str(root)).train_cfg.max_iters
    assert (f'stage 1: {stage1} iterations; stage 2: {stage2} iterations'
            in text)
    assert 'stage 2 from the feature cache' in text
    assert '- Stage-2 runs: 8, each training + evaluation 1.0 min' in text
    assert 'The toy set is not COCO: 4 procedural classes' in text
    # Options override the configs.
    args = ablation.parse_args(['--data-root', str(root), '--out',
                                str(tmp_path / 'short.md'),
                                '--stage2-iters', '7'])
    text = ablation.write_report(results, {}, args, None, None)
    assert f'stage 1: {stage1} iterations; stage 2: 7 iterations' in text


def test_from_json_rewrites_the_same_report_without_the_runs(
        ablation, tmp_path):
    root = tmp_path / 'toy'
    root.mkdir()
    (root / 'split.json').write_text(json.dumps(
        dict(name='toy', seen=['a', 'b'], unseen=['c'])))
    out = tmp_path / 'r' / 'abl.md'
    argv = ['--data-root', str(root), '--out', str(out), '--seeds', '0', '1',
            '2', '--lambdas', '1e-4', '1']
    results = fake_results({'projection': [0, 1, 0], 'pading': [5, 6, 7]})
    sweep = fake_results({100: [4, 5, 4]})
    lambdas = {'pading': {1e-4: results['pading'],
                          1.0: fake_results({0: [1, 2, 3]})[0]}}
    args = ablation.parse_args(argv)
    text = ablation.write_report(results, sweep, args, fake_metrics(0.0),
                                 125.0, lambdas)
    assert 'Wall time of this command: 2.1 min' in text
    raw = (tmp_path / 'r' / 'abl.json').read_text()
    # The data set is gone; the report comes back from the raw metrics.
    (root / 'split.json').unlink()
    out.unlink()
    ablation.main(['--from-json', '--out', str(out)])
    assert out.read_text() == text
    assert (tmp_path / 'r' / 'abl.json').read_text() == raw


def test_from_json_needs_the_raw_metrics_and_their_record(ablation,
                                                          tmp_path):
    out = tmp_path / 'abl.md'
    with pytest.raises(SystemExit, match='does not exist'):
        ablation.main(['--from-json', '--out', str(out)])
    (tmp_path / 'abl.json').write_text(json.dumps(
        {'seeds': [0, 1], 'variants': {}, 'primitives': {}, 'lambdas': {},
         'stage1': None}))
    with pytest.raises(SystemExit, match='has no run record'):
        ablation.main(['--from-json', '--out', str(out)])


def test_figures_are_the_reports_own_with_their_commands(ablation,
                                                        tmp_path):
    results = fake_results({'gmmn': [1, 2], 'pading': [3, 4]})
    out = tmp_path / 'abl.md'
    args = ablation.parse_args(['--out', str(out), '--feature-cache',
                                '--seeds', '3', '4', '--work-dir', 'w'])
    # Another report's figures beside it are not this one's.
    (tmp_path / 'toy_tsne.png').write_bytes(b'png')
    assert '## Figures' not in ablation.write_report(results, {}, args,
                                                     None, None)
    (tmp_path / 'abl_tsne.png').write_bytes(b'png')
    text = ablation.write_report(results, {}, args, None, None)
    figures = text.split('## Figures')[1].split('## The paper')[0]
    record = ablation.run_record(args, None)
    stage1 = record['schedule']['stage1_iters']
    stage2 = record['schedule']['stage2_iters']
    # Runs from the cache hold the learner only: merged first.
    for key in ('gmmn', 'p', 'pading'):
        assert (f'merge_cached_learner.py w/stage1/iter_{stage1}.pth '
                f'w/{key}/seed3/iter_{stage2}.pth w/{key}/seed3/merged.pth'
                in figures)
    assert '--model PADing pading_toy_stage2 w/pading/seed3/merged.pth' \
        in figures
    assert f'--out {tmp_path / "abl_tsne.png"}' in figures
    # The docs' snippet test runs the block on the default toy set.
    assert ablation.SNIPPET_NEEDS in figures
    assert 'abl_predictions.png' not in figures


def test_lambda_variants_scale_a_and_d_only(ablation):
    assert ablation.lambda_variant('pading', 1e-4).key == 'pading'
    variant = ablation.lambda_variant('p_a', 0.01)
    assert variant.key == 'p_a_lambda0.01'
    assert variant.config == 'pading_toy_stage2_p_a'
    assert variant.options == {'model.zero_shot.lambda_weight': 0.01}


def test_lambda_section_pairs_pading_with_p_a(ablation, tmp_path):
    def runs(values, share):
        return {seed: {**fake_metrics(value),
                       'grad_share/ad_ratio': share}
                for seed, value in enumerate(values)}

    lambdas = {'p_a': {1e-4: runs([5, 6, 7], 1e-4), 1.0: runs([5, 5, 5], 0.5)},
               'pading': {1e-4: runs([5, 6, 7], 2e-4),
                          1.0: runs([8, 9, 10], 0.7)}}
    results = fake_results({'projection': [0, 0, 0], 'pading': [5, 6, 7]})
    args = ablation.parse_args(['--out', str(tmp_path / 'abl.md')])
    text = ablation.write_report(results, {}, args, None, None, lambdas)
    rows = {line.split(' | ')[0]: line for line in text.splitlines()
            if line.startswith('| 0.0001 |') or line.startswith('| 1 |')}
    # lambda 1: PADing - P + A is 3, 4, 5: mean +4.0, significant.
    assert '| +4.0 ± 2.5 |' in rows['| 1']
    assert rows['| 1'].endswith('| 0.5 | 0.7 |')
    # lambda 1e-4: no difference, p = 1.
    assert '| +0.0 ± 0.0 | 1.000 | 0.0001 | 0.0002 |' in rows['| 0.0001']
    raw = json.loads((tmp_path / 'abl.json').read_text())
    assert raw['lambdas']['pading']['1']['2']['gzsl_panoptic/PQ_hm'] == 10


def test_gradient_shares_are_averaged_over_the_log(ablation, tmp_path):
    assert ablation.training_gradient_shares(str(tmp_path)) == {}
    log = tmp_path / '20260101_000000' / 'vis_data'
    log.mkdir(parents=True)
    lines = [{'step': 20, 'grad_share/ad_ratio': 0.1, 'loss': 1.0},
             {'step': 40, 'grad_share/ad_ratio': 0.3,
              'grad_share/align': 0.2}, {'step': 40, 'lr': 0.1}]
    (log / 'scalars.json').write_text(
        '\n'.join(json.dumps(line) for line in lines) + '\n')
    shares = ablation.training_gradient_shares(str(tmp_path))
    assert shares == {'grad_share/ad_ratio': pytest.approx(0.2),
                      'grad_share/align': pytest.approx(0.2)}


def test_bad_arguments_are_refused(ablation):
    with pytest.raises(SystemExit):
        ablation.parse_args(['--seeds', '0'])
    with pytest.raises(SystemExit):
        ablation.parse_args(['--variants', 'nope'])
    with pytest.raises(SystemExit):
        ablation.parse_args(['--lambdas', '0'])
    with pytest.raises(SystemExit):
        ablation.parse_args(['--lambda-seeds', '3'])


@pytest.mark.slow
def test_tiny_ablation_end_to_end(tiny_toy_root, tmp_path):
    work_dir = tmp_path / 'ablation'
    out = tmp_path / 'results' / 'toy_ablation.md'
    command = [
        sys.executable, str(SCRIPT), '--data-root', tiny_toy_root,
        '--work-dir', str(work_dir), '--out', str(out), '--seeds', '0',
        '1', '--sweep-seeds', '0', '1', '--variants', 'projection',
        'pading', '--primitives', '100',
        '400', '--stage1-iters', '1', '--stage2-iters', '1', '--reuse'
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert 'Does the ordering match the paper?' in text
    assert '| Projection |' in text and '| 100 |' in text
    assert (out.parent / 'toy_ablation.png').is_file()
    raw = json.loads((out.parent / 'toy_ablation.json').read_text())
    # 400 primitives is the PADing row itself: trained once per seed.
    assert set(raw['variants']) == {'projection', 'pading'}
    assert set(raw['primitives']) == {'100', '400'}
    assert raw['primitives']['400'] == raw['variants']['pading']
    assert not (work_dir / 'pading_prim400').exists()
    for metrics in raw['variants']['pading'].values():
        assert 'gzsl_panoptic/PQ_hm' in metrics
        assert 'gzsl_instance/bbox_mAP50_hm' in metrics

    # A rerun with --reuse trains nothing; --report-only rewrites the
    # report from the cache.
    checkpoint = work_dir / 'pading' / 'seed1' / 'iter_1.pth'
    stamp = checkpoint.stat().st_mtime_ns
    out.unlink()
    result = subprocess.run(command + ['--report-only'], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_text().count('| PADing (P + A + D) |') == 3
    assert checkpoint.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_tiny_ablation_from_the_feature_cache(tiny_toy_root, tmp_path):
    """Every run trains and evaluates from one cache, built once."""
    work_dir = tmp_path / 'ablation'
    out = tmp_path / 'results' / 'toy_ablation.md'
    command = [
        sys.executable, str(SCRIPT), '--data-root', tiny_toy_root,
        '--work-dir', str(work_dir), '--out', str(out), '--seeds', '0',
        '1', '--variants', 'gmmn', 'pading', '--primitives',
        '--lambdas', '1e-4', '1', '--stage1-iters', '1', '--stage2-iters',
        '2', '--feature-cache'
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(
        (work_dir / 'feature_cache' / 'manifest.json').read_text())
    # 2 iterations x 8 images over the 13 seen-only images: 2 passes.
    assert (manifest['epochs'], manifest['num_images']) == (2, 13)
    assert manifest['val_rows_done'] == manifest['num_val_images'] == 6
    raw = json.loads((out.parent / 'toy_ablation.json').read_text())
    for variant in ('gmmn', 'pading'):
        for seed in ('0', '1'):
            metrics = raw['variants'][variant][seed]
            assert 'gzsl_panoptic/PQ_hm' in metrics
            state = torch.load(work_dir / variant / f'seed{seed}' /
                               'iter_2.pth', weights_only=False)
            # PADingFromCache's: the learner and cls_embed, no segmenter.
            assert not any(key.startswith('backbone.')
                           for key in state['state_dict'])
    # The lambda sweep: P + A and PADing at 1e-4 (PADing's runs are the
    # Table 1 row's) and at 1.
    assert set(raw['lambdas']) == {'p_a', 'pading'}
    assert raw['lambdas']['pading']['0.0001'] == raw['variants']['pading']
    assert not (work_dir / 'pading_lambda0.0001').exists()
    config = (work_dir / 'pading_lambda1' / 'seed0' /
              'pading_toy_stage2.py').read_text()
    assert 'lambda_weight=1' in config.replace(' ', '')
    assert '| λ | P + A HM-PQ |' in out.read_text()


def test_report_only_without_runs_says_what_to_do(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), '--report-only', '--work-dir',
         str(tmp_path / 'none'), '--out', str(tmp_path / 'r.md')],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'run without --report-only first' in result.stderr
    assert 'Traceback' not in result.stderr


def test_the_trade_off_beside_the_report_joins_it(ablation, tmp_path):
    results = fake_results({'gmmn': [1, 2], 'pading': [3, 4]})
    args = ablation.parse_args(['--out', str(tmp_path / 'abl.md')])
    assert '## Seen / unseen trade-off' not in ablation.write_report(
        results, {}, args, None, None)
    row = {'ausuc': 0.25, 'hm_at_0': 40.0, 'best_hm': 44.0,
           'best_gamma': 0.1}
    (tmp_path / 'abl_tradeoff.json').write_text(json.dumps({
        'command': 'python tools/analysis_tools/seen_unseen_tradeoff.py -h',
        'gammas': [-1, 0, 0.1, 1],
        'summary': {'PADing': {'PQ': row, 'mIoU': dict(row, ausuc=0.2),
                               'mask mAP50': dict(row, ausuc=0.1)}},
        'runs': {}}))
    text = ablation.write_report(results, {}, args, None, None)
    section = text.split('## Seen / unseen trade-off')[1].split('\n## ')[0]
    assert '| PADing | 0.250 | 0.200 | 0.100 | 40.0 | 44.0 | 0.1 |' in section
    assert "γ = 0, the paper's protocol" in section
    assert '![trade-off](abl_tradeoff.png)' in section
    assert ablation.TRADEOFF_NEEDS in section


def test_the_trade_off_over_seeds_joins_its_section(ablation, tmp_path):
    results = fake_results({'gmmn': [1, 2], 'pading': [3, 4]})
    args = ablation.parse_args(['--out', str(tmp_path / 'abl.md')])
    row = {'ausuc': 0.25, 'hm_at_0': 40.0, 'best_hm': 44.0,
           'best_gamma': 0.1}
    (tmp_path / 'abl_tradeoff.json').write_text(json.dumps({
        'command': 'python tools/analysis_tools/seen_unseen_tradeoff.py -h',
        'gammas': [-1, 0, 1],
        'summary': {'PADing': {'PQ': row, 'mIoU': row, 'mask mAP50': row}},
        'runs': {}}))
    text = ablation.write_report(results, {}, args, None, None)
    assert 'Over seeds' not in text
    seeds_row = {'ausuc': 0.3, 'ausuc_half_width': 0.02}
    ci = {'mean': 40.0, 'half_width': 2.0}
    (tmp_path / 'abl_tradeoff_seeds.json').write_text(json.dumps({
        'gammas': [-1, 0, 1], 'seeds': [0, 1],
        'summary': {'GMMN': {'PQ': dict(seeds_row, ausuc=0.1)},
                    'PADing': {'PQ': seeds_row}},
        'comparisons': [{'upper': 'PADing', 'lower': 'GMMN', 'metric': 'PQ',
                         'mean_diff': 0.2, 'half_width': 0.05,
                         'p_value': 0.01, 'wins': 2, 'n': 2}],
        'dev': {'PADing': {'hm_at_0': ci, 'hm_at_choice': dict(ci, mean=41),
                           'mean_diff': 1.0, 'half_width': 0.5,
                           'p_value': 0.2},
                'GMMN': {'hm_at_0': dict(ci, mean=10),
                         'hm_at_choice': dict(ci, mean=30),
                         'mean_diff': 20.0, 'half_width': 5.0,
                         'p_value': 0.01,
                         'leader_at_0_minus_this': {
                             'leader': 'PADing', 'mean_diff': 10.0,
                             'half_width': 3.0, 'p_value': 0.02}}}}))
    text = ablation.write_report(results, {}, args, None, None)
    section = text.split('## Seen / unseen trade-off')[1].split('\n## ')[0]
    assert 'Over seeds 0, 1 ([abl_tradeoff_seeds.md]' in section
    assert '| GMMN | 0.100 ± 0.020 | — |' in section
    assert ('| PADing | 0.300 ± 0.020 | +0.200 ± 0.050, p = 0.01 '
            '(2 of 2 seeds higher) |') in section
    assert '| PADing | 40.0 ± 2.0 | 41.0 ± 2.0 | +1.0 ± 0.5, p = 0.2 | — |' \
        in section
    assert ('| GMMN | 10.0 ± 2.0 | 30.0 ± 2.0 | +20.0 ± 5.0, p = 0.01 | '
            'PADing: +10.0 ± 3.0, p = 0.02 |') in section
