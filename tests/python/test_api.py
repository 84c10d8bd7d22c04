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
                  "tessera.variant", "tessera.datasets", "tessera.experiment", "tessera.zoo", "tessera.cli",
                  "tessera.types", "tessera.training"]


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
        if _is_type_alias(o):  # a typing alias has no docstring of its own: a "#:" comment (Sphinx reads it)
            if not _alias_comment(m, n):
                problems.append(f"{n}: a type alias without a '#:' comment before it")
            continue
        doc = (inspect.getdoc(o) or "").strip()
        if not doc:
            problems.append(f"{n}: no docstring")
        elif _signature_only(o, doc):
            problems.append(f"{n}: its docstring is only the engine's signature (wrap it with a docstring)")
    assert not problems, f"{module}: " + "; ".join(problems)


def _is_type_alias(obj) -> bool:
    import typing
    return typing.get_origin(obj) is not None


def _alias_comment(module, name: str) -> bool:
    """The module's source has a "#:" documentation comment right before ``name = ...``."""
    import inspect
    lines = inspect.getsource(module).splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{name} = "):
            return i > 0 and lines[i - 1].startswith("#:")
    return False


def _signature_only(obj, doc: str) -> bool:
    """A bound engine function re-exported as is whose docstring pybind11 wrote from its signature alone."""
    import re
    if type(obj).__name__ != "builtin_function_or_method":
        return False
    lines = [line for line in doc.splitlines() if line.strip()]
    return all(re.match(r"^(\d+\. )?\w+\(.*\)( -> .*)?$", line) or line.startswith("Overloaded function")
               for line in lines)


# What the benchmarks and notebooks reach for, by module: each a public, documented name (issue 19).
BUILDING_BLOCKS = {
    "tessera.planning": ["AtomDag", "DagValue", "CostModel", "Context", "Constraints", "make_context",
                         "make_constraints", "make_cost_model", "planner_names", "Planner", "ParametricPlanner"],
    "tessera.pipeline": ["PipelineNode", "PipelineNetwork", "evaluate_pipeline", "plan_pipeline_convex_brute_force",
                         "plan_pipeline", "PipelinePlan"],
    "tessera.power": ["energy", "energy_hull", "energy_oracle_from_hulls", "plan_energy", "EnergyController"],
    "tessera.predict": ["feature_names", "evaluate", "features"],
    "tessera.variant": ["codec_timing", "VariantSelector"],
}


@pytest.mark.parametrize("module", sorted(BUILDING_BLOCKS))
def test_the_building_blocks_are_public_and_documented(module):
    import importlib
    import inspect
    m = importlib.import_module(module)
    for n in BUILDING_BLOCKS[module]:
        assert n in m.__all__, f"{module}.{n} is not in __all__"
        assert (inspect.getdoc(getattr(m, n)) or "").strip(), f"{module}.{n} has no docstring"
    import tessera as ts
    for cls, attrs in ((ts.Plan, ("core",)), (ts.Planner, ("core",)), (ts.ParametricPlanner, ("core",)),
                       (ts.pipeline.PipelinePlan, ("core", "core_network")),
                       (ts.Deployment, ("run_flat", "probe"))):
        for a in attrs:
            assert (inspect.getdoc(getattr(cls, a)) or "").strip(), f"{cls.__name__}.{a}"


def _user_facing_files():
    root = PKG.parents[1]
    return (sorted(root.glob("bench/*.py")) + sorted((root / "examples").rglob("*.py"))
            + sorted(root.glob("notebooks/*.ipynb")))


def _private_reaches(path) -> list:
    """Lines of a benchmark, example or notebook (every cell's source) that reach into the engine
    module or import tessera's modules by name instead of using the public API."""
    import json
    import re
    if path.suffix == ".ipynb":
        lines = [line for c in json.loads(path.read_text())["cells"] for line in "".join(c["source"]).splitlines()]
    else:
        lines = path.read_text().splitlines()
    bad = re.compile(r"_core|importlib\.import_module\(\s*[\"']tessera"
                     r"|from tessera[.\w]* import .*(?<![\w.])_[a-z]|\bts\.(?:\w+\.)*_[a-z]")
    return [line.strip() for line in lines if bad.search(line)]


def test_user_facing_code_needs_no_private_module():
    """Issue 19, one public API: no benchmark, example or notebook needs tessera._core or importlib."""
    files = _user_facing_files()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.parent.name == "bench" for p in files)
    offenders = {str(p.relative_to(PKG.parents[1])): r for p in files if (r := _private_reaches(p))}
    assert not offenders, "use the public names (tessera.<name>, tessera.planning.<name>, ...): " + "; ".join(
        f"{p}: {r[:3]}" for p, r in offenders.items())


def test_the_private_reach_check_can_fail(tmp_path):
    py, nb = tmp_path / "b.py", tmp_path / "n.ipynb"
    py.write_text("import tessera as ts\nctx = ts._core.Context(bandwidth_mbps=1.0)\n")
    nb.write_text('{"cells": [{"cell_type": "code", "source": ["m = importlib.import_module(\'tessera.plan\')"]}]}')
    assert _private_reaches(py) == ["ctx = ts._core.Context(bandwidth_mbps=1.0)"]
    py.write_text("from tessera.variant import _cut_tensors, calibrate_batchnorm\nx = ts.variant._helper(1)\n"
                  "from tessera.variant import cut_tensors\n")
    assert len(_private_reaches(py)) == 2  # private names of public modules too
    assert len(_private_reaches(nb)) == 1


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


