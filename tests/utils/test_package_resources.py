"""``mmpading::<name>``: data files shipped inside the package."""
import os.path as osp

import pytest

import mmpading
from mmpading.utils.package_resources import (
    is_package_resource,
    list_package_resources,
    resolve_package_resource,
    resources_root,
)

SHIPPED = {
    'mmpading::class_embeddings/word2vec_zsi_48_17.json',
    'mmpading::class_embeddings/word2vec_zsi_65_15.json',
    'mmpading::word2vec/word_w2v_withbg_48_17.txt',
    'mmpading::word2vec/word_w2v_withbg_65_15.txt',
}


def test_root_is_the_imported_packages_resources_folder():
    assert resources_root() == osp.join(
        osp.dirname(osp.abspath(mmpading.__file__)), 'resources')


def test_every_shipped_data_file_is_listed_and_resolves():
    # README.md and the licence describe the data; they are not resources.
    assert set(list_package_resources()) == SHIPPED
    assert list_package_resources('class_embeddings') == sorted(
        name for name in SHIPPED if 'class_embeddings/' in name)
    for name in SHIPPED:
        path = resolve_package_resource(name)
        assert osp.isfile(path)
        assert path == osp.join(resources_root(),
                                name.split('::', 1)[1].replace('/', osp.sep))


def test_plain_paths_are_returned_unchanged(tmp_path):
    for path in ('data/coco/embeddings/word2vec_zsi_48_17.json',
                 str(tmp_path / 'absent.json'), 'mmdet::x.json'):
        assert not is_package_resource(path)
        assert resolve_package_resource(path) == path


def test_unknown_name_lists_the_resources_of_its_folder():
    with pytest.raises(FileNotFoundError) as error:
        resolve_package_resource('mmpading::word2vec/word_w2v_48_17.txt',
                                 what='word2vec file')
    message = str(error.value)
    assert message.startswith(
        "Word2vec file 'mmpading::word2vec/word_w2v_48_17.txt' is not a "
        'resource of the installed mmpading package')
    assert "Did you mean 'mmpading::word2vec/word_w2v_withbg_48_17.txt'?" \
        in message
    assert 'mmpading::word2vec/word_w2v_withbg_65_15.txt' in message
    assert 'class_embeddings' not in message


@pytest.mark.parametrize('name', [
    'mmpading::', 'mmpading::nothing.json', 'mmpading::class_embeddings',
    'mmpading::../setup.py', 'mmpading::../../mmpading/__init__.py',
    'mmpading::/etc/hostname'
])
def test_names_outside_the_shipped_files_are_refused(name):
    # A folder, a file outside resources/ or an absolute name is no
    # resource, even where the file exists; every shipped file is listed.
    with pytest.raises(FileNotFoundError) as error:
        resolve_package_resource(name)
    message = str(error.value)
    assert repr(name) in message
    for shipped in SHIPPED:
        assert shipped in message
