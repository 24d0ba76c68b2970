"""Data flows one way: every import of the toolkit's code, module level or inside a function, goes
down the layers (the shared base, then cohorts, encoder, reports, the application on top)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("phewas", "cohorts", "encoder", "reports")
# lowest first; a module may import its own layer and those below it
LAYERS = ("base", "cohorts", "encoder", "reports", "app")


def layer(module: str) -> str | None:
    """The layer of a module of the toolkit (None for anything else)."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if top == "phewas":
        # the package itself re-exports the Python API (lazily): it is the application's face
        return "base" if module.startswith("phewas.base") else "app"
    return top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``source``, relative ones resolved; in
    ``from X import Y`` the module is ``X.Y`` where that is a module of the toolkit, else ``X``."""
    found = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found += [(node.lineno, f"{target}.{a.name}" if is_module(f"{target}.{a.name}") else target)
                      for a in node.names]
    return found


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (the code of ``module``) that reach a higher layer."""
    own = LAYERS.index(layer(module))
    return [f"{module}:{line} imports {target}" for line, target in imports(source, module, is_package)
            if layer(target) is not None and LAYERS.index(layer(target)) > own]


def toolkit_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path, module_name(path)


def test_no_module_imports_a_higher_layer():
    bad = [b for path, mod in toolkit_modules()
           for b in upward_imports(path.read_text(), mod, path.name == "__init__.py")]
    assert not bad, "\n".join(bad)


def test_every_module_has_a_layer():
    assert {layer(mod) for _, mod in toolkit_modules()} == set(LAYERS)


@pytest.mark.parametrize("module,source", [
    ("cohorts.build", "from encoder.config import Net1DConfig\n"),
    ("encoder.finetune", "def f():\n    from reports.report import make_report\n"),
    ("reports.report", "import phewas.cli\n"),
    ("phewas.base.io", "from cohorts import splits\n"),
    ("phewas.base.io", "from .. import study\n"),
    ("cohorts.segments", "from phewas import pipeline\n"),
    ("encoder.embed", "from phewas import probe\n"),
])
def test_the_check_finds_an_upward_import(module, source):
    assert upward_imports(source, module), (module, source)


@pytest.mark.parametrize("module,source", [
    ("reports.report", "from encoder.predictions import WINDOWS\nfrom cohorts.splits import SPLITS\n"),
    ("encoder.finetune", "from phewas.base.auc import auc_delong\nfrom .heads import StayClassifier\n"),
    ("phewas.cli", "from reports.report import make_report\n"),
    ("phewas.base.io", "from phewas.base.errors import InputError\nfrom .errors import InputError\n"),
])
def test_the_check_allows_downward_imports(module, source):
    assert not upward_imports(source, module), (module, source)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other in a loop: the strongly connected components of more
    than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_modules_import_each_other():
    """No loop of imports, module level or inside a function (a package's ``__init__`` re-exporting
    its modules is not an edge back)."""
    graph = {}
    for path, mod in toolkit_modules():
        if path.name == "__init__.py":
            continue
        graph[mod] = {t for _, t in imports(path.read_text(), mod) if layer(t) is not None and is_module(t)
                      and t != mod and not (ROOT.joinpath(*t.split(".")) / "__init__.py").is_file()}
    assert not cycles(graph), cycles(graph)


def test_the_cycle_check_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
