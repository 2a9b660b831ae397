"""Conversion of the ZSI word2vec files (the real files shipped in
mmpading/resources/word2vec)."""
import numpy as np
import pytest

from mmpading.datasets.class_embeddings import load_class_embeddings
from mmpading.datasets.embedding_builders import (
    convert_word2vec_file,
    read_word2vec_matrix,
    word2vec_class_embeddings,
)
from mmpading.datasets.splits import get_split

FILES = {'zsi_48_17': ('word_w2v_withbg_48_17.txt', 65),
         'zsi_65_15': ('word_w2v_withbg_65_15.txt', 80)}


def _coco_classes():
    from mmdet.datasets import CocoDataset
    return CocoDataset.METAINFO['classes']


@pytest.mark.parametrize('split_name', list(FILES))
def test_shape_and_names(word2vec_dir, split_name):
    file_name, num_classes = FILES[split_name]
    split = get_split(split_name)
    embeddings, names = word2vec_class_embeddings(
        str(word2vec_dir / file_name), split.classes)
    assert embeddings.shape == (num_classes, 300)
    assert embeddings.dtype == np.float32
    assert names == list(split.classes)
    # Written as in the file: column k + 1 is class k, not normalised.
    raw = read_word2vec_matrix(str(word2vec_dir / file_name))
    np.testing.assert_array_equal(embeddings, raw[:, 1:].T)
    assert not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)


@pytest.mark.parametrize('split_name', list(FILES))
def test_nearest_neighbours(word2vec_dir, split_name):
    file_name, _ = FILES[split_name]
    embeddings, names = word2vec_class_embeddings(
        str(word2vec_dir / file_name), get_split(split_name).classes)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = {name: names[similarity[row].argmax()]
               for row, name in enumerate(names)}
    assert nearest['cat'] == 'dog'
    assert nearest['knife'] == 'scissors'
    assert nearest['car'] == 'truck'
    assert nearest['snowboard'] == 'skis'


@pytest.mark.parametrize('split_name', list(FILES))
def test_round_trip_reorders_to_the_data_set(word2vec_dir, tmp_path,
                                             split_name):
    file_name, num_classes = FILES[split_name]
    split = get_split(split_name)
    out = tmp_path / f'{split_name}.json'
    source = convert_word2vec_file(str(word2vec_dir / file_name),
                                   split.classes, str(out),
                                   columns_from=f'{split_name} test')
    assert source.startswith('word2vec') and file_name in source
    # The data set's classes: COCO order, restricted to the split.
    dataset_classes = split.ordered_like(_coco_classes())
    assert list(dataset_classes) != list(split.classes)
    loaded, names = load_class_embeddings(str(out),
                                          class_names=dataset_classes,
                                          dim=300)
    assert names == list(dataset_classes)
    raw = read_word2vec_matrix(str(word2vec_dir / file_name))
    for row, name in enumerate(dataset_classes):
        column = 1 + split.classes.index(name)
        np.testing.assert_array_equal(loaded[row], raw[:, column])


def test_wrong_column_count_names_found_and_expected(word2vec_dir):
    path = word2vec_dir / 'word_w2v_withbg_48_17.txt'
    with pytest.raises(ValueError) as error:
        word2vec_class_embeddings(str(path), get_split('zsi_65_15').classes)
    message = str(error.value)
    assert 'has 66 columns, expected 1 + 80 = 81' in message
    assert 'word_w2v_withbg_48_17.txt' in message


def test_small_file_with_wrong_columns(tmp_path):
    path = tmp_path / 'w2v.txt'
    np.savetxt(path, np.ones((5, 3)), delimiter=',')
    with pytest.raises(ValueError, match=r'has 3 columns, expected 1 \+ 3 '
                       r'= 4'):
        word2vec_class_embeddings(str(path), ['cat', 'dog', 'cow'])
    # A class-major (not transposed) file gets a hint.
    np.savetxt(path, np.ones((4, 5)), delimiter=',')
    with pytest.raises(ValueError, match='class-major'):
        word2vec_class_embeddings(str(path), ['cat', 'dog', 'cow'])


def test_column_names_go_through_the_alias_table(tmp_path):
    path = tmp_path / 'w2v.txt'
    matrix = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)
    np.savetxt(path, matrix, delimiter=',')
    embeddings, names = word2vec_class_embeddings(
        str(path), ['motorbike', 'tvmonitor', 'hair_drier'])
    assert names == ['motorcycle', 'tv', 'hair drier']
    np.testing.assert_array_equal(embeddings, matrix[:, 1:].T)
    with pytest.raises(ValueError, match=r"\['couch'\] more than once"):
        word2vec_class_embeddings(str(path), ['sofa', 'couch', 'cat'])


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing.txt'):
        read_word2vec_matrix(str(tmp_path / 'nothing.txt'))
    path = tmp_path / 'text.txt'
    path.write_text('1,2,3\n4,five,6\n')
    with pytest.raises(ValueError, match='comma-separated numbers'):
        read_word2vec_matrix(str(path))
    path.write_text('1,2,3\n4,nan,6\n')
    with pytest.raises(ValueError, match='NaN'):
        read_word2vec_matrix(str(path))


def test_shipped_files_by_resource_name(word2vec_dir):
    name = 'mmpading::word2vec/word_w2v_withbg_48_17.txt'
    np.testing.assert_array_equal(
        read_word2vec_matrix(name),
        read_word2vec_matrix(str(word2vec_dir / 'word_w2v_withbg_48_17.txt')))
    with pytest.raises(FileNotFoundError) as error:
        read_word2vec_matrix('mmpading::word2vec/word_w2v_withbg_48_71.txt')
    message = str(error.value)
    assert message.startswith("Word2vec file 'mmpading::word2vec/")
    assert 'mmpading::word2vec/word_w2v_withbg_48_17.txt' in message
