"""The layers of the code, read from its source (no import is run): the contract (vi_contract)
under both the writer (vi_sweeps) and the readers (analysis); no import cycle; imports at the
top of a module, except optional dependencies and the CLI's heavy paths; no module over 400
lines (issue 20)."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("vi_sweeps", "vi_contract", "analysis")
MAX_LINES = 400
# What may be imported inside a function, and why: packages that are optional extras (a user
# without them runs everything else), and, in the CLI only, the modules that bring Ray or
# torch and the report path (analysis: matplotlib, seaborn), so that `vi-sweep validate` and
# `--help` do not load them.
OPTIONAL = {
    "torch_fidelity": "the [fid] extra: Inception FID on real images",
    "mlflow": "the [track] extra", "wandb": "the [track] extra",
    "optuna_dashboard": "the [dashboard] extra",
    "optuna": "analysis: read only for a search's results (the reader's own needs are pandas, pyarrow, scipy, seaborn)",
}
HEAVY = ("ray", "torch")
# Imported where used because importing them costs every Ray worker and every command that
# reads a config seconds (measured with python -X importtime: sklearn.datasets 2.1 s of
# vi_sweeps.study.config's 2.4 s), for the few models and data sets that need them.
COSTLY = {"sklearn": "the digits loader and the EM baseline's Gaussian mixture",
          "vi_sweeps.track.tensorboard": "tensorboardX and protobuf, 0.3 s in every Ray worker, only with --tensorboard",
          "vi_sweeps.track.callbacks": "Ray's MLflow and W&B integrations, 1.3 s of every `vi-sweep run`, only when it tracks"}


def modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules()


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert node.level == 0, f"{module}: relative import"  # the code base uses absolute imports only
    return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names]


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(target, line, inside a function) of every import of the module."""
    tree = ast.parse(MODULES[module].read_text())
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.extend((t, child.lineno, in_function) for t in _targets(child, module))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


def first_party(target: str) -> str | None:
    """The module of ours an import names (the longest known prefix), or None."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in MODULES:
            return ".".join(parts[:n])
    return None


GRAPH = {m: sorted({first_party(t) for t, _, _ in imports(m)} - {None, m}) for m in MODULES}


def closure(module: str) -> set[str]:
    """Every import the module reaches, ours and third parties' top-level names."""
    seen, todo, outside = set(), [module], set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for target, _, _ in imports(m):
            ours = first_party(target)
            if ours is None:
                outside.add(target.split(".")[0])
            else:
                todo.append(ours)
    return seen | outside


def cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in GRAPH:
        if v not in index:
            strong(v)
    return out


# The writer's layers, lowest first: a module imports its own subpackage and lower layers only
# (imports inside functions count). data, gan and track are side by side and import none of
# each other; metrics reads data (the reference classifier trains on digits).
LAYERS = {"core": 0, "data": 1, "gan": 1, "track": 1, "metrics": 2, "study": 3, "engine": 4, "sweep": 5, "cli": 6}
TOP = ("vi_sweeps", "vi_sweeps._moved")  # the package and the table of the former flat names


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vi_sweeps" and len(parts) > 1 and parts[1] in LAYERS else None


def test_every_writer_module_sits_in_a_layer_and_imports_only_its_own_and_lower_ones():
    homeless = [m for m in MODULES if m.startswith("vi_sweeps") and m not in TOP and layer(m) not in LAYERS]
    assert homeless == []
    upward = [f"{m}:{line} {t}" for m in MODULES if layer(m) in LAYERS for t, line, _ in imports(m)
              if (q := layer(first_party(t) or "")) in LAYERS and q != layer(m) and LAYERS[q] >= LAYERS[layer(m)]]
    assert upward == []


def test_the_former_flat_names_are_the_new_modules_themselves():
    import importlib

    from vi_sweeps._moved import MOVED

    assert {old: importlib.import_module(old) is importlib.import_module(new) for old, new in MOVED.items()} == \
        {old: True for old in MOVED}
    assert all(f"{old}.py" not in {p.name for p in (ROOT / "vi_sweeps").glob("*.py")} for old in
               (m.split(".")[1] for m in MOVED))
    assert importlib.import_module("vi_sweeps.datasets").__spec__.name == "vi_sweeps.data.datasets"


def test_no_import_cycle_anywhere():
    assert cycles() == []


def test_the_writer_imports_the_analysis_only_where_the_cli_builds_a_report():
    found = [f"{m}:{line} {t}" for m in MODULES if m.startswith("vi_sweeps") and not m.startswith("vi_sweeps.cli")
             for t, line, _ in imports(m) if t.split(".")[0] == "analysis"]
    assert found == []


@pytest.mark.parametrize("package", ["vi_contract", "analysis"])
def test_the_contract_and_the_analysis_need_neither_torch_nor_ray_nor_the_writer(package):
    reached = {m: closure(m) & {"torch", "ray", "vi_sweeps", *(("analysis",) if package == "vi_contract" else ())}
               for m in MODULES if m.split(".")[0] == package}
    reached |= {m: {r for r in closure(m) if r.startswith("vi_sweeps") or (package == "vi_contract" and r.startswith("analysis"))}
                for m in reached}
    assert {m: sorted(r) for m, r in reached.items() if r} == {}


def test_imports_sit_at_the_top_of_a_module_but_optional_dependencies_and_the_clis_heavy_paths():
    found = []
    for m in MODULES:
        for target, line, inside in imports(m):
            if not inside or target.split(".")[0] in OPTIONAL or target.split(".")[0] in COSTLY or target in COSTLY:
                continue
            reached = {r.split(".")[0] for r in closure(first_party(target))} if first_party(target) else set()
            if m.startswith("vi_sweeps.cli") and (target.split(".")[0] in (*HEAVY, "analysis") or (
                    reached & {*HEAVY, "analysis"})):  # a module on the heavy or the report path
                continue
            found.append(f"{m}:{line} {target}")
    assert found == []


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_walker_sees_a_planted_cycle_and_a_function_level_import(tmp_path, monkeypatch):
    """The checks above can fail: a cycle and an import inside a function planted in a copy."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import vi_contract.b_planted\n")
    b.write_text("def f():\n    import vi_contract.a_planted\n")
    monkeypatch.setitem(MODULES, "vi_contract.a_planted", a)
    monkeypatch.setitem(MODULES, "vi_contract.b_planted", b)
    monkeypatch.setitem(GRAPH, "vi_contract.a_planted", ["vi_contract.b_planted"])
    monkeypatch.setitem(GRAPH, "vi_contract.b_planted", ["vi_contract.a_planted"])
    assert ["vi_contract.a_planted", "vi_contract.b_planted"] in cycles()
    assert imports("vi_contract.b_planted") == [("vi_contract.a_planted", 2, True)]
    assert first_party("vi_contract.a_planted.x") == "vi_contract.a_planted"


@pytest.mark.parametrize("package", ["vi_sweeps.metrics", "vi_sweeps.study", "vi_sweeps.sweep"])
def test_every_former_name_a_package_lends_still_resolves(package):
    import importlib

    module = importlib.import_module(package)
    missing = [name for name in module.FORMER if not hasattr(module, name)]
    assert missing == []  # (vi_sweeps.sweep.tracking_callbacks, when its import moved, had no lender)
