"""The public surface (issue 19): no import circle among tessera's modules, the command line is
its own package (no argparse code in the library modules), `tessera --version`, every public
name documented and listed in its module's __all__, the planning names under one spelling."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "python" / "tessera"


def _modules():
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods


def _edges(mods):
    """Module -> the tessera modules it imports (at module level or inside functions)."""
    out = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = pkg
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                mod = node.module if not node.level else (f"{base}.{node.module}" if node.module else base)
                for a in node.names:
                    sub = f"{mod}.{a.name}"
                    if sub in mods:
                        targets.append(sub)
                    elif a.name not in ("_core",):  # the extension module is not the package
                        targets.append(mod)
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            out[m] |= {t for t in targets if t in mods and t != m}
    return out


def _cycles(edges):
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    edges = _edges(_modules())
    assert "tessera.cli" in edges and edges["tessera"], "the walk found the package"
    cycles = _cycles(edges)
    assert not cycles, "import circles: " + "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a} -> {sorted(set(edges[a]) & set(c))}" for a in c) + ")"
        for c in cycles)


def test_the_walk_finds_a_circle():  # the check itself can fail
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]


def test_argparse_only_in_the_cli_package():
    offenders = []
    for name, p in _modules().items():
        if name == "tessera.cli" or name.startswith("tessera.cli."):
            continue
        text = p.read_text()
        if "argparse" in text or "add_argument(" in text or "add_parser(" in text:
            offenders.append(name)
    assert not offenders, f"argparse code outside tessera.cli: {offenders}"


def test_every_command_module_is_in_the_table():
    from tessera import cli
    listed = {m for m, _ in cli.COMMANDS}
    present = {p.stem for p in (PKG / "cli").glob("*.py")} - {"__init__", "args"}
    assert listed == present


def test_version_in_one_place():
    import re

    import tessera
    root = PKG.parents[1]
    header = (root / "cpp" / "include" / "tessera" / "core" / "version.h").read_text()
    release = re.search(r'#define TESSERA_VERSION_STRING "([0-9.]+)"', header).group(1)
    wire = int(re.search(r"kWireProtocolVersion = (\d+);", header).group(1))
    assert tessera.__version__ == release
    assert tessera.version_info() == {"version": release, "wire_protocol": wire,
                                      "atom_store_format": re.search(r'kAtomStoreFormat = "([^"]+)"', header).group(1)}
    assert f"version = {wire} " in (root / "docs" / "wire-protocol.md").read_text()  # the document agrees
    assert f"## {release}" in (root / "CHANGELOG.md").read_text()  # and the changelog has an entry for it
    assert 'version = "' not in (root / "pyproject.toml").read_text()  # no second copy
    r = subprocess.run([sys.executable, "-m", "tessera", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and f"tessera {release} (wire protocol v{wire}" in r.stdout, r.stdout + r.stderr


PUBLIC_MODULES = ["tessera", "tessera.atoms", "tessera.planning", "tessera.profiling", "tessera.predict",
                  "tessera.runtime", "tessera.adapt", "tessera.transport", "tessera.pipeline", "tessera.power",
                  "tessera.variant", "tessera.datasets", "tessera.experiment", "tessera.zoo", "tessera.cli"]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_there_and_documented(module):
    import importlib
    import inspect
    m = importlib.import_module(module)
    assert (m.__doc__ or "").strip(), f"{module} has no module docstring"
    names = getattr(m, "__all__", None)
    assert names, f"{module} has no __all__"
    assert len(set(names)) == len(names), f"{module}.__all__ lists a name twice"
    problems = []
    for n in names:
        if not hasattr(m, n):
            problems.append(f"{n}: missing")
            continue
        o = getattr(m, n)
        if n.startswith("__") or isinstance(o, (str, tuple, int, float, dict)):
            continue
        if not (inspect.getdoc(o) or "").strip():
            problems.append(f"{n}: no docstring")
    assert not problems, f"{module}: " + "; ".join(problems)


def test_the_package_names_what_users_reach_for():
    import tessera as ts
    for n in ("plan", "plans", "evaluate", "Planner", "ParametricPlanner", "Plan", "Deployment", "Server",
              "AdaptiveDeployment", "predict", "variants", "Pipeline"):
        assert n in ts.__all__, n
    assert callable(ts.plan) and ts.plan.__module__ == "tessera.planning"  # the function, not a module
    import tessera.planning as tp
    assert tp.Planner is ts.Planner and ts.predict.train is not None


@pytest.mark.parametrize("old,new,name", [("plan", "planning", "ParametricPlanner"),
                                          ("profile", "profiling", "CostTable")])
def test_the_old_module_names_still_work_with_a_warning(old, new, name):
    import importlib
    import warnings

    import tessera as ts
    assert callable(getattr(ts, old))  # tessera.plan / tessera.profile: the functions
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mod = importlib.import_module(f"tessera.{old}")
        assert getattr(mod, name) is getattr(ts, name)
    assert any(issubclass(x.category, DeprecationWarning) and f"tessera.{new}" in str(x.message) for x in w)


def test_evaluate_prices_a_placement_as_the_planner_did():
    import tessera as ts
    path, xs = ts.zoo.torchscript("squeezenet1_0")
    m = ts.load(str(path), xs)
    n = m.num_atoms
    costs = {"device": [1.0 + (a % 5) for a in range(n)], "server": [0.1] * n}
    p = ts.plan(m, costs, bandwidth_mbps=5.0, rtt_ms=10)
    again = ts.evaluate(m, costs, p.placement, bandwidth_mbps=5.0, rtt_ms=10)
    assert again.placement == p.placement
    assert again.latency_ms == pytest.approx(p.latency_ms, rel=1e-12)
    slower = ts.evaluate(m, costs, p.placement, bandwidth_mbps=0.5, rtt_ms=10)
    assert slower.latency_ms >= again.latency_ms


def test_the_engine_stub_is_current_and_python():
    """python/tessera/_core.pyi (editors, type checkers) is what scripts/gen_stubs.py writes from
    the built engine's own signatures: regenerate it after changing the bindings."""
    root = PKG.parents[1]
    stub = (PKG / "_core.pyi").read_text()
    ast.parse(stub)
    assert "class Deployment:" in stub and "def plan_pipeline(" in stub
    r = subprocess.run([sys.executable, str(root / "scripts" / "gen_stubs.py"), "--check"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_brute_force_beyond_its_limit_is_an_invalid_argument():
    """tessera.testing raises the engine's error kinds too (a ValueError still)."""
    import random

    import tessera as ts
    from tessera import testing
    dag = testing.random_dag(random.Random(1), testing.BRUTE_FORCE_MAX_ATOMS + 1)
    n = dag.num_atoms
    with pytest.raises(ts.InvalidArgumentError, match="at most"):
        testing.brute_force(dag, [1.0] * n, [1.0] * n, bandwidth_mbps=1.0)
