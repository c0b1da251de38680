"""The rules of the house, checked on the source (AST and text, nothing imported): no import cycle inside
realnvp or inside the benchmarks package; no import inside a realnvp function but the optional or heavy
ones; no function over 60 lines, no module over 400, in src/ and benchmarks/ alike; no block of six lines
written twice across src/ and benchmarks/; ``import realnvp`` changes nothing (the one test that imports,
in a child process). Each test lists its offenders."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
import tokenize
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "realnvp"
BENCHMARKS = ROOT / "benchmarks"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400
MIN_REPEATED_LINES = 6

# Imports allowed inside functions: optional or heavy dependencies, imported only when used.
OPTIONAL = ("matplotlib", "tensorboard", "torch.utils.tensorboard", "torchvision")
# ...and, in the command line (realnvp.cli and its modules), torch itself, so that `realnvp --help` and
# tab completion start without it. Dynamic imports (importlib.import_module) only for the CLI's
# dispatch to its commands and the package's lazy exports (`import realnvp` does not import torch).
CLI_ONLY = ("torch",)
DYNAMIC_IMPORT_ALLOWED = ("realnvp", "realnvp.cli")


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_of(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``package``."""
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


MODULES = modules_of(PACKAGE)
# Each checked tree, with the modules whose imports show that its graph was read at all.
TREES = {"realnvp": (MODULES, ("realnvp.cli", "realnvp.training")),
         "benchmarks": (modules_of(BENCHMARKS), ("benchmarks.results",))}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def resolve(node: ast.ImportFrom, module: str, modules: dict[str, Path] = MODULES) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def imported_names(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> list[str]:
    """Every module an import statement names: ``from a import b`` names ``a.b`` where ``b`` is a
    submodule, else ``a``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = resolve(node, module, modules)
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    return submodules if len(submodules) == len(node.names) else [base, *submodules]


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(body: list[ast.stmt]):
    """Import statements that run when the module is imported: at the top level, in top-level ``if``
    (but not ``if TYPE_CHECKING:``), ``try`` and ``with`` blocks and class bodies; not in functions."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not is_type_checking(node):
                yield from module_level_imports(node.body)
            yield from module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from module_level_imports(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from module_level_imports(node.body)


def import_graph(modules: dict[str, Path] = MODULES) -> dict[str, set[str]]:
    """Module -> the modules of the same tree importing it runs, package ``__init__``s included:
    importing ``realnvp.a.b`` from outside ``realnvp.a`` runs ``realnvp/a/__init__.py`` first."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in module_level_imports(parse(path).body):
            for target in imported_names(node, name, modules):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # the package chain, then the module itself
                    prefix = ".".join(parts[:i])
                    inside = name == prefix or name.startswith(prefix + ".")
                    if prefix in modules and prefix != name and (not inside or i == len(parts)):
                        graph[name].add(prefix)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest import cycle through the component's first module (breadth-first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return component


@pytest.mark.parametrize("tree", TREES)
def test_no_import_cycle_inside_the_package(tree):
    modules, witnesses = TREES[tree]
    graph = import_graph(modules)
    assert any(graph[w] for w in witnesses), "the import graph came out empty"
    cycles = [" -> ".join(cycle_through(graph, c)) for c in strongly_connected(graph)]
    assert not cycles, "import cycles (module-level imports):\n" + "\n".join(cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def function_level_imports(name: str, path: Path) -> list[str]:
    """``file:line module`` for each import inside a function that the rules do not allow."""
    found, seen = [], set()
    allowed = OPTIONAL + (CLI_ONLY if within(name, ("realnvp.cli",)) else ())
    for function in functions(parse(path)):
        for node in ast.walk(function):
            if id(node) in seen:
                continue
            seen.add(id(node))
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', function.lineno)} in {function.name}()"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = [resolve(node, name)] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found += [f"{where}: import {t}" for t in targets if not within(t, allowed)]
            elif (isinstance(node, ast.Call) and name not in DYNAMIC_IMPORT_ALLOWED
                  and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")):
                found.append(f"{where}: {ast.unparse(node)[:80]}")
    return found


def test_no_import_inside_a_function_but_the_allowed_ones():
    offenders = [line for name, path in MODULES.items() for line in function_level_imports(name, path)]
    assert not offenders, "imports inside functions:\n" + "\n".join(offenders)


def docstring_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def long_functions(path: Path) -> list[str]:
    """``file:line name: N lines`` for each function longer than the limit, counted from ``def`` to
    its last line without its docstring (the docstring's examples are documentation)."""
    out = []
    for function in functions(parse(path)):
        length = function.end_lineno - function.lineno + 1 - docstring_lines(function)
        if length > MAX_FUNCTION_LINES:
            out.append(f"{path.relative_to(ROOT)}:{function.lineno} {function.name}(): {length} lines")
    return out


@pytest.mark.parametrize("tree", TREES)
def test_no_function_over_60_lines(tree):
    offenders = [line for path in TREES[tree][0].values() for line in long_functions(path)]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


@pytest.mark.parametrize("tree", TREES)
def test_no_module_over_400_lines(tree):
    sizes = {path.relative_to(ROOT): len(path.read_text().splitlines()) for path in TREES[tree][0].values()}
    offenders = [f"{path}: {n} lines" for path, n in sizes.items() if n > MAX_MODULE_LINES]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(offenders)


LONE_PUNCTUATION = re.compile(r"[()\[\]{},:;.\s]*")


def code_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of the lines that count for repetition: white space folded; blank
    lines, comments, lone punctuation and import statements passed over (as the repo's
    ``duplicates`` tool does)."""
    text = path.read_text()
    imports = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.update(range(node.lineno, node.end_lineno + 1))
    source = text.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:  # a trailing comment is cut off its line
            row, col = token.start
            source[row - 1] = source[row - 1][:col]
    lines = []
    for number, line in enumerate(source, 1):
        folded = " ".join(line.split())
        if folded and not folded.startswith("#") and not LONE_PUNCTUATION.fullmatch(folded) and number not in imports:
            lines.append((number, folded))
    return lines


def repeated_blocks(paths: list[Path], size: int = MIN_REPEATED_LINES) -> list[str]:
    """``a.py:10-24 ~ b.py:40-54`` for each maximal run of ``size`` or more counted lines that stands
    in two places (two files, or twice in one), leaving out argparse boilerplate: a block with a line
    that calls ``add_argument``."""
    lines = {path: code_lines(path) for path in paths}
    where = defaultdict(list)
    for path, numbered in lines.items():
        texts = [t for _, t in numbered]
        for i in range(len(texts) - size + 1):
            block = tuple(texts[i : i + size])
            if not any("add_argument" in t for t in block):
                where[block].append((path, i))
    pairs = set()
    for places in where.values():
        for a, (path_a, i) in enumerate(places):
            for path_b, j in places[a + 1 :]:
                if path_a != path_b or j >= i + size:
                    pairs.add((path_a, i, path_b, j))
    out = []
    for path_a, i, path_b, j in sorted(pairs):
        if (path_a, i - 1, path_b, j - 1) in pairs:
            continue  # inside a longer run, reported from its start
        length = size
        while (path_a, i + length - size + 1, path_b, j + length - size + 1) in pairs:
            length += 1
        (first_a, _), (last_a, _) = lines[path_a][i], lines[path_a][i + length - 1]
        (first_b, _), (last_b, _) = lines[path_b][j], lines[path_b][j + length - 1]
        out.append(f"{path_a.relative_to(ROOT)}:{first_a}-{last_a} ~ {path_b.relative_to(ROOT)}:{first_b}-{last_b} "
                   f"({length} lines)")
    return out


def test_repeated_block_finder_finds_a_repeat(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    body = "\n".join(f"x{i} = f({i})  # step {i}" for i in range(7))
    (tmp_path / "a.py").write_text(f"import os\n\n{body}\n")
    (tmp_path / "b.py").write_text(f"y = 1\n{body.replace('# step', '# other comment')}\nz = 2\n")
    (tmp_path / "c.py").write_text("\n".join(f"p.add_argument('--x{i}')" for i in range(7)) + "\n")
    (tmp_path / "d.py").write_text("\n".join(f"p.add_argument('--x{i}')" for i in range(7)) + "\n")
    assert repeated_blocks(sorted(tmp_path.glob("*.py"))) == ["a.py:3-9 ~ b.py:2-8 (7 lines)"]


def test_no_block_of_six_lines_repeated_across_src_and_benchmarks():
    paths = sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
    offenders = repeated_blocks(paths)
    assert not offenders, f"blocks of {MIN_REPEATED_LINES}+ lines written twice:\n" + "\n".join(offenders)


def test_import_realnvp_changes_nothing():
    """The OpenMP spin is set where a process starts (``realnvp.cli.main``), never by ``import realnvp``."""
    code = "import os; before = dict(os.environ); import realnvp; print(dict(os.environ) == before)"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("GOMP_SPINCOUNT", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"
