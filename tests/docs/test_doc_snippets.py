"""Every code block of README.md, docs/ and configs/pading/README.md works.

- ``python``: a config fragment (only assignments, or a bare
  ``dict(type=...)``) is loaded as an mmengine ``Config`` and every
  ``type=`` component in it is built with the registry of its scope (mmdet
  and mmseg both, unless the fragment or its marker names one); any other
  block is executed.
- ``bash`` / ``sh`` / ``shell``: every command of ours is parsed by that
  tool's own argument parser; the configs and repository paths it names must
  exist, its ``--cfg-options`` keys must be keys of the config, and a
  checkpoint ``work_dirs/<config>/iter_N.pth`` must be one the config
  writes. Cheap commands run: ``--help``, ``python -c``, the toy data set
  generator, and the converters on a toy set.
- ``json``: parsed.
- ``text`` (or no tag): output, trees and messages; a ``$ command`` line in
  one is run and must print what the block shows.

Blocks run in an empty working directory; files a user has and this
machine has not (COCO, a CLIP checkpoint) are replaced by the stand-ins a
marker comment above the block asks for (``STAND_INS``). A block of an
unknown kind, or a command the test does not know, fails: nothing is
skipped silently.
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
import torch
from doc_snippets import (
    REPO_ROOT,
    Snippet,
    all_snippets,
    doc_files,
    expand,
    parse_marker,
    read_snippets,
    split_commands,
    text_block_commands,
)
from mmdet import registry as mmdet_registry
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmseg import registry as mmseg_registry
from torch import nn

from mmpading.registry import ALL_REGISTRIES

from _helpers import load_tool_module

SNIPPETS = all_snippets()
UPSTREAM = {'mmdet': mmdet_registry, 'mmseg': mmseg_registry}
# Registries a top-level ``key = dict(type=...)`` of a fragment may use.
COMPONENT_REGISTRIES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS',
                        'VISUALIZERS', 'HOOKS', 'TASK_UTILS',
                        'OPTIM_WRAPPER_CONSTRUCTORS')
# Placeholders the docs write for a user's own value, and what the test
# parses in their place.
PLACEHOLDERS = {'CONFIG': 'configs/toy/pading_toy_stage2.py'}
# Folders of this repository: a path under one must exist.
REPO_FOLDERS = ('configs/', 'tools/', 'docs/', 'mmpading/', 'tests/',
                'requirements/')
# Tools that run in a second on a toy set; they run for real when the
# files they read are in the working directory.
CHEAP_TOOLS = ('tools/dataset_converters/make_toy_dataset.py',
               'tools/dataset_converters/prepare_zero_shot_coco.py',
               'tools/misc/check_leakage.py')
# Launch scripts: their positional arguments (as their usage line names
# them) and the tool command they run.
LAUNCHERS = {
    'tools/dist_train.sh': (('CONFIG', 'NUM_PROCS_PER_NODE'),
                            'tools/train.py',
                            lambda p: [p['CONFIG'], '--launcher', 'pytorch']),
    'tools/dist_test.sh': (('CONFIG', 'CHECKPOINT', 'NUM_PROCS_PER_NODE'),
                           'tools/test.py', lambda p: [
                               p['CONFIG'], p['CHECKPOINT'], '--launcher',
                               'pytorch'
                           ]),
    'tools/slurm_train.sh': (('PARTITION', 'JOB_NAME', 'CONFIG', 'WORK_DIR'),
                             'tools/train.py', lambda p: [
                                 p['CONFIG'], f'--work-dir={p["WORK_DIR"]}',
                                 '--launcher=slurm'
                             ]),
    'tools/slurm_test.sh': (('PARTITION', 'JOB_NAME', 'CONFIG',
                             'CHECKPOINT'), 'tools/test.py', lambda p: [
                                 p['CONFIG'], p['CHECKPOINT'],
                                 '--launcher=slurm'
                             ]),
}
# openmim's own options of `mim train|test` (True: takes a value); the
# other words go to tools/train.py / tools/test.py (mim/commands/*.py).
MIM_OPTIONS = {
    '-l': True, '--launcher': True, '--port': True, '-G': True,
    '--gpus': True, '-g': True, '--gpus-per-node': True, '-c': True,
    '--cpus-per-task': True, '-p': True, '--partition': True,
    '--srun-args': True, '-y': False, '--yes': False,
}


def load_module_from(path: Path, name: str):
    """Import a helper file of another test folder by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------- stand-ins
