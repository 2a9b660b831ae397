"""Package boundaries of ``mmpading/``, read from the source (no import).

The import graph has an edge ``a -> b`` for every ``import`` / ``from``
statement of module ``a`` that names the mmpading module ``b``, at module
level or inside a function (a lazy import still ties the two modules
together), and an edge to each package above ``b`` that is not above ``a``
(importing ``b`` runs its ``__init__``). It must have no cycle, and the
package holds no code that only tests use (that is ``tests/_helpers``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / 'mmpading'


def module_name(path: Path, package_root: Path = PACKAGE_ROOT) -> str:
    """Dotted name of the module at ``path`` (a package: its folder)."""
    parts = list(path.relative_to(package_root.parent).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def package_modules(package_root: Path = PACKAGE_ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {
        module_name(path, package_root): path
        for path in sorted(package_root.rglob('*.py'))
    }


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module name a (possibly relative) ``from`` names."""
    if not node.level:
        return node.module or ''
    # A package's own name is its anchor; a module's anchor is its parent.
    anchor = module.split('.') if is_package else module.split('.')[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return '.'.join(anchor + ([node.module] if node.module else []))


def imported_modules(path: Path, module: str,
                     modules: dict[str, Path]) -> set[str]:
    """The package modules that the file at ``path`` imports.

    ``from a import b`` names the module ``a.b`` when that is a module, else
    ``a`` (``b`` is then a name defined in ``a``).
    """
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    is_package = path.name == '__init__.py'
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            names = [
                f'{base}.{alias.name}'
                if f'{base}.{alias.name}' in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            # ``import a.b.c`` binds ``a`` but runs ``a.b.c``: the deepest
            # package module the name reaches.
            while name and name not in modules:
                name = name.rpartition('.')[0]
            if name:
                targets.update(_runs(name, module))
    return targets


def _runs(target: str, importer: str) -> list[str]:
    """What importing ``target`` from ``importer`` runs: ``target`` and
    the packages above it that are not also above ``importer`` (those are
    already being imported when ``importer`` runs)."""
    own = importer.split('.')
    parts = target.split('.')
    return [
        '.'.join(parts[:depth]) for depth in range(1, len(parts) + 1)
        if parts[:depth] != own[:depth]
    ]


def import_graph(package_root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = package_modules(package_root)
    return {
        module: imported_modules(path, module, modules)
        for module, path in modules.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan),
    each sorted, as the cycles to report."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules that importing ``start`` imports, directly or not."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def top_level_imports(path: Path) -> set[str]:
    """First components of the absolute imports of a file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split('.')[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add((node.module or '').split('.')[0])
    return names


@pytest.fixture(scope='module')
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_graph_reads_relative_and_lazy_imports(graph):
    # Known edges of the package, so that an empty graph cannot pass.
    assert 'mmpading.registry' in graph['mmpading']
    assert 'mmpading.datasets' in graph['mmpading']
    assert 'mmpading.utils.package_resources' in graph[
        'mmpading.datasets.class_embeddings']
    assert len(graph) > 50


def test_cycle_detection_names_the_modules(tmp_path):
    root = tmp_path / 'pkg'
    (root / 'sub').mkdir(parents=True)
    (root / '__init__.py').write_text('')
    (root / 'sub' / '__init__.py').write_text('from .a import f\n')
    (root / 'sub' / 'a.py').write_text('from .b import g\n')
    (root / 'sub' / 'b.py').write_text(
        'def g():\n    from ..sub.a import f  # lazy\n')
    (root / 'c.py').write_text('import pkg.sub.a\n')
    graph = import_graph(root)
    # Importing pkg.sub.a runs pkg/sub/__init__.py first.
    assert graph['pkg.c'] == {'pkg.sub', 'pkg.sub.a'}
    assert import_cycles(graph) == [['pkg.sub.a', 'pkg.sub.b']]


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert cycles == [], 'import cycles in mmpading/:\n' + '\n'.join(
        ' <-> '.join(cycle) for cycle in cycles)



def test_apis_do_not_import_test_code(graph):
    assert 'mmpading.apis' in graph
    test_code = sorted(module for module in reachable(graph, 'mmpading.apis')
                       if module.split('.')[1:2] == ['testing'])
    assert test_code == []


def test_the_package_holds_no_test_code(graph):
    assert [m for m in graph if m.split('.')[1:2] == ['testing']] == []
    uses_test_code = sorted(
        module for module, path in package_modules().items()
        if top_level_imports(path) & {'pytest', '_helpers'})
    assert uses_test_code == []


def test_command_line_parsing_lives_with_the_tools():
    parsing = sorted(module for module, path in package_modules().items()
                     if 'argparse' in top_level_imports(path))
    assert parsing == []
