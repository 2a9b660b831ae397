"""The zero-shot data tools: leakage checker, seen-only converter, toy CLI."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmpading.datasets.splits import ZeroShotSplit, get_split, save_split
from mmpading.datasets.toy_generator import generate_toy_dataset

from _helpers import load_tool_module

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'


def _load_tool(relative: str):
    return load_tool_module(str(TOOLS / relative))


def _run(relative: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT), env.get('PYTHONPATH', '')])
    return subprocess.run([sys.executable, str(TOOLS / relative), *args],
                          capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT, timeout=120)


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('toy_tools')
    generate_toy_dataset(str(root), seed=1, num_train=12, num_val=4,
                         image_size=48, train_unseen_fraction=0.5)
    return root


def _unseen_images(content: dict) -> set[int]:
    unseen = set(get_split('toy').unseen)
    unseen_ids = {c['id'] for c in content['categories']
                  if c['name'] in unseen}
    if 'segments_info' in content['annotations'][0]:
        return {a['image_id'] for a in content['annotations']
                if any(s['category_id'] in unseen_ids
                       for s in a['segments_info'])}
    return {a['image_id'] for a in content['annotations']
            if a['category_id'] in unseen_ids}


@pytest.mark.parametrize('kind', ['panoptic', 'instances'])
def test_prepare_writes_seen_only_files(toy_root, tmp_path, kind, capsys):
    source = toy_root / 'annotations' / f'{kind}_train.json'
    original = json.loads(source.read_text())
    dropped = _unseen_images(original)
    assert 0 < len(dropped) < len(original['images'])
    out = tmp_path / f'{kind}_seen.json'
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    assert tool.main([str(source), '--split', 'toy', '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    expected_images = len(original['images']) - len(dropped)
    assert f'{len(original["images"])} -> {expected_images}' in printed
    result = json.loads(out.read_text())
    assert {i['id'] for i in result['images']} == {
        i['id'] for i in original['images']} - dropped
    assert result['categories'] == original['categories']
    assert not _unseen_images(result)


def test_prepare_ignore_mode_keeps_images(toy_root, tmp_path):
    source = toy_root / 'annotations' / 'panoptic_train.json'
    out = tmp_path / 'ignore.json'
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    assert tool.main([str(source), '--split', str(toy_root / 'split.json'),
                      '--mode', 'ignore_unseen', '--out', str(out)]) == 0
    original = json.loads(source.read_text())
    result = json.loads(out.read_text())
    assert len(result['images']) == len(original['images'])
    assert not _unseen_images(result)


def test_prepare_label_map_folder(toy_root, tmp_path):
    import numpy as np
    from PIL import Image
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    unseen = get_split('toy').unseen_ids(metainfo['classes'])
    folder = toy_root / 'annotations' / 'semantic_train'
    expected = sorted(p.stem for p in folder.glob('*.png')
                      if not np.isin(np.asarray(Image.open(p)), unseen).any())
    out = tmp_path / 'seen.txt'
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    assert tool.main([str(folder), '--split', 'toy', '--seg-map-suffix',
                      '.png', '--metainfo', str(toy_root / 'metainfo.json'),
                      '--out', str(out)]) == 0
    assert out.read_text().split() == expected


def test_leakage_checker_passes_clean_and_catches_planted(toy_root,
                                                          tmp_path):
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    clean = tmp_path / 'clean.json'
    assert tool.main([str(toy_root / 'annotations' / 'instances_train.json'),
                      '--split', 'toy', '--out', str(clean)]) == 0
    content = json.loads(clean.read_text())
    result = _run('misc/check_leakage.py', str(clean), '--split', 'toy')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'OK' in result.stdout

    # Plant one unseen object in one image of the clean file.
    unseen_name = get_split('toy').unseen[0]
    unseen_id = next(c['id'] for c in content['categories']
                     if c['name'] == unseen_name)
    victim = content['images'][-1]['id']
    planted = dict(content['annotations'][0], id=10**6, image_id=victim,
                   category_id=unseen_id)
    content['annotations'].append(planted)
    leaky = tmp_path / 'leaky.json'
    leaky.write_text(json.dumps(content))
    result = _run('misc/check_leakage.py', str(leaky), '--split', 'toy')
    assert result.returncode == 1, result.stdout + result.stderr
    assert f'image {victim} ' in result.stdout
    assert unseen_name in result.stdout
    assert result.stdout.count('  image ') == 1


def test_leakage_checker_rejects_a_misspelt_split(toy_root):
    tool = _load_tool('misc/check_leakage.py')
    source = toy_root / 'annotations' / 'panoptic_train.json'
    assert tool.main([str(source), '--split', 'toyy']) == 2


def test_make_toy_dataset_cli(tmp_path, capsys):
    tool = _load_tool('dataset_converters/make_toy_dataset.py')
    out = tmp_path / 'toy'
    assert tool.main(['--out-dir', str(out), '--num-train', '2',
                      '--num-val', '1', '--size', '40x48', '--preview', '1',
                      '--quiet']) == 0
    assert len(list((out / 'preview').glob('*.png'))) == 2
    image = json.loads((out / 'annotations/panoptic_val.json').read_text())
    assert (image['images'][0]['height'], image['images'][0]['width']) == (
        40, 48)
    assert tool.main(['--out-dir', str(out), '--unseen', 'pink circle']) == 2
    assert 'pink circle' in capsys.readouterr().err


def test_make_toy_dataset_class_sets(tmp_path):
    tool = _load_tool('dataset_converters/make_toy_dataset.py')
    small = ['--num-train', '2', '--num-val', '1', '--size', '48', '--quiet']
    assert tool.main(['--out-dir', str(tmp_path / 'grid'), '--class-set',
                      'grid', *small]) == 0
    meta = json.loads((tmp_path / 'grid' / 'metainfo.json').read_text())
    split = json.loads((tmp_path / 'grid' / 'split.json').read_text())
    things, stuff = meta['thing_classes'], meta['stuff_classes']
    assert (len(things), len(stuff)) == (20, 9)
    # A grid: every colour with every shape (texture), no class twice.
    assert len({name.split()[0] for name in things}) * len(
        {name.split()[1] for name in things}) == len(set(things))
    assert len({name.split()[0] for name in stuff}) * len(
        {name.split()[1] for name in stuff}) == len(set(stuff))
    assert split['unseen'] == ['blue circle', 'yellow square',
                               'brown checker']
    # Each unseen class's colour and form are seen with several partners.
    seen = set(split['seen'])
    for name in split['unseen']:
        colour, form = name.split()
        assert sum(c.startswith(colour + ' ') for c in seen) >= 2, name
        assert sum(c.endswith(' ' + form) for c in seen) >= 2, name
    # The grid is the default (the toy configs' classes); the classic set
    # is kept; --things replaces a set's things.
    args = tool.parse_args([])
    assert (args.class_set, args.things, args.stuff) == (
        'grid', things, stuff)
    args = tool.parse_args(['--class-set', 'classic'])
    assert (len(args.things), len(args.stuff)) == (10, 5)
    assert args.unseen == split['unseen']
    args = tool.parse_args(['--class-set', 'classic', '--things',
                            'red circle,blue circle'])
    assert args.things == ['red circle', 'blue circle']
    assert len(args.stuff) == 5


# ------------------------------------------- converter: nothing is lost
@pytest.fixture
def source_copy(toy_root, tmp_path):
    """A copy of the toy panoptic train file in a folder of its own."""
    folder = tmp_path / 'annotations'
    folder.mkdir()
    source = folder / 'panoptic_train.json'
    shutil.copyfile(toy_root / 'annotations' / 'panoptic_train.json', source)
    return source


def _prepare(*args):
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    return tool.main([str(arg) for arg in args])


@pytest.mark.parametrize('spelling', ['same', 'dot', 'symlink'])
def test_prepare_refuses_to_overwrite_its_input(source_copy, spelling,
                                                capsys):
    original = source_copy.read_bytes()
    folder = source_copy.parent
    out = {'same': source_copy,
           'dot': folder / '.' / '..' / folder.name / source_copy.name,
           'symlink': folder / 'link.json'}[spelling]
    if spelling == 'symlink':
        out.symlink_to(source_copy)
    before = sorted(p.name for p in folder.iterdir())
    for extra in ([], ['--overwrite']):
        assert _prepare(source_copy, '--split', 'toy', '--out', out,
                        *extra) == 2
        error = capsys.readouterr().err
        assert 'is the input file' in error and 'refusing' in error
    assert source_copy.read_bytes() == original
    assert sorted(p.name for p in folder.iterdir()) == before


def test_prepare_needs_overwrite_for_an_existing_output(source_copy,
                                                        capsys):
    out = source_copy.parent / 'seen.json'
    out.write_text('keep me')
    assert _prepare(source_copy, '--split', 'toy', '--out', out) == 2
    error = capsys.readouterr().err
    assert str(out) in error and '--overwrite' in error
    assert out.read_text() == 'keep me'
    assert _prepare(source_copy, '--split', 'toy', '--out', out,
                    '--overwrite') == 0
    assert json.loads(out.read_text())['images']
    umask = os.umask(0)
    os.umask(umask)
    # The usual permissions, not the temporary file's private ones.
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('content, expected', [
    (b'', 'is empty'),
    (b'{"images": [{"id": 1', 'is not valid JSON'),
    (b'{"images": [], "categories": []}', 'Not a COCO annotation file'),
])
def test_prepare_bad_input_writes_nothing(source_copy, content, expected,
                                          capsys):
    source_copy.write_bytes(content)
    folder = source_copy.parent
    assert _prepare(source_copy, '--split', 'toy') == 2
    error = capsys.readouterr().err
    assert str(source_copy) in error and expected in error
    assert [p.name for p in folder.iterdir()] == [source_copy.name]
    assert source_copy.read_bytes() == content


def test_prepare_no_image_left_writes_nothing(source_copy, toy_root,
                                              tmp_path, capsys):
    metainfo = json.loads((toy_root / 'metainfo.json').read_text())
    split = tmp_path / 'all_stuff_unseen.json'
    save_split(ZeroShotSplit('all_stuff_unseen',
                             seen=metainfo['thing_classes'],
                             unseen=metainfo['stuff_classes']), str(split))
    out = tmp_path / 'seen.json'
    assert _prepare(source_copy, '--split', split, '--out', out) == 1
    assert 'no image is left, nothing written' in capsys.readouterr().err
    assert not out.exists()


def test_prepare_failure_while_writing_leaves_nothing(source_copy,
                                                      monkeypatch, capsys):
    tool = _load_tool('dataset_converters/prepare_zero_shot_coco.py')
    out = source_copy.parent / 'seen.json'

    def disk_full(content, file):
        file.write('{"images": [')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(tool.json, 'dump', disk_full)
    assert tool.main([str(source_copy), '--split', 'toy', '--out',
                      str(out)]) == 2
    assert 'No space left' in capsys.readouterr().err
    assert [p.name for p in source_copy.parent.iterdir()] == [
        source_copy.name]


def test_prepare_label_folder_with_a_truncated_map(toy_root, tmp_path,
                                                   capsys):
    folder = tmp_path / 'semantic_train'
    shutil.copytree(toy_root / 'annotations' / 'semantic_train', folder)
    victim = sorted(folder.glob('*.png'))[2]
    victim.write_bytes(victim.read_bytes()[:40])
    out = tmp_path / 'seen.txt'
    assert _prepare(folder, '--split', 'toy', '--seg-map-suffix', '.png',
                    '--metainfo', toy_root / 'metainfo.json', '--out',
                    out) == 2
    error = capsys.readouterr().err
    assert str(victim) in error and 're-extract' in error
    assert not out.exists()


def test_prepare_label_folder_with_a_bad_metainfo(toy_root, tmp_path,
                                                  capsys):
    metainfo = tmp_path / 'metainfo.json'
    metainfo.write_text('{"thing_classes": []}')
    out = tmp_path / 'seen.txt'
    assert _prepare(toy_root / 'annotations' / 'semantic_train', '--split',
                    'toy', '--seg-map-suffix', '.png', '--metainfo',
                    metainfo, '--out', out) == 2
    error = capsys.readouterr().err
    assert str(metainfo) in error and '"classes"' in error
    assert not out.exists()
