"""tools/misc/build_feature_cache.py: builds, resumes, refuses."""
from __future__ import annotations

import json
from pathlib import Path

from _helpers import load_tool_module

REPO = Path(__file__).resolve().parents[2]
TOOL = load_tool_module(str(REPO / 'tools' / 'misc' /
                            'build_feature_cache.py'))
CONFIG = str(REPO / 'configs' / 'toy' / 'pading_toy_stage2.py')


def test_builds_then_refuses_another_cache_in_the_folder(
        tiny_toy_root, stage1_checkpoint, tmp_path, capsys):
    out = tmp_path / 'cache'
    common = [CONFIG, stage1_checkpoint, '--out', str(out), '--data-root',
              tiny_toy_root, '--cfg-options', 'train_cfg.max_iters=2']
    assert TOOL.main(common) == 0
    printed = capsys.readouterr().out
    assert '26 training rows (2 x 13 images) and 6 validation images' in \
        printed
    manifest = json.loads((out / 'manifest.json').read_text())
    assert (manifest['dtype'], manifest['config']) == (
        'float16', 'pading_toy_stage2.py')
    # The same arguments again: complete, nothing rebuilt.
    stamp = (out / 'embeddings.npy').stat().st_mtime_ns
    assert TOOL.main(common) == 0
    assert (out / 'embeddings.npy').stat().st_mtime_ns == stamp
    # Another seed into the same folder: refused with the difference.
    assert TOOL.main(common + ['--seed', '1']) == 2
    error = capsys.readouterr().err
    assert error.startswith('error: ') and 'seed: 0 in the cache, 1 now' \
        in error


def test_a_stage1_config_is_refused(tiny_toy_root, stage1_checkpoint,
                                    tmp_path, capsys):
    stage1 = str(REPO / 'configs' / 'toy' / 'pading_toy_stage1.py')
    assert TOOL.main([stage1, stage1_checkpoint, '--out',
                      str(tmp_path / 'cache'), '--data-root',
                      tiny_toy_root]) == 2
    assert 'not a stage-2 config' in capsys.readouterr().err
    assert not (tmp_path / 'cache').exists()