@pytest.fixture(scope='module')
def default_toy_root(tmp_path_factory) -> Path:
    """The toy data set ``make_toy_dataset.py`` writes by default."""
    from mmpading.datasets.toy_generator import generate_toy_dataset
    root = tmp_path_factory.mktemp('default_toy') / 'toy'
    generate_toy_dataset(str(root), seed=0)
    return root


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory) -> Path:
    """The tiny COCO sample of tests/configs, with the raw file names.

    The docs also name the raw COCO files that prepare_zero_shot_coco.py
    reads (``panoptic_train2017.json``, ``instances_val2014.json``); the
    sample's seen-only / GZSI files stand in for them.
    """
    sample = load_module_from(
        REPO_ROOT / 'tests' / 'configs' / 'tiny_coco_sample.py',
        'doc_snippets_tiny_coco_sample')
    root = tmp_path_factory.mktemp('coco_sample') / 'coco'
    sample.write_coco_sample(str(root))
    annotations = root / 'annotations'
    for raw, stand_in in (
        ('panoptic_train2017', 'panoptic_train2017_seen_zsp_coco'),
        ('instances_train2014', 'instances_train2014_seen_zsi_48_17'),
        ('instances_val2014', 'instances_val2014_gzsi_48_17'),
    ):
        shutil.copy(annotations / f'{stand_in}.json',
                    annotations / f'{raw}.json')
    return root


@pytest.fixture(scope='module')
def clip_checkpoint(tmp_path_factory) -> Path:
    """The tiny random CLIP of tests/datasets/embedding_builders, as an
    OpenAI TorchScript archive."""
    tiny = load_module_from(
        REPO_ROOT / 'tests' / 'datasets' / 'embedding_builders' /
        'conftest.py', 'doc_snippets_tiny_clip')
    torch.manual_seed(0)
    model = tiny.TinyOpenAICLIPText(**tiny.TINY).eval()
    example = torch.zeros(2, tiny.TINY['context_length'], dtype=torch.long)
    example[:, 0], example[:, 1] = 49406, 49407
    path = tmp_path_factory.mktemp('tiny_clip') / 'ViT-B-16.pt'
    torch.jit.save(torch.jit.trace(model, example), str(path))
    return path


@contextlib.contextmanager
def single_process_group(folder: Path):
    """A one-process gloo group, as a launcher would start."""
    import torch.distributed as dist
    store = dist.FileStore(str(folder / 'process_group_store'), 1)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def provide_toy(request, workspace: Path) -> None:
    # A copy: converters write next to their input.
    shutil.copytree(request.getfixturevalue('tiny_toy_root'),
                    workspace / 'data' / 'toy')


def provide_default_toy(request, workspace: Path) -> None:
    (workspace / 'data').mkdir(exist_ok=True)
    (workspace / 'data' / 'toy').symlink_to(
        request.getfixturevalue('default_toy_root'))


def provide_coco(request, workspace: Path) -> None:
    (workspace / 'data').mkdir(exist_ok=True)
    (workspace / 'data' / 'coco').symlink_to(
        request.getfixturevalue('coco_root'))


def provide_clip_checkpoint(request, workspace: Path) -> None:
    (workspace / 'checkpoints').mkdir()
    (workspace / 'checkpoints' / 'ViT-B-16.pt').symlink_to(
        request.getfixturevalue('clip_checkpoint'))


def provide_trained_checkpoints(request, workspace: Path) -> None:
    """Every ``work_dirs/...pth`` the block names: a 2-iteration stage-1
    checkpoint of the tiny toy set; a ``{seed}`` pattern (``--seeds``)
    stands for seeds 0-9."""
    snippet: Snippet = request.node.callspec.params['snippet']
    checkpoint = request.getfixturevalue('stage1_checkpoint')
    named = set(re.findall(r'work_dirs/\S+?\.pth', snippet.text))
    named = {name.format(seed=seed) if '{seed}' in name else name
             for name in named for seed in range(10)}
    for name in sorted(named):
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        if not (workspace / name).exists():
            (workspace / name).symlink_to(checkpoint)


