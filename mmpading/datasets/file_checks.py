"""Named errors for missing, empty, truncated or corrupt data files.

Upstream loaders fail on such files deep inside json, pycocotools or cv2: a
bare ``JSONDecodeError`` 25 frames down, or a cv2 assertion mid-training
that names no file. The helpers here turn them into one error that names the
file, says what is wrong with it and how to fix it. They only run where a
file is opened anyway, or once something already failed: a sound data set
loads exactly as upstream loads it.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import mmcv
from mmengine import fileio
from PIL import Image

# What to do about a broken annotation file, whichever it is.
ANNOTATION_FIX = (
    're-download it (COCO: cocodataset.org) or regenerate it (seen-only '
    'files: tools/dataset_converters/prepare_zero_shot_coco.py; the toy '
    'set: tools/dataset_converters/make_toy_dataset.py)')
# What to do about a broken image or label PNG.
SAMPLE_FIX = (
    're-extract that file from its archive (COCO: unzip the images / '
    'panoptic PNGs again) or regenerate it (the toy set: '
    'tools/dataset_converters/make_toy_dataset.py)')
COCO_KEYS = ('images', 'annotations', 'categories')
# Keys of a data info that hold the files of one sample, with their role.
SAMPLE_FILE_KEYS = (('img_path', 'image'), ('seg_map_path', 'annotation'))


class DataFileError(ValueError):
    """A data file exists but does not hold what it should."""


def json_error_reason(error: ValueError) -> str:
    """What a JSON parser's error says about the file, in a few words.

    Args:
        error (ValueError): A ``json.JSONDecodeError`` or
            ``UnicodeDecodeError`` raised while parsing the file.
    """
    if isinstance(error, json.JSONDecodeError) and not error.doc.strip():
        return 'is empty'
    return f'is not valid JSON (truncated or corrupt?): {error}'


@contextmanager
def naming_json_file(path: str, what: str = 'Annotation file',
                     fix: str = ANNOTATION_FIX) -> Iterator[None]:
    """Turn a JSON parse error inside the block into a named error.

    Also turns pycocotools' ``assert type(dataset) == dict`` into one: a file
    holding a JSON list or string is not a COCO file either.

    Args:
        path (str): The file parsed inside the block.
        what (str): What the file is, to start the message.
        fix (str): How to fix the file.

    Raises:
        DataFileError: Naming ``path``, the parser's message and ``fix``.
    """
    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFileError(
            f'{what} {path!r} {json_error_reason(error)}. Fix: {fix}.'
        ) from None
    except AssertionError as error:
        if 'annotation file format' not in str(error):
            raise
        raise DataFileError(
            f'{what} {path!r} does not hold a JSON object ({error}): it is '
            f'not a COCO annotation file. Fix: {fix}.') from None


def load_json_file(path: str, what: str = 'Annotation file',
                   fix: str = ANNOTATION_FIX,
                   backend_args: dict | None = None) -> Any:
    """Parse a JSON file; a missing, empty or truncated one gets a named
    error.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DataFileError: If it is empty or not valid JSON.
    """
    check_file_exists(path, what, fix=fix, backend_args=backend_args)
    with naming_json_file(path, what, fix):
        return json.loads(fileio.get_text(path, backend_args=backend_args))


def check_file_exists(path: str, what: str, option: str | None = None,
                      fix: str = '', backend_args: dict | None = None) -> None:
    """Refuse a file that is not there, naming it, its option and the fix.

    Args:
        path (str): The file (already joined with ``data_root``).
        what (str): What the file is, e.g. ``'Annotation file'``.
        option (str, optional): The argument that set it, e.g.
            ``'ann_file'``.
        fix (str): What to do; a generic hint when empty.
        backend_args (dict, optional): mmengine file backend arguments.

    Raises:
        FileNotFoundError: If ``path`` is empty or does not exist.
    """
    given = f' ({option})' if option else ''
    fix = fix or 'check the path and data_root'
    if not path:
        raise FileNotFoundError(f'{what}{given} is not set. Fix: {fix}.')
    if not fileio.exists(path, backend_args=backend_args):
        raise FileNotFoundError(
            f'{what} {path!r}{given} does not exist. Fix: {fix}.')


def check_coco_content(content: Mapping, path: str,
                       required_keys: Sequence[str] = COCO_KEYS,
                       what: str = 'Annotation file') -> None:
    """Refuse a parsed COCO file without its top-level lists.

    pycocotools accepts ``{}`` and yields an empty data set (or a KeyError
    much later), so an incomplete file would otherwise train or evaluate on
    nothing without a word.

    Args:
        content (Mapping): The parsed JSON (``COCO.dataset``).
        path (str): The file, for the message.
        required_keys (Sequence[str]): Keys it must have; a test-dev style
            file without ``annotations`` can be allowed by leaving that key
            out.
        what (str): What the file is, to start the message.

    Raises:
        DataFileError: Naming the file and the missing keys.
    """
    missing = [key for key in required_keys if key not in content]
    if missing:
        have = ', '.join(f'"{key}"' for key in content) or 'nothing'
        raise DataFileError(
            f'{what} {path!r} lacks {", ".join(repr(k) for k in missing)} '
            f'(it has {have}): it is not a complete COCO annotation file. '
            f'Fix: {ANNOTATION_FIX}.')


@contextmanager
def naming_coco_file(path: str, api_name: str = 'COCO',
                     what: str = 'Annotation file') -> Iterator[None]:
    """:func:`naming_json_file` for a COCO API built inside the block; an
    entry without a key the API indexes (e.g. an instances file given as a
    panoptic one) gets a named error too."""
    with naming_json_file(path, what):
        try:
            yield
        except KeyError as error:
            raise DataFileError(
                f'{what} {path!r} has an entry without the key '
                f'{error.args[0]!r} that {api_name} needs: is it the right '
                'kind of file (COCO panoptic files have "segments_info", '
                'instances files "category_id")? Fix: use the file this '
                f'data set expects, or {ANNOTATION_FIX}.') from None


def load_coco_api(api: Callable[[str], Any], local_path: str,
                  shown_path: str | None = None,
                  required_keys: Sequence[str] = COCO_KEYS) -> Any:
    """``api(local_path)`` (pycocotools' ``COCO``, mmdet's
    ``COCOPanoptic``) with named errors for a bad file.

    Args:
        api (Callable): The COCO API class to build.
        local_path (str): The local copy of the file, as upstream passes it.
        shown_path (str, optional): The path the user gave (``ann_file``),
            for messages; ``local_path`` by default.
        required_keys (Sequence[str]): See :func:`check_coco_content`.

    Raises:
        DataFileError: If the file is empty, not valid JSON, not a JSON
            object, lacks a required key or has an entry without a key the
            API needs.
    """
    path = shown_path or local_path
    with naming_coco_file(path, getattr(api, '__name__', 'COCO')):
        coco = api(local_path)
    check_coco_content(coco.dataset, path, required_keys)
    return coco


def image_file_problem(path: str,
                       backend_args: dict | None = None) -> str | None:
    """Why an image or label PNG cannot be loaded, or None if it can.

    Decodes the file with cv2 (as mmcv's loaders do) and with PIL (which
    also notices a truncated JPEG that cv2 pads with grey).

    Args:
        path (str): The file.
        backend_args (dict, optional): mmengine file backend arguments.
    """
    if not fileio.exists(path, backend_args=backend_args):
        return 'does not exist'
    content = fileio.get(path, backend_args=backend_args)
    if not content:
        return 'is empty (0 bytes)'
    try:
        decoded = mmcv.imfrombytes(content, flag='unchanged')
    except Exception as error:  # noqa: BLE001 - any decoder failure
        return f'cannot be decoded as an image ({error})'
    if decoded is None:
        return ('cannot be decoded as an image (truncated, corrupt or not '
                'an image)')
    try:
        with Image.open(io.BytesIO(content)) as image:
            image.load()
    except Exception as error:  # noqa: BLE001 - any decoder failure
        return f'is truncated or corrupt ({error})'
    return None


def sample_file_problems(data_info: Mapping,
                         backend_args: dict | None = None
                         ) -> tuple[list[str], list[str]]:
    """The files of one sample, and what is wrong with the broken ones.

    Args:
        data_info (Mapping): A parsed data info (``img_path``,
            ``seg_map_path``).
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        tuple[list[str], list[str]]: ``'image 'x.jpg''``-style descriptions
        of every file of the sample, and one line per broken file.
    """
    files, problems = [], []
    for key, role in SAMPLE_FILE_KEYS:
        path = data_info.get(key)
        if not path:
            continue
        files.append(f'{role} {path!r}')
        problem = image_file_problem(path, backend_args)
        if problem is not None:
            problems.append(f'{role} file {path!r} {problem}')
    return files, problems