def test_wrappers_read_their_bound_objects_through():
    """Plan and CostTable expose their bound objects (issue 19): every public field of the C++
    object reads through the wrapper, dir() lists it, it stays read-only; the list fields are copies."""
    import copy
    import random

    import torch

    import tessera as ts
    from tessera import testing
    dag = testing.random_dag(random.Random(2), 10)
    n = dag.num_atoms
    p = ts.plan(dag, {"device": [1.0 + a for a in range(n)], "server": [0.2] * n}, bandwidth_mbps=4.0, rtt_ms=5.0)
    m = ts.load(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval(), torch.randn(1, 8))
    t = ts.profile(m, torch.randn(1, 8), threads=1, repeats=1, warmup=0)
    for w in (p, t):
        core = w._core
        fields = [f for f in dir(core) if not f.startswith("_") and not callable(getattr(core, f))]
        assert fields and set(fields) <= set(dir(w))
        for f in fields:
            mine, theirs = getattr(w, f), getattr(core, f)
            if isinstance(mine, list):  # a copy; bound elements (blocks, transfers) are new objects each read
                assert len(mine) == len(theirs) and all(
                    a == b for a, b in zip(mine, theirs) if isinstance(a, (int, float, str))), f
            else:
                assert mine == theirs, f
        with pytest.raises(AttributeError):
            setattr(w, fields[0], getattr(core, fields[0]))
        with pytest.raises(AttributeError):
            w.no_such_field
        assert copy.copy(w)._core is core
    assert p.core is p._core and p.placement is not p.placement and p.rtt_ms == 5.0


# Issue 19, "type hints on the public functions ... so editors and notebooks complete and check it".
TYPED_MODULES = ["tessera", "tessera.atoms", "tessera.planning", "tessera.profiling", "tessera.predict",
                 "tessera.runtime", "tessera.transport", "tessera.adapt", "tessera.experiment", "tessera.pipeline",
                 "tessera.power", "tessera.variant", "tessera.datasets", "tessera.zoo", "tessera.testing",
                 "tessera.types", "tessera.training"]


def _public_callables(module) -> list:
    """(name, function) of every function a module lists in __all__ and of every public method
    (with __init__ and __call__), class- and static method and property getter of the classes it
    lists, written in Python (the engine's bound classes are typed by _core.pyi)."""
    import importlib
    import inspect
    m = importlib.import_module(module)
    out = []
    for n in m.__all__:
        o = getattr(m, n)
        if inspect.isfunction(o):
            out.append((n, o))
        elif inspect.isclass(o) and o.__module__.startswith("tessera.") and o.__module__ != "tessera._core":
            for a, member in vars(o).items():
                if a.startswith("_") and a not in ("__init__", "__call__"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member) and member.__qualname__.startswith(o.__qualname__ + "."):
                    out.append((f"{n}.{a}", member))  # written in the class (not typing's Protocol __init__)
    return out


def _missing_annotations(fn) -> list:
    import inspect
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty
               and p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


@pytest.mark.parametrize("module", TYPED_MODULES)
def test_every_public_function_is_annotated(module):
    """Every parameter (but self, cls, *args, **kwargs) and every return of the public functions
    and methods carries an annotation, and each resolves (typing.get_type_hints): an annotation
    naming something that does not exist, or that is imported only for type checkers, fails."""
    import typing
    found = _public_callables(module)
    assert found or module == "tessera.types", f"{module}: no public function found"
    problems = []
    for name, fn in found:
        missing = _missing_annotations(fn)
        if missing:
            problems.append(f"{name}: no annotation on {', '.join(missing)}")
        try:
            typing.get_type_hints(fn)
        except Exception as e:  # NameError, AttributeError, TypeError of a bad annotation
            problems.append(f"{name}: its annotations do not resolve ({type(e).__name__}: {e})")
    assert not problems, f"{module}: " + "; ".join(problems)


def test_the_annotation_check_can_fail():
    import typing

    def bare(model, costs):
        return None

    def good(model: int, costs: "dict[str, list[float]]") -> None:
        return None

    def dangling(model: "NoSuchType") -> None:  # noqa: F821
        return None

    assert _missing_annotations(bare) == ["model", "costs", "return"]
    assert _missing_annotations(good) == []
    assert typing.get_type_hints(good)["costs"] == dict[str, list[float]]
    with pytest.raises(NameError):
        typing.get_type_hints(dangling)


def test_the_type_aliases_say_what_the_functions_take():
    import random
    import typing

    import torch

    import tessera as ts
    from tessera import types as tt
    assert ts.types is tt and "types" not in ts.__all__  # ts.types, but never `from tessera import *`'s
    assert torch.Tensor in typing.get_args(tt.Inputs)
    assert ts.planning.AtomDag in typing.get_args(tt.ModelLike)
    m = ts.load(torch.nn.Sequential(torch.nn.Linear(4, 4)).eval(), torch.randn(1, 4))
    assert isinstance(m, tt.HasDag) and not isinstance([1.0], tt.HasDag)  # a Model is what planners plan
    assert isinstance(ts.testing.random_dag(random.Random(3), 4), ts.planning.AtomDag)
    t = ts.profile(m, torch.randn(1, 4), threads=1, repeats=1, warmup=0)
    assert isinstance(t, tt.HasAtomMs)  # a CostTable is per-atom costs
    keys = set(tt.CostsDict.__annotations__)
    assert keys == {"device", "server", "energy", "energy_mj_per_byte"}
    with pytest.raises(ts.InvalidArgumentError) as e:  # the planner knows the same keys
        ts.plan(m, {"device": t, "server": [0.1] * m.num_atoms, "bogus": 1}, bandwidth_mbps=10.0)
    assert all(k in str(e.value) for k in keys)
    p = ts.plan(m, tt.CostsDict(device=t, server=[0.1] * m.num_atoms), bandwidth_mbps=10.0)
    assert len(p.placement) == m.num_atoms
