"""demo/image_demo.py on a tiny toy stage-2 checkpoint (2 iterations)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / 'demo' / 'image_demo.py'


def run_main(*args) -> int:
    return load_tool_module(str(DEMO)).main([str(arg) for arg in args])


def refused(capsys, *args) -> str:
    """The demo must stop with a usage error (exit 2); its message."""
    with pytest.raises(SystemExit) as error:
        run_main(*args)
    assert error.value.code == 2
    return capsys.readouterr().err


def test_demo_writes_drawings_and_predictions(stage2_checkpoint,
                                             tiny_toy_root, tmp_path,
                                             capsys):
    out = tmp_path / 'out'
    val = Path(tiny_toy_root) / 'val'
    assert run_main(val, 'pading_toy_stage2', '--weights', stage2_checkpoint,
                    '--data-root', tiny_toy_root, '--out-dir', out,
                    '--batch-size', 4, '--task', 'instance') == 0
    printed = capsys.readouterr().out
    assert f'results have been saved at {out / "vis"} and ' \
        f'{out / "preds"}' in printed
    images = sorted(path.name for path in val.glob('*.png'))
    assert sorted(path.name for path in (out / 'vis').iterdir()) == images
    for name in images:
        stem = Path(name).stem
        with open(out / 'preds' / f'{stem}.json') as f:
            result = json.load(f)
        assert {'labels', 'scores', 'bboxes', 'masks', 'segments_info',
                'panoptic_seg_path', 'sem_seg_path'} <= set(result)
        assert Path(result['sem_seg_path']).is_file()
        assert Path(result['panoptic_seg_path']).is_file()


def test_no_save_pred_writes_only_the_drawings(stage2_checkpoint,
                                              tiny_toy_root, tmp_path):
    image = sorted((Path(tiny_toy_root) / 'val').glob('*.png'))[0]
    out = tmp_path / 'out'
    assert run_main(image, 'pading_toy_stage2', '--weights',
                    stage2_checkpoint, '--data-root', tiny_toy_root,
                    '--out-dir', out, '--no-save-pred') == 0
    assert [p.name for p in (out / 'vis').iterdir()] == [image.name]
    assert not (out / 'preds').exists()


def test_bad_arguments_are_named_before_any_work(tiny_toy_root,
                                                 stage1_checkpoint, tmp_path,
                                                 capsys):
    val = Path(tiny_toy_root) / 'val'
    out = tmp_path / 'out'
    weights = ['--weights', stage1_checkpoint]
    missing = tmp_path / 'nowhere.png'
    assert 'no such image or folder' in refused(
        capsys, missing, 'pading_toy_stage2', *weights, '--out-dir', out)
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert 'the folder holds no image' in refused(
        capsys, empty, 'pading_toy_stage2', *weights, '--out-dir', out)
    assert '--weights is required' in refused(
        capsys, val, 'pading_toy_stage2', '--out-dir', out)
    message = refused(capsys, val, 'pading_toy_stage2', '--weights',
                      tmp_path / 'iter_1000.pth', '--out-dir', out)
    assert f"--weights '{tmp_path / 'iter_1000.pth'}' does not exist" in \
        message
    message = refused(capsys, val, 'pading_toy_stage3', *weights,
                      '--out-dir', out)
    assert "'pading_toy_stage3' is neither a file nor a toy config" in \
        message
    assert 'pading_toy_stage2_gmmn' in message  # the names to choose from
    assert '--pred-score-thr 1.5' in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--pred-score-thr',
        1.5, '--out-dir', out)
    assert "invalid choice: 'depth'" in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--task', 'depth')
    assert not out.exists()
    a_file = tmp_path / 'outputs.txt'
    a_file.write_text('mine')
    assert 'is a file, not a folder' in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--out-dir', a_file)
    # Results would overwrite the inputs.
    (out / 'vis').mkdir(parents=True)
    (out / 'vis' / 'mine.png').write_bytes((val / next(
        iter(sorted(p.name for p in val.iterdir())))).read_bytes())
    message = refused(capsys, out / 'vis', 'pading_toy_stage2', *weights,
                      '--out-dir', out)
    assert 'the images would be overwritten' in message


def test_stage1_checkpoint_is_refused_without_a_traceback(
        tiny_toy_root, stage1_checkpoint, tmp_path):
    out = tmp_path / 'out'
    result = subprocess.run(
        [sys.executable, str(DEMO), str(Path(tiny_toy_root) / 'val'),
         'pading_toy_stage2', '--weights', stage1_checkpoint,
         '--data-root', tiny_toy_root, '--out-dir', str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert 'image_demo.py: error: weights:' in result.stderr
    assert 'is a stage-1 checkpoint' in result.stderr
    assert not out.exists()


def test_texts_need_their_embeddings_and_cache(tiny_toy_root,
                                               stage1_checkpoint, tmp_path,
                                               capsys):
    val = Path(tiny_toy_root) / 'val'
    weights = ['--weights', stage1_checkpoint, '--out-dir', tmp_path / 'o']
    assert '--texts needs --texts-embeddings' in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--texts', 'navy circle',
        '--feature-cache', tmp_path)
    assert '--texts needs --feature-cache' in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--texts', 'navy circle',
        '--texts-embeddings', tmp_path / 'e.json')
    assert "--texts-embeddings '" in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--texts', 'navy circle',
        '--texts-embeddings', tmp_path / 'e.json', '--feature-cache',
        tmp_path)
    assert 'are for --texts' in refused(
        capsys, val, 'pading_toy_stage2', *weights, '--feature-cache',
        tmp_path)
