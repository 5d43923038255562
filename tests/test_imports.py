"""The import graph of `hsmad`, read from the source with `ast`: no circle among module-level imports, no upward
import (the data side never imports the model, generation and evaluation never import the trainer), and every
module loads from this checkout.

Module-level imports are the ones that run when a module is imported (at the top, in a class body, under `try`);
imports inside a function run only when it is called (the CLI's lazy imports) and count only for the layering rules.
Imports under `if TYPE_CHECKING:` never run and are ignored.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = 'hsmad'

# (importer prefix, forbidden targets, why): a module matches a prefix when it is the prefix or lies below it
LAYERS: list[tuple[str, tuple[str, ...], str]] = [
    ('hsmad.data', ('hsmad.hse', 'hsmad.unet', 'hsmad.model', 'hsmad.diffusion', 'hsmad.checkpoint', 'hsmad.train',
                    'hsmad.generate'), 'the data side never imports the model'),
    ('hsmad.eval', ('hsmad.train',), 'evaluation loads models through hsmad.checkpoint, never the trainer'),
    ('hsmad.generate', ('hsmad.train',), 'generation loads models through hsmad.checkpoint, never the trainer'),
    ('hsmad.checkpoint', ('hsmad.train',), 'the checkpoint module is what generation needs from training'),
]


def module_files(pkg_dir: Path) -> dict[str, Path]:
    "Dotted module name -> file, for every .py below `pkg_dir` (a package's `__init__.py` is the package itself)."
    out = {}
    for f in sorted(pkg_dir.rglob('*.py')):
        parts = f.relative_to(pkg_dir.parent).with_suffix('').parts
        if parts[-1] == '__init__': parts = parts[:-1]
        out['.'.join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or \
           (isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _imports(tree: ast.AST, module: str, is_pkg: bool):
    "Yield `(imported dotted name, names imported from it or None, module_level)` for every import statement."
    def visit(node, top: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for n in child.orelse: yield from visit(ast.Module(body=[n], type_ignores=[]), top)
                continue
            if isinstance(child, ast.Import):
                for a in child.names: yield a.name, None, top
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ''
                if child.level:  # relative: resolve against this module's package
                    pkg = module.split('.') if is_pkg else module.split('.')[:-1]
                    pkg = pkg[:len(pkg) - child.level + 1]
                    base = '.'.join(pkg + ([base] if base else []))
                yield base, [a.name for a in child.names], top
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from visit(child, inner)
    yield from visit(tree, True)


def import_graph(pkg_dir: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    "`(module_level, all_imports)`: for each module of the package, the modules of the package it imports."
    mods = module_files(pkg_dir)
    top_edges: dict[str, set[str]] = {m: set() for m in mods}
    all_edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        tree = ast.parse(f.read_text(encoding='utf-8'), filename=str(f))
        for base, names, top in _imports(tree, m, f.name == '__init__.py'):
            if base != pkg_dir.name and not base.startswith(pkg_dir.name + '.'): continue
            targets = {f'{base}.{n}' for n in (names or []) if f'{base}.{n}' in mods} or {base}
            # importing a.b.c also runs a/__init__ and a/b/__init__
            for t in list(targets):
                parts = t.split('.')
                targets |= {'.'.join(parts[:i]) for i in range(1, len(parts))}
            targets = {t for t in targets if t in mods and t != m}
            all_edges[m] |= targets
            if top: top_edges[m] |= targets
    return top_edges, all_edges


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    "Strongly connected components with more than one module (Tarjan), each as a sorted list."
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on_stack: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on_stack.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index: strong(v)
    return out


def _under(module: str, prefix: str) -> bool: return module == prefix or module.startswith(prefix + '.')


def upward_imports(edges: dict[str, set[str]], layers=LAYERS) -> list[str]:
    "One line per import that breaks a layering rule."
    bad = []
    for m, targets in sorted(edges.items()):
        for prefix, forbidden, why in layers:
            if not _under(m, prefix): continue
            bad += [f'{m} imports {t} ({why})' for t in sorted(targets) if any(_under(t, f) for f in forbidden)]
    return bad


def dependency_order(edges: dict[str, set[str]]) -> list[str]:
    "Modules ordered so that each comes after the modules it imports at module level (ties by name)."
    order, done = [], set()

    def visit(m, path=()):
        if m in done or m in path: return
        for t in sorted(edges[m]): visit(t, path + (m,))
        done.add(m); order.append(m)

    for m in sorted(edges): visit(m)
    return order


# --- the checks on this package ---

TOP, ALL = import_graph(ROOT / PKG)


def test_graph_sees_the_package():
    "The walk finds the subpackages and real edges (a parser that saw nothing would pass everything below)."
    assert {'hsmad.data.cache', 'hsmad.eval.metrics', 'hsmad.diffusion', 'hsmad.cli'} <= set(TOP)
    assert 'hsmad.config' in TOP['hsmad.model'] and 'hsmad.hse' in TOP['hsmad.model']
    assert any(ALL[m] - TOP[m] for m in ALL), 'no function-level import found (the CLI imports its commands lazily)'


def test_no_import_circle():
    cycles = find_cycles(TOP)
    assert not cycles, 'module-level import circles: ' + '; '.join(' <-> '.join(c) for c in cycles)


def test_no_upward_import():
    bad = upward_imports(ALL)
    assert not bad, 'upward imports:\n' + '\n'.join(bad)


def test_every_module_loads_from_this_checkout():
    failed = []
    for m in dependency_order(TOP):
        try: mod = importlib.import_module(m)
        except Exception as e:  # report every module that fails, not only the first
            failed.append(f'{m}: {type(e).__name__}: {e}'); continue
        where = Path(mod.__file__).resolve()
        if ROOT not in where.parents: failed.append(f'{m} was imported from {where}, not from {ROOT}')
    assert not failed, '\n'.join(failed)


# --- the checker itself can fail ---

def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = root / name; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(text)
    return root / 'pkg'


def test_checker_finds_a_circle_and_an_upward_import(tmp_path):
    pkg = _write(tmp_path, {
        'pkg/__init__.py': '',
        'pkg/a.py': 'from pkg import b\n',
        'pkg/b.py': 'import pkg.c\n',
        'pkg/c.py': 'from .a import x\n',                       # relative import closes a -> b -> c -> a
        'pkg/d.py': 'def f():\n    from pkg import a\n',       # function level: no circle with a
        'pkg/data/__init__.py': '',
        'pkg/data/x.py': 'def f():\n    import pkg.model\n',  # function level still counts for layering
        'pkg/model.py': 'from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n',
    })
    top, every = import_graph(pkg)
    assert find_cycles(top) == [['pkg.a', 'pkg.b', 'pkg.c']]
    assert 'pkg.a' in every['pkg.d'] and 'pkg.a' not in top['pkg.d']
    assert 'pkg.d' not in every['pkg.model']                         # TYPE_CHECKING imports never run
    assert upward_imports(every, [('pkg.data', ('pkg.model',), 'data below model')]) == \
        ['pkg.data.x imports pkg.model (data below model)']
    order = dependency_order({'x': {'y'}, 'y': {'z'}, 'z': set()})
    assert order == ['z', 'y', 'x']
