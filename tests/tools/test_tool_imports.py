"""The scripts of tools/ share code through modules, not each other.

A script finds the modules of its own folder by name (Python puts the
folder of the script it runs first on ``sys.path``); it does not edit
``sys.path`` to reach another script, and what it imports from its folder
is a shared module (no ``__main__`` block), not another script.
"""
import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / 'tools'
# Puts the reference checkout (heshuting555/PADing), not a tool, on the
# path: it runs the reference code to record the parity fixture.
EXTERNAL_CHECKOUT = {'model_converters/make_reference_parity_fixture.py'}


def is_script(path: Path) -> bool:
    return "if __name__ == '__main__':" in path.read_text(encoding='utf-8')


def edits_sys_path(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr in (
            'insert', 'append', 'extend') and isinstance(
                node.value, ast.Attribute) and node.value.attr == 'path'
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == 'sys' for node in ast.walk(tree))


def folder_imports(path: Path, tree: ast.AST) -> set[str]:
    """Names of modules of the script's own folder that it imports."""
    siblings = {p.stem for p in path.parent.glob('*.py')} - {path.stem}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or '')
    return names & siblings


def test_no_tool_edits_sys_path():
    editing = sorted(
        str(path.relative_to(TOOLS)) for path in TOOLS.rglob('*.py')
        if edits_sys_path(ast.parse(path.read_text(encoding='utf-8'))))
    assert editing == sorted(EXTERNAL_CHECKOUT)


def test_tools_import_shared_modules_not_scripts():
    imported_scripts = []
    shared = set()
    for path in sorted(TOOLS.rglob('*.py')):
        tree = ast.parse(path.read_text(encoding='utf-8'))
        for name in folder_imports(path, tree):
            sibling = path.parent / f'{name}.py'
            shared.add(name)
            if is_script(sibling):
                imported_scripts.append(f'{path.relative_to(TOOLS)} -> '
                                        f'{name}')
    assert imported_scripts == []
    assert {'benchmark_setup', 'tool_arguments'} <= shared
