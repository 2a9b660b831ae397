"""The ZSI word2vec data shipped in ``mmpading/resources`` and the configs
that name it."""
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from mmpading.apis.model_loading import config_dataset_meta
from mmpading.datasets.class_embeddings import (
    load_class_embeddings,
    resolve_class_embeddings_path,
)
from mmpading.datasets.embedding_builders import (
    convert_word2vec_file,
    read_word2vec_matrix,
    resolve_column_names,
)
from mmpading.datasets.splits import get_split

REPO_ROOT = Path(__file__).resolve().parents[2]
SPLITS = {'zsi_48_17': 'word_w2v_withbg_48_17.txt',
          'zsi_65_15': 'word_w2v_withbg_65_15.txt'}


@pytest.mark.parametrize('split_name', list(SPLITS))
def test_shipped_json_is_the_conversion_of_the_shipped_txt(
        word2vec_dir, tmp_path, split_name):
    """What ``build_class_embeddings.py word2vec TXT --split SPLIT`` writes
    (mmpading/resources/README.md), byte for byte."""
    shipped = Path(resolve_class_embeddings_path(
        f'mmpading::class_embeddings/word2vec_{split_name}.json'))
    text_file = word2vec_dir / SPLITS[split_name]
    column_names, columns_from = resolve_column_names(split_name)
    rebuilt = tmp_path / shipped.name
    convert_word2vec_file(str(text_file), column_names, str(rebuilt),
                          columns_from=columns_from)
    assert shipped.read_bytes() == rebuilt.read_bytes()

    # The same statement in terms of names and vectors.
    content = json.loads(shipped.read_text())
    split = get_split(split_name)
    assert content['class_names'] == list(split.classes)
    assert SPLITS[split_name] in content['source']
    embeddings, names = load_class_embeddings(str(shipped), dim=300)
    raw = read_word2vec_matrix(str(text_file))
    assert raw.shape == (300, 1 + len(split.classes))
    expected = np.ascontiguousarray(raw[:, 1:].T)  # column 0: background
    assert embeddings.tobytes() == expected.tobytes()


@pytest.mark.parametrize('config, split_name', [
    ('zsi_48_17_r50', 'zsi_48_17'),
    ('zsi_65_15_r50', 'zsi_65_15'),
])
def test_zsi_stage2_configs_load_the_shipped_embeddings(
        word2vec_dir, config, split_name):
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / 'pading' /
                              f'{config}.py'))
    learner = cfg.model.zero_shot
    # A resource name: no absolute path, no data root.
    assert learner.class_embeddings == \
        f'mmpading::class_embeddings/word2vec_{split_name}.json'
    # The data set's classes, which the learner takes (DatasetMetaHook).
    classes = list(config_dataset_meta(cfg, 'train')['classes'])
    embeddings, names = load_class_embeddings(
        learner.class_embeddings, class_names=classes, dim=300)
    assert names == classes
    assert embeddings.shape == (len(classes), 300)
    # Rows follow the config's (COCO) class order, each the column of its
    # class in the word2vec file.
    split = get_split(split_name)
    raw = read_word2vec_matrix(str(word2vec_dir / SPLITS[split_name]))
    for row, name in enumerate(names):
        np.testing.assert_array_equal(
            embeddings[row], raw[:, 1 + split.classes.index(name)])
