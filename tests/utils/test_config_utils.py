"""rebase_data_root and the data-root options of the tools."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from mmengine.config import Config

from mmpading.utils.config_utils import (
    DataRootError,
    check_data_root_folder,
    check_dataset_roots,
    load_rebased_config,
    load_tool_config,
    rebase_data_root,
    take_data_root_option,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIGS = sorted(
    str(path.relative_to(REPO_ROOT))
    for folder in ('configs/toy', 'configs/pading')
    for path in (REPO_ROOT / folder).rglob('*.py'))
NEW_ROOT = '/elsewhere/data_set'


def _strings(value, where=''):
    """(position, string) of every string in a nested config."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f'{where}.{key}')
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f'{where}[{index}]')


def _under(path: str, root: str) -> bool:
    root = root.rstrip('/')
    return path == root or path.startswith(root + '/')


@pytest.mark.parametrize('config', SHIPPED_CONFIGS)
def test_every_path_under_the_data_root_moves(config):
    cfg = Config.fromfile(str(REPO_ROOT / config))
    old_root = cfg.data_root
    before = dict(_strings(cfg.to_dict()))
    after = dict(_strings(rebase_data_root(cfg, NEW_ROOT).to_dict()))
    assert before.keys() == after.keys()
    moved = [where for where, value in before.items()
             if _under(value, old_root)]
    # The data sets' roots and paths derived from them (split, embeddings,
    # metric annotation files) are among them.
    assert '.data_root' in moved
    assert any(not where.endswith('data_root') for where in moved), moved
    stem = old_root.rstrip('/')
    for where, value in before.items():
        expected = NEW_ROOT + value[len(stem):] if where in moved else value
        assert after[where] == expected, where
    assert not any(_under(value, old_root) for value in after.values())
    # The original config is left as it was.
    assert cfg.data_root == old_root


def test_toy_config_paths_and_trailing_slash():
    cfg = load_rebased_config(
        str(REPO_ROOT / 'configs/toy/pading_toy_stage1.py'), '/x/toy/')
    assert cfg.data_root == '/x/toy/'
    assert cfg.zero_shot_split == '/x/toy/split.json'
    assert cfg.val_evaluator[0].ann_file == \
        '/x/toy/annotations/panoptic_val.json'
    assert cfg.val_evaluator[0].seg_prefix == \
        '/x/toy/annotations/panoptic_val/'
    assert cfg.train_dataloader.dataset.data_root == '/x/toy/'
    # Paths relative to the data set's root stay relative.
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/panoptic_train.json'


def test_only_whole_path_components_match():
    cfg = Config(dict(data_root='data/toy/', a='data/toy2/x.json',
                      b='data/toy', c=['data/toy/y'], d='other/data/toy/'))
    rebased = rebase_data_root(cfg, 'new')
    assert rebased.data_root == 'new/'
    assert rebased.a == 'data/toy2/x.json'
    assert rebased.b == 'new'
    assert rebased.c == ['new/y']
    assert rebased.d == 'other/data/toy/'


def test_config_without_data_root_is_refused(tmp_path):
    path = tmp_path / 'no_root.py'
    path.write_text("model = dict(type='X')\n")
    with pytest.raises(DataRootError, match='no_root.py has no `data_root`'):
        rebase_data_root(Config.fromfile(str(path)), '/x')
    with pytest.raises(DataRootError, match='--cfg-options'):
        load_rebased_config(str(path), '/x')


def test_cfg_options_data_root_is_the_same_request(capsys):
    options = {'data_root': '/x/toy', 'train_cfg.max_iters': 3}
    assert take_data_root_option(None, options) == '/x/toy'
    assert options == {'train_cfg.max_iters': 3}
    assert '--cfg-options data_root=/x/toy' in capsys.readouterr().out
    assert take_data_root_option('/x/toy/', {'data_root': '/x/toy'}) == \
        '/x/toy'
    assert take_data_root_option('/a', None) == '/a'
    with pytest.raises(DataRootError,
                       match="--data-root '/a' and --cfg-options "
                       "data_root='/b'"):
        take_data_root_option('/a', {'data_root': '/b'})


def test_missing_folder_names_it_and_the_current_folder(tmp_path,
                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataRootError) as error:
        check_data_root_folder('nowhere/toy')
    message = str(error.value)
    assert "--data-root 'nowhere/toy' is not a folder" in message
    assert f'relative to the current folder {tmp_path}' in message
    with pytest.raises(DataRootError) as error:
        check_data_root_folder(str(tmp_path / 'absent'))
    assert 'relative to' not in str(error.value)
    check_data_root_folder(str(tmp_path))


def test_dataset_roots_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(REPO_ROOT / 'configs/toy/pading_toy_stage1.py'))
    with pytest.raises(DataRootError) as error:
        check_dataset_roots(cfg, ['test_dataloader'])
    message = str(error.value)
    assert "test_dataloader: data_root 'data/toy/'" in message
    assert f'relative to the current folder {tmp_path}' in message
    assert '--data-root DIR' in message
    (tmp_path / 'data' / 'toy').mkdir(parents=True)
    check_dataset_roots(cfg, ['train_dataloader', 'test_dataloader',
                              'no_such_dataloader'])


def test_tool_config_rebases_then_merges(tmp_path, capsys):
    config = str(REPO_ROOT / 'configs/toy/pading_toy_stage1.py')
    explicit = str(tmp_path / 'mine.json')
    cfg = load_tool_config(
        config, None, {'data_root': str(tmp_path),
                       'val_evaluator.0.ann_file': explicit})
    assert cfg.zero_shot_split == f'{tmp_path}/split.json'
    assert cfg.val_evaluator[0].ann_file == explicit
    assert cfg.val_evaluator[1].ann_file == \
        f'{tmp_path}/annotations/instances_val.json'
    out = capsys.readouterr().out
    assert f'data root: data/toy/ -> {tmp_path}/' in out
    with pytest.raises(DataRootError, match='absent'):
        load_tool_config(config, str(tmp_path / 'absent'))
    # Without a data root nothing is re-rooted.
    assert load_tool_config(config).data_root == 'data/toy/'
    assert os.path.isdir(tmp_path)
