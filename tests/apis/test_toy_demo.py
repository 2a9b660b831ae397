"""The demo's pipeline pieces: layout, earlier runs kept, summary, spread."""
import json
import os.path as osp
import statistics

import pytest
from mmdet.registry import DATASETS
from mmengine.registry import DefaultScope

from mmpading.apis.toy_demo import (
    STAGE1_CONFIG,
    VARIANTS,
    DemoLayout,
    describe_toy_dataset,
    format_dataset_summary,
    format_seed_spread,
    format_stage2_spread,
    keep_earlier_runs,
    load_seed_sweep,
    load_stage2_spread,
    schedule_of,
)
from mmpading.utils.config_utils import toy_config

from _helpers import load_tool_module

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_writes_where_the_cli_and_the_stage2_configs_expect(
        monkeypatch):
    layout = DemoLayout('work_dirs')  # the demo's default --work-dir
    stage1 = toy_config(STAGE1_CONFIG)
    final = osp.join(layout.run_dir(STAGE1_CONFIG),
                     f'iter_{stage1.train_cfg.max_iters}.pth')
    for name in VARIANTS.values():
        assert osp.normpath(toy_config(name).load_from) == \
            osp.normpath(final)
    # tools/train.py CONFIG (no --work-dir) writes where the demo does.
    train = load_tool_module(osp.join(REPO, 'tools', 'train.py'))
    monkeypatch.setenv('LOCAL_RANK', '0')
    for name in (STAGE1_CONFIG, *VARIANTS.values()):
        monkeypatch.setattr('sys.argv',
                            ['train.py', f'configs/toy/{name}.py'])
        cfg = train.build_config(train.parse_args())
        assert osp.normpath(cfg.work_dir) == \
            osp.normpath(layout.run_dir(name))
    assert layout.output_dir not in {layout.run_dir(n)
                                     for n in VARIANTS.values()}


def make_run(folder, name: str) -> str:
    folder.mkdir(parents=True)
    checkpoint = folder / 'iter_2.pth'
    checkpoint.write_bytes(name.encode())
    (folder / 'last_checkpoint').write_text(str(checkpoint))
    return str(checkpoint)


def test_earlier_runs_are_moved_aside_not_deleted(tmp_path, capsys):
    layout = DemoLayout(str(tmp_path))
    stage1 = tmp_path / STAGE1_CONFIG
    make_run(stage1, 'first')
    (tmp_path / 'demo').mkdir()
    (tmp_path / 'demo' / 'results.json').write_text('{}')
    moved = keep_earlier_runs(layout, stamp='20240101-000000')
    output = capsys.readouterr().out
    assert [old for old, _ in moved] == [str(stage1), layout.output_dir]
    for old, new in moved:
        assert not osp.exists(old)
        assert new == f'{old}.20240101-000000'
        assert f'{old} is now {new}' in output
    checkpoint = tmp_path / f'{STAGE1_CONFIG}.20240101-000000' / 'iter_2.pth'
    assert checkpoint.read_bytes() == b'first'
    # The moved run's pointer follows it (it can still be resumed).
    pointer = checkpoint.parent / 'last_checkpoint'
    assert pointer.read_text() == str(checkpoint)
    # A second run in the same second does not clash with the first.
    make_run(stage1, 'second')
    ((_, new), ) = keep_earlier_runs(layout, stamp='20240101-000000')
    assert new.endswith('.20240101-000000-1')
    assert (tmp_path / osp.basename(new) / 'iter_2.pth').read_bytes() == \
        b'second'
    assert checkpoint.read_bytes() == b'first'


def test_dataset_summary_is_complete(tiny_toy_root):
    description = describe_toy_dataset(tiny_toy_root)
    text = format_dataset_summary(tiny_toy_root, description)
    assert len(text.splitlines()) <= 5
    train, val = (description['splits'][k] for k in ('train', 'val'))
    assert f'train: {train["images"]} images' in text
    assert f'val:   {val["images"]} images' in text
    for name in description['unseen']:
        assert name in text
    assert f'{len(description["seen"])} seen' in text
    # "Without unseen classes" is the seen-only training set stage 1 uses.
    cfg = toy_config(STAGE1_CONFIG, tiny_toy_root)
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    without = train['images'] - train['images_with_unseen']
    assert len(dataset) == without
    assert f'{without} without unseen' in text


def sweep(values: dict[str, list[float]], schedule=None) -> dict:
    """A sweep record with PQ unseen / HM values per model."""
    count = len(next(iter(values.values())))
    return dict(
        schedule=schedule or schedule_of(),
        seeds=[dict(seed=i, **{
            label: {'gzsl_panoptic/PQ_unseen': values[label][i],
                    'gzsl_panoptic/PQ_hm': 2 * values[label][i]}
            for label in VARIANTS}) for i in range(count)])


def this_run(**overrides) -> dict:
    run = dict(seed=4, schedule=schedule_of(),
               results={label: {'gzsl_panoptic/PQ_unseen': 1.25,
                                'gzsl_panoptic/PQ_hm': 2.5}
                        for label in VARIANTS})
    run.update(overrides)
    return run


