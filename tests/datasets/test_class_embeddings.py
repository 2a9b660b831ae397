import json

import numpy as np
import pytest

from mmpading.datasets.class_embeddings import (
    EMBEDDING_FILE_FORMAT,
    embeddings_checksum,
    load_class_embeddings,
    save_class_embeddings,
)

NAMES = ['red circle', 'blue square', 'grey stripes']


@pytest.fixture
def embedding_file(tmp_path):
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(3, 5)).astype(np.float32)
    path = tmp_path / 'emb.json'
    save_class_embeddings(str(path), NAMES, embeddings, source='test')
    return path, embeddings


def test_round_trip_is_exact(embedding_file):
    path, embeddings = embedding_file
    loaded, names = load_class_embeddings(str(path))
    assert names == NAMES
    assert loaded.dtype == np.float32 and loaded.shape == (3, 5)
    assert np.array_equal(loaded, embeddings)
    content = json.loads(path.read_text())
    assert content['format'] == EMBEDDING_FILE_FORMAT
    assert content['dim'] == 5 and content['source'] == 'test'
    assert content['checksum'] == embeddings_checksum(embeddings)


def test_rows_follow_requested_class_order(embedding_file):
    path, embeddings = embedding_file
    order = ['grey stripes', 'red circle', 'blue square']
    loaded, names = load_class_embeddings(str(path), class_names=order, dim=5)
    assert names == order
    assert np.array_equal(loaded, embeddings[[2, 0, 1]])


def test_missing_and_extra_names_are_all_listed(embedding_file):
    path, _ = embedding_file
    wanted = ['red circle', 'blue sqaure', 'green triangle']
    with pytest.raises(ValueError) as error:
        load_class_embeddings(str(path), class_names=wanted)
    message = str(error.value)
    for name in ('blue sqaure', 'green triangle', 'grey stripes'):
        assert repr(name) in message
    # The misspelt name gets the file's spelling as the closest match.
    assert "'blue square'" in message


def test_wrong_dim_names_expected_and_found(embedding_file):
    path, _ = embedding_file
    with pytest.raises(ValueError, match=r'5-d .* 300-d'):
        load_class_embeddings(str(path), dim=300)


def test_edited_file_fails_the_checksum(embedding_file):
    path, _ = embedding_file
    content = json.loads(path.read_text())
    content['embeddings'][1][2] += 0.5
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match='Checksum mismatch'):
        load_class_embeddings(str(path))


def test_bad_inputs_are_rejected(tmp_path):
    with pytest.raises(ValueError, match='one name per row'):
        save_class_embeddings(str(tmp_path / 'x.json'), ['a'],
                              np.zeros((2, 3)), 'test')
    with pytest.raises(ValueError, match='more than once'):
        save_class_embeddings(str(tmp_path / 'x.json'), ['a', 'a'],
                              np.zeros((2, 3)), 'test')
    (tmp_path / 'other.json').write_text('{"classes": []}')
    with pytest.raises(ValueError, match='not a class embedding file'):
        load_class_embeddings(str(tmp_path / 'other.json'))
    with pytest.raises(FileNotFoundError):
        load_class_embeddings(str(tmp_path / 'absent.json'))


def _write_by_hand(path, names, rows) -> None:
    """A file as an editor or another tool would write it: the checksum
    matches the values, NaN / Infinity included (json allows them)."""
    array = np.asarray(rows, dtype=np.float32)
    content = dict(format=EMBEDDING_FILE_FORMAT, source='by hand',
                   dim=array.shape[1], class_names=names,
                   checksum=embeddings_checksum(array),
                   embeddings=[[float(v) for v in row] for row in array])
    path.write_text(json.dumps(content))


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_non_finite_values_are_refused_naming_file_and_classes(
        tmp_path, bad):
    path = tmp_path / 'nan.json'
    rows = np.ones((3, 4), dtype=np.float32)
    rows[1, 2] = bad
    _write_by_hand(path, NAMES, rows)
    assert ('NaN' if bad != bad else 'Infinity') in path.read_text()
    with pytest.raises(ValueError) as error:
        load_class_embeddings(str(path), class_names=NAMES, dim=4)
    message = str(error.value)
    assert str(path) in message
    assert "1 class(es): 'blue square'." in message
    assert "'red circle'" not in message and "'grey stripes'" not in message
    assert 'Regenerate the file' in message
    assert 'build_class_embeddings.py' in message


def test_values_beyond_float32_are_refused(tmp_path, recwarn):
    path = tmp_path / 'huge.json'
    _write_by_hand(path, NAMES, np.ones((3, 2)))
    content = json.loads(path.read_text())
    content['embeddings'][0][0] = 1e39  # finite in JSON, inf in float32
    content['embeddings'][2][1] = -1e39
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as error:
        load_class_embeddings(str(path))
    assert "2 class(es): 'red circle', 'grey stripes'." in str(error.value)
    assert not [w for w in recwarn if 'overflow' in str(w.message)]


def test_shipped_resource_names_load_without_a_path():
    embeddings, names = load_class_embeddings(
        'mmpading::class_embeddings/word2vec_zsi_48_17.json', dim=300)
    assert embeddings.shape == (65, 300) and len(names) == 65


def test_unknown_resource_lists_the_shipped_embedding_files():
    with pytest.raises(FileNotFoundError) as error:
        load_class_embeddings(
            'mmpading::class_embeddings/word2vec_zsi_48_71.json')
    message = str(error.value)
    assert "Class embedding file 'mmpading::class_embeddings/" \
        "word2vec_zsi_48_71.json' is not a resource" in message
    assert "Did you mean 'mmpading::class_embeddings/" \
        "word2vec_zsi_48_17.json'?" in message
    assert 'mmpading::class_embeddings/word2vec_zsi_65_15.json' in message
    assert 'word_w2v_withbg' not in message  # only the folder asked for
    assert 'path of a file of your own' in message
