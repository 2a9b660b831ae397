"""The named-error helpers for data files (used by the data sets, metrics
and the converter; their behaviour there is tested beside them)."""
import io

import numpy as np
import pytest
from mmdet.datasets.api_wrappers import COCO, COCOPanoptic
from PIL import Image

from mmpading.datasets.file_checks import (
    DataFileError,
    check_coco_content,
    check_file_exists,
    image_file_problem,
    load_coco_api,
    load_json_file,
)


def _png(path, size=(16, 12)):
    Image.fromarray(np.full(size[::-1] + (3, ), 7, np.uint8)).save(path)
    return path


def _jpeg_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format='JPEG')
    return buffer.getvalue()


def test_image_file_problem(tmp_path):
    sound = _png(tmp_path / 'sound.png')
    assert image_file_problem(str(sound)) is None
    assert image_file_problem(str(tmp_path / 'gone.png')) == 'does not exist'
    (tmp_path / 'empty.png').write_bytes(b'')
    assert image_file_problem(str(tmp_path / 'empty.png')) == \
        'is empty (0 bytes)'
    truncated = tmp_path / 'truncated.png'
    truncated.write_bytes(sound.read_bytes()[:30])
    assert 'cannot be decoded' in image_file_problem(str(truncated))
    (tmp_path / 'text.png').write_text('not an image')
    assert 'cannot be decoded' in image_file_problem(
        str(tmp_path / 'text.png'))


def test_truncated_jpeg_is_noticed(tmp_path):
    """cv2 pads a truncated JPEG with grey; PIL's full decode notices."""
    content = _jpeg_bytes()
    (tmp_path / 'cut.jpg').write_bytes(content[:len(content) // 2])
    assert 'truncated' in image_file_problem(str(tmp_path / 'cut.jpg'))
    (tmp_path / 'whole.jpg').write_bytes(content)
    assert image_file_problem(str(tmp_path / 'whole.jpg')) is None


@pytest.mark.parametrize('content, expected', [
    ('', 'is empty'), ('  \n', 'is empty'), ('{"a": [1,', 'not valid JSON'),
])
def test_load_json_file_names_the_file(tmp_path, content, expected):
    path = tmp_path / 'file.json'
    path.write_text(content)
    with pytest.raises(DataFileError) as error:
        load_json_file(str(path), 'Thing file', 'fix it')
    assert str(error.value).startswith(f'Thing file {str(path)!r} ')
    assert expected in str(error.value)
    assert str(error.value).endswith('Fix: fix it.')


def test_check_file_exists(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'.*x\.json' \(ann_file\) "
                       'does not exist. Fix: look'):
        check_file_exists(str(tmp_path / 'x.json'), 'File', 'ann_file',
                          'look')
    with pytest.raises(FileNotFoundError, match=r'File \(ann_file\) is not '
                       'set'):
        check_file_exists('', 'File', 'ann_file')


def test_check_coco_content():
    check_coco_content(dict(images=[], annotations=[], categories=[]), 'f')
    check_coco_content(dict(images=[], categories=[]), 'f',
                       required_keys=('images', 'categories'))
    with pytest.raises(DataFileError, match="lacks 'annotations'"):
        check_coco_content(dict(images=[], categories=[]), 'f')


def test_load_coco_api(tmp_path):
    path = tmp_path / 'instances.json'
    path.write_text('{"images": [{"id": 1}], "annotations": [{"id": 1, '
                    '"image_id": 1, "category_id": 1}], "categories": '
                    '[{"id": 1, "name": "a"}]}')
    coco = load_coco_api(COCO, str(path))
    assert coco.get_img_ids() == [1]
    # An instances file read as a panoptic one.
    with pytest.raises(DataFileError, match="'segments_info' that "
                       'COCOPanoptic needs'):
        load_coco_api(COCOPanoptic, str(path), 'shown.json')
    path.write_text('[]')
    with pytest.raises(DataFileError,
                       match='shown.json.*does not hold a JSON object'):
        load_coco_api(COCO, str(path), 'shown.json')
