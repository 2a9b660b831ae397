"""The fenced code blocks of the documentation, and the commands in them.

Read by ``test_doc_snippets.py``. A block is classified by its language
tag; an HTML comment on the nearest non-blank line above a fence gives the
test what the block needs, invisible in the rendered page::

    <!-- snippet: needs=toy,coco scope=mmseg -->

``needs`` names stand-ins for files a user has and this machine has not
(see ``STAND_INS`` in the test); ``scope`` is the default scope a config
fragment is built in (both mmdet and mmseg when not given).
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The pages a user reads: the README, the docs and the configs' README.
DOC_GLOBS = ('README.md', 'docs/**/*.md', 'configs/pading/README.md')

# Language tag -> how the test treats the block. No tag is plain text, as
# Markdown renders it (output, trees, messages).
KINDS = {
    'python': 'python',
    'py': 'python',
    'bash': 'shell',
    'sh': 'shell',
    'shell': 'shell',
    'json': 'json',
    'text': 'text',
    '': 'text',
}
MARKER_KEYS = ('needs', 'scope')

_FENCE = re.compile(
    r'^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<lang>[^`\s]*)')
_MARKER = re.compile(r'^\s*<!--\s*snippet:(?P<body>.*?)-->\s*$')
_ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
_CAPTURE = re.compile(r'^(?P<var>[A-Za-z_]\w*)=\$\((?P<command>.+)\)\s*$')


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a documentation page.

    Attributes:
        doc (str): Page, relative to the repository root.
        line (int): 1-based line of the opening fence.
        lang (str): Language tag ('' when none).
        text (str): The block's content, dedented to its fence.
        options (dict): ``needs`` (tuple of str) and ``scope`` (str or
            None) from the marker comment above the block.
    """
    doc: str
    line: int
    lang: str
    text: str
    options: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def kind(self) -> str | None:
        """'python', 'shell', 'json' or 'text'; None for an unknown tag."""
        return KINDS.get(self.lang.lower())

    @property
    def needs(self) -> tuple[str, ...]:
        return self.options.get('needs', ())

    @property
    def id(self) -> str:
        return f'{self.doc}:{self.line}'


def doc_files() -> list[Path]:
    """Every page the snippet test reads, sorted."""
    files = set()
    for pattern in DOC_GLOBS:
        files.update(REPO_ROOT.glob(pattern))
    return sorted(files)


def parse_marker(line: str, where: str) -> dict | None:
    """The options of a ``<!-- snippet: ... -->`` line; None if it is not one.

    Raises:
        ValueError: An unknown key or a malformed ``key=value``.
    """
    match = _MARKER.match(line)
    if match is None:
        return None
    options: dict = {}
    for item in match['body'].split():
        key, sep, value = item.partition('=')
        if not sep or key not in MARKER_KEYS or not value:
            raise ValueError(
                f'{where}: bad snippet marker item {item!r}; write '
                f'key=value with key one of {MARKER_KEYS}')
        options[key] = tuple(value.split(',')) if key == 'needs' else value
    return options


def read_snippets(path: Path) -> list[Snippet]:
    """The fenced blocks of one Markdown page, in order.

    Raises:
        ValueError: A fence that is never closed, or a bad marker.
    """
    doc = path.relative_to(REPO_ROOT).as_posix() \
        if path.is_relative_to(REPO_ROOT) else str(path)
    lines = path.read_text(encoding='utf-8').splitlines()
    snippets = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence = match['indent'], match['fence']
        start = index
        body = []
        index += 1
        while index < len(lines) and not (
                lines[index].strip().startswith(fence)
                and lines[index].strip().strip(fence[0]) == ''):
            text = lines[index]
            body.append(text[len(indent):] if text.startswith(indent) else
                        text.lstrip())
            index += 1
        if index == len(lines):
            raise ValueError(f'{doc}:{start + 1}: code block never closed')
        index += 1
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        options = parse_marker(lines[above], f'{doc}:{above + 1}') \
            if above >= 0 else None
        snippets.append(
            Snippet(doc=doc, line=start + 1, lang=match['lang'],
                    text='\n'.join(body) + '\n', options=options or {}))
    return snippets


def all_snippets() -> list[Snippet]:
    return [snippet for path in doc_files() for snippet in read_snippets(path)]


@dataclass
class Command:
    """One simple command of a shell block.

    Attributes:
        argv (list[str]): Words after variable expansion, e.g.
            ``['python', 'tools/train.py', 'configs/x.py']``.
        env (dict): ``NAME=value`` words in front of the command.
        capture (str, optional): Variable that ``VAR=$(command)`` assigns
            the command's output to.
        source (str): The line as written.
    """
    argv: list[str]
    env: dict = field(default_factory=dict)
    capture: str | None = None
    source: str = ''


def split_commands(text: str) -> list[Command]:
    """The commands of a shell block.

    Continuation lines are joined, comments dropped and ``a && b`` /
    ``a; b`` split. ``$VAR`` stays as written: the test expands it with
    :func:`expand` from the ``VAR=$(...)`` lines it has run.

    Raises:
        ValueError: Pipes, redirections or subshells, which the test does
            not run.
    """
    commands = []
    text = re.sub(r'\\\n', ' ', text)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        capture = _CAPTURE.match(line.strip())
        if capture:
            commands.append(
                Command(argv=shlex.split(capture['command']),
                        capture=capture['var'], source=line.strip()))
            continue
        words = shlex.split(line, comments=True)
        for word in words:
            if word in ('|', '>', '>>', '<', '(', ')') or word.startswith(
                    ('$(', '`')):
                raise ValueError(
                    f'unsupported shell syntax {word!r} in: {line.strip()}')
        current: list[str] = []
        for word in words + [';']:
            if word in ('&&', ';'):
                if current:
                    env = {}
                    while current and _ENV_ASSIGNMENT.match(current[0]):
                        name, _, value = current.pop(0).partition('=')
                        env[name] = value
                    commands.append(
                        Command(argv=current, env=env, source=line.strip()))
                current = []
            else:
                current.append(word)
    return commands


def expand(word: str, variables: dict) -> str:
    """``$VAR`` and ``${VAR}`` replaced from ``variables``.

    Raises:
        KeyError: A variable the block never set.
    """
    def replace(match: re.Match) -> str:
        name = match['braced'] or match['plain']
        if name not in variables:
            raise KeyError(f'${name} is not set by the block')
        return variables[name]

    return re.sub(r'\$(?:\{(?P<braced>\w+)\}|(?P<plain>[A-Za-z_]\w*))',
                  replace, word)


def text_block_commands(text: str) -> list[str]:
    """Lines of a text block that show a command (``$ command``)."""
    return [line[2:] for line in text.splitlines() if line.startswith('$ ')]
