"""tools/misc/build_class_embeddings.py, run as a user runs it."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.embedding_builders import (
    encode_class_names,
    load_clip_text_encoder,
)
from mmpading.datasets.splits import get_split

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOL = REPO_ROOT / 'tools' / 'misc' / 'build_class_embeddings.py'


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, str(TOOL), *args],
                          capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=300)


def test_word2vec(word2vec_dir, tmp_path):
    out = tmp_path / 'new' / 'word2vec_zsi_48_17.json'  # folder is created
    result = _run('word2vec',
                  str(word2vec_dir / 'word_w2v_withbg_48_17.txt'),
                  '--split', 'zsi_48_17', '--out', str(out))
    assert result.returncode == 0, result.stderr
    assert 'Wrote 65 class embeddings' in result.stdout
    split = get_split('zsi_48_17')
    embeddings, names = load_class_embeddings(
        str(out), class_names=split.classes, dim=300)
    assert embeddings.shape == (65, 300) and names == list(split.classes)

    # Wrong split: the counts are named, exit status 2, nothing written.
    bad = tmp_path / 'bad.json'
    result = _run('word2vec',
                  str(word2vec_dir / 'word_w2v_withbg_48_17.txt'),
                  '--classes', 'zsi_65_15', '--out', str(bad))
    assert result.returncode == 2
    assert 'has 66 columns, expected 1 + 80 = 81' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not bad.exists()


def test_clip(tiny_clip, tmp_path):
    classes = tmp_path / 'classes.txt'
    classes.write_text('cat\ntv, monitor\nsky-other-merged\n')
    out = tmp_path / 'clip.json'
    result = _run('clip', '--checkpoint', tiny_clip['openai_pt'],
                  '--classes', str(classes), '--out', str(out),
                  '--num-heads', '2')
    assert result.returncode == 0, result.stderr
    assert '3/3' in result.stdout  # the progress bar
    embeddings, names = load_class_embeddings(str(out), dim=32)
    assert names == ['cat', 'tv, monitor', 'sky-other-merged']
    loaded = load_clip_text_encoder(tiny_clip['mmseg_pth'], num_heads=2)
    np.testing.assert_allclose(embeddings,
                               encode_class_names(loaded.encoder, names),
                               atol=1e-6)

    # The former default set, by name; the default is PADing's.
    out_vild8 = tmp_path / 'clip_vild8.json'
    result = _run('clip', '--checkpoint', tiny_clip['openai_pt'],
                  '--classes', str(classes), '--out', str(out_vild8),
                  '--num-heads', '2', '--templates', 'vild8')
    assert result.returncode == 0, result.stderr
    assert "'vild8'" in result.stdout
    np.testing.assert_allclose(
        load_class_embeddings(str(out_vild8), dim=32)[0],
        encode_class_names(loaded.encoder, names, templates='vild8'),
        atol=1e-6)
    with open(out, encoding='utf-8') as file:
        assert "'imagenet_select'" in file.read()

    # A data set name as the class list, mmseg-format weights.
    out = tmp_path / 'clip_zsi.json'
    result = _run('clip', '--checkpoint', tiny_clip['mmseg_state_dict_pth'],
                  '--classes', 'zsi_65_15', '--out', str(out),
                  '--num-heads', '2')
    assert result.returncode == 0, result.stderr
    assert load_class_embeddings(str(out), dim=32)[0].shape == (80, 32)


def test_clip_errors(tiny_clip, tmp_path):
    missing = tmp_path / 'ViT-B-16.pt'
    result = _run('clip', '--checkpoint', str(missing), '--classes', 'coco',
                  '--out', str(tmp_path / 'x.json'))
    assert result.returncode == 2
    assert str(missing) in result.stderr and 'does not exist' in \
        result.stderr
    result = _run('clip', '--checkpoint', tiny_clip['openai_pt'],
                  '--classes', 'cocco', '--out', str(tmp_path / 'x.json'))
    assert result.returncode == 2
    assert "Did you mean 'coco'" in result.stderr
    assert 'Traceback' not in result.stderr
