"""The performance scripts of tools/analysis_tools on tiny settings."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

from _helpers import build_with_dataset_meta, load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools' / 'analysis_tools'


def load_tool(name: str):
    """Import a script of tools/analysis_tools as a module."""
    return load_tool_module(str(TOOLS / f'{name}.py'))


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOLS / f'{name}.py'), *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=600)


def lines_starting(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines()
            if line.strip().startswith(prefix)]


# ------------------------------------------------------ benchmark_inference
@pytest.fixture(scope='module')
def one_thread():
    """One torch thread: several stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def model_pair(tiny_toy_root, tmp_path_factory, one_thread):
    bench = load_tool('benchmark_inference')
    with DefaultScope.overwrite_default_scope('mmdet'):
        cfg = bench.load_benchmark_config(
            'pading_toy_stage2', tiny_toy_root,
            str(tmp_path_factory.mktemp('bench')))
        ours, upstream = bench.build_model_pair(
            cfg, torch.device('cpu'), classifier_scale=10.0)
        inputs, samples = bench.random_batch(ours, 2, 64, 96, seed=0)
    return bench, cfg, ours, upstream, inputs, samples


def test_upstream_config_has_upstream_types_only(model_pair):
    bench, cfg, _, upstream, _, _ = model_pair
    with DefaultScope.overwrite_default_scope('mmdet'):
        converted = bench.to_upstream_config(cfg.model)
    assert converted.type == 'Mask2Former'
    assert converted.panoptic_head.type == 'Mask2FormerHead'
    assert converted.panoptic_fusion_head.type == 'MaskFormerFusionHead'
    for key in ('stage', 'zero_shot'):
        assert key not in converted
    for key in ('seen_class_ids', 'calibration_gamma'):
        assert key not in converted.panoptic_fusion_head
    assert converted.test_cfg.semantic_on is False
    # Everything else is kept as it was.
    assert converted.backbone == cfg.model.backbone
    assert type(upstream).__module__.startswith('mmdet.')


def test_same_weights_give_identical_outputs(model_pair):
    bench, _, ours, upstream, inputs, samples = model_pair
    check = bench.check_equivalence(ours, upstream, inputs, samples, 1e-5)
    assert check['ok'], check
    assert check['cls_logits_max_diff'] <= 1e-5
    assert check['mask_logits_max_diff'] <= 1e-5
    assert check['panoptic_identical'] and check['instances_identical']
    # The outputs compared are not empty.
    assert check['instances'] > 0
    # PADing scores with its stage-2 classifier, not with its cls_embed.
    assert not torch.equal(ours.learner.classifier.weight,
                           ours.panoptic_head.cls_embed.weight)


def test_equivalence_check_detects_another_classifier(model_pair):
    """Upstream scoring with PADing's cls_embed, not its classifier."""
    bench, _, ours, upstream, inputs, samples = model_pair
    cls_embed = upstream.panoptic_head.cls_embed
    saved = {
        key: value.clone()
        for key, value in cls_embed.state_dict().items()
    }
    try:
        cls_embed.load_state_dict(ours.panoptic_head.cls_embed.state_dict())
        check = bench.check_equivalence(ours, upstream, inputs, samples,
                                        1e-5)
    finally:
        cls_embed.load_state_dict(saved)
    assert not check['ok']
    assert check['cls_logits_max_diff'] > 1e-5


def test_trained_checkpoint_loads_into_both_models(
        model_pair, tiny_toy_root, stage1_checkpoint, tmp_path):
    from mmpading.apis import train_toy_config
    bench, cfg, _, _, inputs, samples = model_pair
    stage2 = train_toy_config(
        'pading_toy_stage2', str(tmp_path / 'stage2'), tiny_toy_root,
        max_iters=1, load_from=stage1_checkpoint,
        options={'train_dataloader.batch_size': 4})
    with DefaultScope.overwrite_default_scope('mmdet'):
        ours, upstream = bench.build_model_pair(
            cfg, torch.device('cpu'), classifier_scale=10.0,
            checkpoint=stage2)
        trained = torch.load(stage2, map_location='cpu',
                             weights_only=False)['state_dict']
        assert torch.equal(ours.learner.classifier.weight,
                           trained['zero_shot.classifier.weight'])
        assert torch.equal(upstream.panoptic_head.cls_embed.weight,
                           trained['zero_shot.classifier.weight'])
        check = bench.check_equivalence(ours, upstream, inputs, samples,
                                        1e-5)
        assert check['ok'], check
        # A stage-1 checkpoint has no trained classifier to compare.
        with pytest.raises(ValueError, match='stage-2 checkpoint'):
            bench.build_model_pair(cfg, torch.device('cpu'), 10.0,
                                   checkpoint=stage1_checkpoint)


@pytest.mark.slow
def test_benchmark_inference_runs(tiny_toy_root, tmp_path):
    out = tmp_path / 'inference.json'
    result = run_tool('benchmark_inference', '--data-root', tiny_toy_root,
                      '--image-size', '64', '--repeats', '1', '--warmup',
                      '0', '--breakdown', '--json', out)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    (check_line, ) = lines_starting(output, 'equivalence check:')
    assert check_line.endswith('PASS')
    assert len(lines_starting(output, '(a) panoptic + instance')) == 1
    assert len(lines_starting(output, '(b) ours + semantic')) == 1
    assert len(lines_starting(output, 'ratio (a) PADing / upstream:')) == 1
    for part in ('extract_feat', 'head.predict', 'fusion.predict'):
        assert len(lines_starting(output, part)) == 1
    figures = json.loads(out.read_text())
    assert figures['equivalence']['ok']
    assert figures['ratio_a'] > 0
    assert set(figures['parts']) == {
        'extract_feat', 'head.predict', 'fusion.predict'
    }
    for setting in figures['settings'].values():
        assert setting['ours'] > 0 and setting['upstream'] > 0
        assert setting['ratio'] == pytest.approx(
            setting['ours'] / setting['upstream'])