def provide_feature_cache(request, workspace: Path) -> None:
    """Every ``work_dirs/.../feature_cache`` the block names: a folder
    with a manifest (the tools check for one before they start)."""
    snippet: Snippet = request.node.callspec.params['snippet']
    for name in sorted(set(re.findall(r'work_dirs/\S*?feature_cache\b',
                                      snippet.text))):
        (workspace / name).mkdir(parents=True, exist_ok=True)
        (workspace / name / 'manifest.json').write_text('{}')


def provide_process_group(request, workspace: Path) -> None:
    group = single_process_group(workspace)
    group.__enter__()
    request.addfinalizer(lambda: group.__exit__(None, None, None))


# needs=<name> -> what the block finds in its working directory.
STAND_INS = {
    'toy': provide_toy,  # data/toy: a tiny generated toy set
    'default_toy': provide_default_toy,  # data/toy: make_toy_dataset.py's
    'coco': provide_coco,  # data/coco: the tiny COCO sample
    'clip_checkpoint': provide_clip_checkpoint,  # checkpoints/ViT-B-16.pt
    # work_dirs/**/*.pth named by the block: a tiny stage-1 checkpoint
    'trained_checkpoints': provide_trained_checkpoints,
    # work_dirs/**/feature_cache named by the block: a folder + manifest
    'feature_cache': provide_feature_cache,
    'process_group': provide_process_group,  # torch.distributed, 1 process
}


# What a clone holds at its root, linked into the working directory: the
# docs' commands run from there. data/ and work_dirs/ start empty.
CLONE_ENTRIES = ('configs', 'docs', 'mmpading', 'requirements', 'tools',
                 'Makefile', 'README.md', 'setup.py', 'pyproject.toml')


@pytest.fixture
def workspace(request, tmp_path, monkeypatch) -> Path:
    """A clone's root without data, with the stand-ins of the block."""
    snippet: Snippet = request.node.callspec.params['snippet']
    folder = tmp_path / 'workspace'
    folder.mkdir()
    for name in CLONE_ENTRIES:
        (folder / name).symlink_to(REPO_ROOT / name)
    monkeypatch.chdir(folder)
    for need in snippet.needs:
        STAND_INS[need](request, folder)
    return folder


def runs_for_long(snippet: Snippet) -> bool:
    """Starts a Python process or writes the default toy data set."""
    if snippet.kind != 'shell':
        return False
    return any(
        command.argv[1:2] == ['-c'] or (
            any(word.endswith('make_toy_dataset.py') for word in command.argv)
            and '--help' not in command.argv)
        for command in split_commands(snippet.text))


def of_kind(kind: str) -> list:
    return [
        pytest.param(snippet, id=snippet.id,
                     marks=[pytest.mark.slow] if runs_for_long(snippet) else
                     []) for snippet in SNIPPETS if snippet.kind == kind
    ]


# ------------------------------------------------------------ inventory
def test_every_page_and_block_is_known():
    pages = {path.relative_to(REPO_ROOT).as_posix() for path in doc_files()}
    assert {'README.md', 'docs/registry.md',
            'configs/pading/README.md'} <= pages
    unknown = [
        f'{s.id}: ```{s.lang} (use one of python, bash, json, text)'
        for s in SNIPPETS if s.kind is None
    ]
    unknown += [
        f'{s.id}: needs={need} is not a stand-in ({", ".join(STAND_INS)})'
        for s in SNIPPETS for need in s.needs if need not in STAND_INS
    ]
    unknown += [
        f'{s.id}: scope={s.options["scope"]} is not one of {list(UPSTREAM)}'
        for s in SNIPPETS
        if 'scope' in s.options and s.options['scope'] not in UPSTREAM
    ]
    assert not unknown, 'blocks the test cannot run:\n' + '\n'.join(unknown)
    counts = Counter((s.doc, s.kind) for s in SNIPPETS)
    # Every kind the docs use is collected by one of the tests below.
    assert {kind for _, kind in counts} <= {'python', 'shell', 'json', 'text'}
    assert sum(counts.values()) == len(SNIPPETS) > 0