def test_seed_spread_is_computed_from_the_sweep():
    values = {'PADing': [3.0, 15.7, 9.1], 'GMMN': [0.0, 0.0, 1.2]}
    text = format_seed_spread(sweep(values), 'docs/results/demo_seeds.md',
                              this_run())
    assert 'Across 3 seeds (docs/results/demo_seeds.md' in text
    for label, numbers in values.items():
        (line, ) = [x for x in text.splitlines()
                    if x.strip().startswith(label)]
        hm = [2 * v for v in numbers]
        for name, series in (('PQ unseen', numbers), ('PQ HM', hm)):
            assert (f'{name} {statistics.fmean(series):.1f} ± '
                    f'{statistics.stdev(series):.1f} (min-max '
                    f'{min(series):.1f}-{max(series):.1f})') in line
    assert 'This run: seed 4' in text
    assert 'Not comparable' not in text


def test_seed_spread_says_when_it_is_missing_or_not_comparable():
    text = format_seed_spread(None, 'docs/results/demo_seeds.md', this_run())
    assert 'not measured yet' in text
    assert 'docs/results/demo_seeds.md is missing' in text
    assert 'measure_demo_seeds.py' in text
    other = dict(schedule_of(), **{STAGE1_CONFIG: 20})
    text = format_seed_spread(sweep({'PADing': [1.0], 'GMMN': [0.0]}),
                              'x.md', this_run(schedule=other))
    assert 'Not comparable with this run' in text
    measured, here = text.split(' there, ')
    assert f'{STAGE1_CONFIG} {schedule_of()[STAGE1_CONFIG]}' in measured
    assert f'{STAGE1_CONFIG} 20' in here


def test_a_broken_sweep_file_is_named(tmp_path):
    path = tmp_path / 'demo_seeds.json'
    assert load_seed_sweep(str(path)) is None
    path.write_text(json.dumps({'seeds': 'five'}))
    with pytest.raises(ValueError, match='demo_seeds.json is not a seed '
                       'sweep'):
        load_seed_sweep(str(path))
    path.write_text('{"seeds": [')
    with pytest.raises(ValueError, match='measure_demo_seeds.py'):
        load_seed_sweep(str(path))


def diagnosis(hms: list[float], unseen: list[float],
              iterations: int | None = None) -> dict:
    """A record as diagnose_unseen.py writes it (last points only)."""
    iterations = iterations or schedule_of()[VARIANTS['PADing']]
    return dict(config=VARIANTS['PADing'], stage2_iters=iterations, seeds=[
        dict(seed=i, curve=[dict(iteration=iterations,
                                 pq=dict(seen=50.0, unseen=u, hm=h))])
        for i, (h, u) in enumerate(zip(hms, unseen))])


def test_stage2_spread_is_computed_from_the_diagnosis():
    hms, unseen = [40.0, 0.0, 46.5], [35.0, 0.0, 41.0]
    text = format_stage2_spread(diagnosis(hms, unseen), 'd.md', this_run())
    assert text.startswith('PADing across 3 stage-2 seeds of one stage-1 '
                           f'model (d.md; {schedule_of()[VARIANTS["PADing"]]}'
                           ' iterations)')
    assert (f'PQ HM {statistics.fmean(hms):.1f} ± '
            f'{statistics.stdev(hms):.1f} (min-max 0.0-46.5)') in text
    assert (f'PQ unseen {statistics.fmean(unseen):.1f} ± '
            f'{statistics.stdev(unseen):.1f}') in text
    assert 'unseen PQ 0 in 1 of 3 seeds' in text
    assert 'Not comparable' not in text


def test_stage2_spread_says_when_it_is_missing_or_not_comparable():
    text = format_stage2_spread(None, 'd.md', this_run())
    assert 'not measured yet (d.md is missing' in text
    record = diagnosis([1.0], [1.0], iterations=300)
    record['config'] = 'pading_toy_stage2_p'
    text = format_stage2_spread(record, 'd.md', this_run())
    here = schedule_of()[VARIANTS['PADing']]
    assert ('Not comparable with this run: config pading_toy_stage2_p '
            f'there, {VARIANTS["PADing"]} here; 300 stage-2 iterations '
            f'there, {here} here.') in text


def test_a_broken_diagnosis_file_is_named(tmp_path):
    path = tmp_path / 'unseen_diagnosis.json'
    assert load_stage2_spread(str(path)) is None
    for text in ('{"seeds": [', json.dumps({'seeds': []}),
                 json.dumps(dict(diagnosis([1.0], [1.0]),
                                 seeds=[{'curve': []}]))):
        path.write_text(text)
        with pytest.raises(ValueError, match='unseen_diagnosis.json is not '
                           'a diagnosis of .*diagnose_unseen.py'):
            load_stage2_spread(str(path))
    path.write_text(json.dumps(diagnosis([1.0], [1.0])))
    assert load_stage2_spread(str(path))['stage2_iters'] == schedule_of()[
        VARIANTS['PADing']]