def test_benchmark_inference_rejects_an_unknown_config(capsys):
    bench = load_tool('benchmark_inference')
    assert bench.main(['--config', 'no_such_config']) == 2
    assert 'no_such_config' in capsys.readouterr().err


# --------------------------------------------------------- benchmark_stage2
@pytest.mark.slow
def test_benchmark_stage2_runs(tiny_toy_root, tmp_path):
    out = tmp_path / 'stage2.json'
    result = run_tool('benchmark_stage2', '--data-root', tiny_toy_root,
                      '--batch-size', '2', '--repeats', '1', '--warmup',
                      '0', '--json', out)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    assert len(lines_starting(output, 'pading_toy_stage2 ')) == 2
    assert len(lines_starting(
        output, 'ratio (generator + classifier) / frozen forward')) == 1
    (figures, ) = json.loads(out.read_text())
    assert figures['batch_size'] == 2
    assert figures['has_generator']
    for phase in ('frozen', 'generator', 'classifier'):
        assert figures['median_ms'][phase] > 0
    assert figures['median_ms']['total'] >= figures['median_ms']['frozen']
    assert figures['peak_resident_bytes'] >= \
        figures['resident_after_setup_bytes'] > 0


def test_stage2_phases_on_a_synthetic_batch(tiny_toy_root, tmp_path,
                                            one_thread):
    """Synthetic ground truth feeds a real train_step; no generator here."""
    from mmengine.optim import build_optim_wrapper
    bench = load_tool('benchmark_stage2')
    with DefaultScope.overwrite_default_scope('mmdet'):
        cfg = bench.load_benchmark_config('pading_toy_stage2_projection',
                                          tiny_toy_root, str(tmp_path))
        model = build_with_dataset_meta(cfg)
        model.learner.init_classifier_from(model.segmenter_head.cls_embed)
        model.train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        batch = next(bench.synthetic_batches(model, 2, 64, 80, seed=0))
        clock = bench.PhaseClock(model.learner, torch.device('cpu'))
        times = clock.time_step(
            lambda: model.train_step(batch, optim_wrapper),
            torch.device('cpu'))
    assert times['generator'] == 0.0
    assert times['frozen'] > 0 and times['classifier'] > 0
    assert times['total'] == pytest.approx(
        times['frozen'] + times['classifier'])
    seen = set(model.learner.seen_ids.tolist())
    for sample in batch['data_samples']:
        masks = sample.gt_instances.masks.masks
        assert masks.shape[1:] == (64, 80)
        assert masks.sum(0).max() <= 1  # things do not overlap
        labels = set(sample.gt_instances.labels.tolist())
        stuff = set(sample.gt_sem_seg.sem_seg.unique().tolist()) - labels
        assert labels and labels <= seen and stuff <= seen


# ------------------------------------------------------------- profile_demo
def test_profile_demo_reports_peak_rss_and_wall_time(tmp_path, capsys):
    profile_demo = load_tool('profile_demo')
    out = tmp_path / 'profile.json'
    status = profile_demo.main([
        '--command', f'{sys.executable} -c "x = bytearray(200_000_000)"',
        '--interval', '0.05', '--json',
        str(out)
    ])
    assert status == 0
    output = capsys.readouterr().out
    assert 'wall time:' in output
    assert 'peak RSS, largest single process' in output
    figures = json.loads(out.read_text())
    assert figures['returncode'] == 0
    assert figures['wall_s'] > 0
    assert figures['max_rss_largest_process_bytes'] >= 190e6


def test_profile_demo_propagates_the_exit_status():
    result = subprocess.run(
        [sys.executable, str(TOOLS / 'profile_demo.py'), '--command',
         f'{sys.executable} -c "import sys; sys.exit(3)"'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert 'exit status: 3' in result.stdout


def test_profile_demo_arguments():
    profile_demo = load_tool('profile_demo')
    args = profile_demo.parse_args([])
    assert args.argv == [sys.executable, profile_demo.DEMO]
    assert Path(profile_demo.DEMO) == REPO / 'tools' / 'demo.py'
    # After `--`, everything is the command's, even our own options.
    args = profile_demo.parse_args(
        ['--json', 'a.json', '--', '--stage1-iters', '2', '--json', 'b'])
    assert args.json == 'a.json'
    assert args.argv[2:] == ['--stage1-iters', '2', '--json', 'b']
    assert profile_demo.main(['--command', 'no-such-program-xyz']) == 127


# -------------------------------------------------- benchmark_feature_cache
@pytest.mark.slow
def test_benchmark_feature_cache_runs(tiny_toy_root, stage1_checkpoint,
                                      tmp_path):
    result = run_tool('benchmark_feature_cache', '--data-root',
                      tiny_toy_root, '--stage1-checkpoint',
                      stage1_checkpoint, '--stage2-iters', '2',
                      '--work-dir', tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    assert 'speed-up of a run from the cache:' in output
    assert lines_starting(output, 'torch threads: 1') == ['torch threads: 1']
    # 2 iterations x 8 images over the 13 seen-only images: 2 passes.
    assert len(lines_starting(output, 'cache build (2 x 13 training rows, '
                              '6 validation images)')) == 1
    # ZSP: 20,000 x 12 images over 45,617: 6 passes of 100 queries x
    # (256 float16 + 1 int16 label) = 51,400 bytes per image.
    assert 'COCO ZSP cache (float16): 13.1 GiB of training rows (6 passes' \
        in output
    assert (tmp_path / 'cached' / 'iter_2.pth').is_file()