def test_reader_finds_blocks_markers_and_indented_fences(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('Intro\n\n<!-- snippet: needs=toy,coco scope=mmseg -->\n\n'
                    '```python\nx = 1\n```\n\n- item\n\n  ```bash\n'
                    '  make test\n  ```\n\n```\nplain\n```\n')
    first, second, third = read_snippets(page)
    assert (first.kind, first.needs, first.options['scope'],
            first.text) == ('python', ('toy', 'coco'), 'mmseg', 'x = 1\n')
    assert (second.kind, second.line, second.text) == ('shell', 11,
                                                       'make test\n')
    assert (third.kind, third.needs) == ('text', ())


def test_reader_refuses_an_unclosed_block_and_a_bad_marker(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('text\n```python\nx = 1\n')
    with pytest.raises(ValueError, match=r'page\.md:2: code block never'):
        read_snippets(page)
    with pytest.raises(ValueError, match=r"here:3: bad snippet marker item "
                       r"'need=toy'; write key=value with key one of"):
        parse_marker('<!-- snippet: need=toy -->', 'here:3')


def test_commands_are_split_and_unsupported_syntax_refused():
    [capture, launch, make_a, make_b] = split_commands(
        "ROOT=$(python -c 'print(1)')\n# a comment\n"
        'NNODES=2 bash tools/dist_train.sh \\\n    configs/x.py 8  # 8 GPUs\n'
        'make install && make test\n')
    assert capture.capture == 'ROOT' and capture.argv == [
        'python', '-c', 'print(1)'
    ]
    assert launch.env == {'NNODES': '2'}
    assert launch.argv == ['bash', 'tools/dist_train.sh', 'configs/x.py', '8']
    assert (make_a.argv, make_b.argv) == (['make', 'install'],
                                          ['make', 'test'])
    assert expand('$ROOT/a/${ROOT}', {'ROOT': 'r'}) == 'r/a/r'
    with pytest.raises(KeyError, match=r'\$HOME is not set by the block'):
        expand('$HOME/x', {})
    with pytest.raises(ValueError, match="unsupported shell syntax '|'"):
        split_commands('python tools/train.py x.py | tee log')


# --------------------------------------------------------------- python
def is_config_fragment(tree: ast.Module) -> bool:
    """Only ``name = ...`` statements, or one bare ``dict(...)``."""
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        call = tree.body[0].value
        return isinstance(call, ast.Call) and getattr(call.func, 'id',
                                                      None) == 'dict'
    return all(
        isinstance(node, ast.Assign) and all(
            isinstance(target, ast.Name) for target in node.targets)
        for node in tree.body)


def holds_components(value) -> bool:
    if isinstance(value, dict):
        return 'type' in value or any(
            holds_components(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_components(v) for v in value)
    return False


class TwoPartModel(BaseModel):
    """A model with two trainable parts, for the DDP wrapper of stage 2."""

    def __init__(self) -> None:
        super().__init__()
        self.segmenter = nn.Linear(2, 2)
        self.zero_shot = nn.Linear(2, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.zero_shot(self.segmenter(inputs))


def build_fragment(cfg: Config, scope: str, snippet: Snippet) -> list:
    """Build every component of a config fragment in ``scope``.

    Returns:
        list[tuple[str, str, object]]: (key, type name, built object).
    """
    registries = UPSTREAM[scope]
    built = []
    with DefaultScope.overwrite_default_scope(scope):
        for key, value in cfg.items():
            if key in ('custom_imports', 'default_scope'):
                continue
            if key.endswith('_dataloader'):
                dataset = registries.DATASETS.build(value['dataset'])
                assert len(dataset) > 0, f'{key}: the data set is empty'
                sample = dataset[0]  # the pipeline runs
                assert 'inputs' in sample and 'data_samples' in sample
                built.append((key, value['dataset']['type'], dataset))
            elif key.endswith('_evaluator'):
                for item in value if isinstance(value, list) else [value]:
                    built.append(
                        (key, item['type'], registries.METRICS.build(item)))
            elif key.endswith('pipeline'):
                for item in value:
                    built.append((key, item['type'],
                                  registries.TRANSFORMS.build(item)))
            elif key == 'model_wrapper_cfg':
                assert 'process_group' in snippet.needs, (
                    f'{snippet.id}: a model wrapper needs '
                    '<!-- snippet: needs=process_group -->')
                wrapper = registries.MODEL_WRAPPERS.build(
                    value, default_args=dict(module=TwoPartModel()))
                built.append((key, value['type'], wrapper))
            elif isinstance(value, dict) and 'type' in value:
                homes = [
                    name for name in COMPONENT_REGISTRIES
                    if getattr(registries, name).get(value['type'])
                ]
                assert len(homes) == 1, (
                    f'{key}: {value["type"]!r} is in {homes or "none"} of '
                    f'the {scope} registries {COMPONENT_REGISTRIES}')
                registry = getattr(registries, homes[0])
                built.append((key, value['type'], registry.build(value)))
            else:
                assert not holds_components(value), (
                    f'{snippet.id}: the test does not know how to build the '
                    f'components under {key!r}')
    return built


@contextlib.contextmanager
def registrations_undone():
    """Remove what a block registers (a doc example of registering)."""
    registries = [
        registry for multi in ALL_REGISTRIES
        for registry in multi.registries.values()
    ]
    before = [set(registry.module_dict) for registry in registries]
    names = [list(multi.names) for multi in ALL_REGISTRIES]
    try:
        yield
    finally:
        for registry, keys in zip(registries, before):
            for key in set(registry.module_dict) - keys:
                registry._module_dict.pop(key)
        for multi, kept in zip(ALL_REGISTRIES, names):
            multi.names[:] = kept


@pytest.mark.parametrize('snippet', of_kind('python'))
def test_python_block(snippet: Snippet, workspace: Path):
    tree = ast.parse(snippet.text, filename=snippet.id)
    if not is_config_fragment(tree):
        code = compile(tree, snippet.id, 'exec')
        with registrations_undone():
            exec(code, {'__name__': 'doc_snippet'})  # noqa: S102
        return
    text = snippet.text
    if isinstance(tree.body[0], ast.Expr):  # a bare dict(type=...)
        text = f'component = {text}'
    path = workspace / 'doc_snippet_config.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    if 'default_scope' in cfg:
        scopes = [cfg.default_scope]
    elif 'scope' in snippet.options:
        scopes = [snippet.options['scope']]
    else:
        scopes = list(UPSTREAM)
    for scope in scopes:
        built = build_fragment(cfg, scope, snippet)
        assert built, f'{snippet.id}: a config fragment without components'
        for key, type_name, obj in built:
            assert type(obj).__name__ == type_name.split('.')[-1], (
                f'{key} built a {type(obj).__name__}, not {type_name}')


# ---------------------------------------------------------------- shell
_configs: dict[str, Config] = {}


def load_config(path: str) -> Config:
    if path not in _configs:
        _configs[path] = Config.fromfile(str(REPO_ROOT / path))
    return _configs[path]


def config_named(name: str) -> str | None:
    """``configs/**/<name>.py`` relative to the repository, if unique."""
    found = sorted(REPO_ROOT.glob(f'configs/**/{name}.py'))
    return found[0].relative_to(REPO_ROOT).as_posix() \
        if len(found) == 1 else None


def check_cfg_option(config: str, key: str) -> None:
    node = load_config(config).to_dict()
    for part in key.split('.'):
        if isinstance(node, list):
            assert part.isdigit() and int(part) < len(node), (
                f'--cfg-options {key}: {config} has a list there, index it')
            node = node[int(part)]
        else:
            assert isinstance(node, dict) and part in node, (
                f'--cfg-options {key}: {part!r} is not a key of {config}')
            node = node[part]


def check_checkpoint_name(path: str) -> None:
    """``work_dirs/<config>/iter_N.pth`` must be a checkpoint it writes."""
    match = re.fullmatch(r'work_dirs/(?P<name>[^/]+)/iter_(?P<iter>\d+)\.pth',
                         path)
    config = config_named(match['name']) if match else None
    if config is None:
        return
    cfg = load_config(config)
    max_iters = cfg.train_cfg.max_iters
    interval = cfg.default_hooks.checkpoint.interval
    iteration = int(match['iter'])
    assert iteration == max_iters or (iteration < max_iters
                                      and iteration % interval == 0), (
        f'{path}: {config} trains {max_iters} iterations and saves every '
        f'{interval}; it never writes iteration {iteration}')


def check_paths(words: list[str]) -> None:
    """Repository paths exist; checkpoint names match their configs."""
    for word in words:
        for value in [word] + word.split('=', 1)[1:]:
            if value.startswith(REPO_FOLDERS):
                assert (REPO_ROOT / value).exists(), f'{value} does not exist'
            check_checkpoint_name(value)


def parse_tool_args(script: Path, args: list[str]):
    """The tool's own parser on ``args``; None after ``--help``."""
    module = load_tool_module(str(script))
    parse = getattr(module, 'parse_args', None)
    assert parse is not None, f'{script} has no parse_args to check with'
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), \
                contextlib.redirect_stdout(io.StringIO()):
            if inspect.signature(parse).parameters:
                return parse(args)
            with mock.patch.object(sys, 'argv', [str(script), *args]):
                return parse()
    except SystemExit as exit_:
        if exit_.code == 0 and ('-h' in args or '--help' in args):
            return None
        raise AssertionError(f'{script.name} {" ".join(args)} refused: '
                             f'{stderr.getvalue() or exit_.code}') from None


def inputs_present(args: list[str]) -> bool:
    """Every path-like positional of a toy command is in the workspace."""
    paths = [a for a in args if not a.startswith('-') and '/' in a]
    return bool(paths) and all(Path(p).exists() for p in paths)


def run_tool(script: Path, args: list[str]) -> str:
    """Run a cheap tool in-process; its printed output."""
    module = load_tool_module(str(script))
    output = io.StringIO()
    with contextlib.redirect_stdout(output), \
            contextlib.redirect_stderr(output):
        try:
            code = module.main(args)
        except SystemExit as exit_:
            code = exit_.code
    return f'{output.getvalue()}\n[exit {code or 0}]'


def check_python_tool(script: str, args: list[str]) -> str:
    args = [PLACEHOLDERS.get(arg, arg) for arg in args]
    path = Path(script) if Path(script).is_absolute() else REPO_ROOT / script
    assert path.is_file(), f'{script} does not exist'
    check_paths([script, *args])
    namespace = parse_tool_args(path, args)
    if namespace is None:  # --help: that was the command
        return ''
    config = getattr(namespace, 'config', None)
    if isinstance(config, str) and config.endswith('.py'):
        assert (REPO_ROOT / config).is_file(), f'{config} does not exist'
        for key in getattr(namespace, 'cfg_options', None) or {}:
            check_cfg_option(config, key)
    relative = path.relative_to(REPO_ROOT).as_posix() \
        if path.is_relative_to(REPO_ROOT) else None
    if relative == CHEAP_TOOLS[0] or (relative in CHEAP_TOOLS
                                      and inputs_present(args)):
        output = run_tool(path, args)
        # check_leakage.py exits 1 on a leak, which it reports.
        leak_reported = relative == CHEAP_TOOLS[2] and output.startswith(
            'LEAK: ') and output.endswith('[exit 1]')
        assert output.endswith('[exit 0]') or leak_reported, (
            f'{script} {" ".join(args)} failed:\n{output[-3000:]}')
        return output
    return ''


def check_launcher(script: str, args: list[str], env: dict) -> str:
    assert script in LAUNCHERS, f'unknown launch script {script}'
    names, tool, command = LAUNCHERS[script]
    text = (REPO_ROOT / script).read_text()
    usage = re.search(r'usage: \$0 ([A-Z_ ]+?) \[', text)
    assert usage and tuple(usage[1].split()) == names, (
        f'{script} usage changed: update LAUNCHERS in this test')
    for name in env:
        assert re.search(rf'\${{?{name}\b', text), (
            f'{script} does not read ${name}')
    assert len(args) >= len(names), f'{script} needs {" ".join(names)}'
    positional = dict(zip(names, args))
    for name in ('NUM_PROCS_PER_NODE', ):
        if name in positional:
            assert positional[name].isdigit(), f'{name}: a number'
    return check_python_tool(tool,
                             command(positional) + args[len(names):])


def check_mim(args: list[str]) -> str:
    assert args[:2] in (['train', 'mmpading'], ['test', 'mmpading']), (
        f'mim {" ".join(args[:2])}: the docs use mim train|test mmpading')
    command, config_name, rest = args[0], args[2], args[3:]
    found = sorted(REPO_ROOT.glob(f'configs/**/{config_name}'))
    assert len(found) == 1, (
        f'mim looks {config_name} up among the configs: found {found}')
    config = found[0].relative_to(REPO_ROOT).as_posix()
    tool_args, checkpoint, index = [], None, 0
    while index < len(rest):
        word = rest[index]
        if word == '--checkpoint' and command == 'test':
            checkpoint, index = rest[index + 1], index + 2
        elif word in MIM_OPTIONS:
            if word in ('-l', '--launcher'):
                tool_args += ['--launcher', rest[index + 1]]
            index += 2 if MIM_OPTIONS[word] else 1
        else:
            tool_args.append(word)
            index += 1
    if command == 'test':
        assert checkpoint, 'mim test needs --checkpoint'
        return check_python_tool('tools/test.py',
                                 [config, checkpoint, *tool_args])
    return check_python_tool('tools/train.py', [config, *tool_args])


def check_make(args: list[str], env: dict) -> str:
    makefile = (REPO_ROOT / 'Makefile').read_text()
    targets = set(re.findall(r'^([A-Za-z0-9_.-]+):', makefile, re.M))
    for target in args:
        assert target in targets, f'make {target}: no such target'
    installer = (REPO_ROOT / 'tools' / 'install.py').read_text()
    for name in env:
        assert name in installer or name in makefile, (
            f'{name}: neither the Makefile nor tools/install.py reads it')
    return ''


def run_command(argv: list[str], env: dict, workspace: Path) -> str:
    """Check (and, when cheap, run) one command; what it printed."""
    program, args = argv[0], argv[1:]
    if program in ('python', 'python3'):
        if args[:1] == ['-c']:
            result = subprocess.run(
                [sys.executable, *args], cwd=workspace, capture_output=True,
                text=True, timeout=300,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                    filter(None, [str(REPO_ROOT),
                                  os.environ.get('PYTHONPATH')]))))
            assert result.returncode == 0, result.stderr[-3000:]
            return result.stdout
        assert not env, f'unexpected environment {env} for {args[0]}'
        return check_python_tool(args[0], args[1:])
    if program == 'bash' or program.endswith('.sh'):
        script = args[0] if program == 'bash' else program
        rest = args[1:] if program == 'bash' else args
        return check_launcher(script, rest, env)
    if program == 'mim':
        return check_mim(args)
    if program == 'make':
        return check_make(args, env)
    if program == 'mkdir':
        assert args[0] == '-p' and len(args) > 1
        for folder in args[1:]:
            (workspace / folder).mkdir(parents=True, exist_ok=True)
        return ''
    raise AssertionError(f'the test does not know the command {program!r}')


@pytest.mark.parametrize('snippet', of_kind('shell'))
def test_shell_block(snippet: Snippet, workspace: Path):
    variables: dict[str, str] = {}
    commands = split_commands(snippet.text)
    assert commands, f'{snippet.id}: a shell block without commands'
    for command in commands:
        argv = [expand(word, variables) for word in command.argv]
        try:
            output = run_command(argv, command.env, workspace)
        except AssertionError as error:
            raise AssertionError(f'{snippet.id}: {command.source}\n'
                                 f'{error}') from None
        if command.capture:
            variables[command.capture] = output.strip()


# ----------------------------------------------------------- json, text
@pytest.mark.parametrize('snippet', of_kind('json'))
def test_json_block(snippet: Snippet):
    json.loads(snippet.text)


def shown_output(text: str, command: str) -> list[str]:
    """The lines a text block shows after ``$ command``."""
    lines = text.splitlines()
    start = lines.index(f'$ {command}') + 1
    end = next((i for i in range(start, len(lines))
                if lines[i].startswith('$ ')), len(lines))
    return [line.rstrip() for line in lines[start:end]]


@pytest.mark.parametrize('snippet', of_kind('text'))
def test_text_block(snippet: Snippet, workspace: Path):
    first = next((line for line in snippet.text.splitlines() if line.strip()),
                 '')
    assert not re.match(r'(python3?|bash|make|mim|tools/)\s', first), (
        f'{snippet.id} shows a command: tag the block ```bash')
    for line in text_block_commands(snippet.text):
        [command] = split_commands(line)
        output = run_command(command.argv, command.env, workspace)
        if not output:  # parsed, not run: the user's data is not here
            continue
        printed = [
            text.rstrip() for text in output.splitlines()[:-1]
            if text.strip()
        ]
        assert printed == [
            text for text in shown_output(snippet.text, line) if text
        ], f'{snippet.id}: `{line}` prints\n' + '\n'.join(printed)
