"""The public surface (issue 19): no import circle among tessera's modules, the command line is
its own package (no argparse code in the library modules), `tessera --version`."""
import ast
import subprocess
import sys
from pathlib import Path

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


def test_version():
    import tessera
    r = subprocess.run([sys.executable, "-m", "tessera", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and tessera.__version__ in r.stdout, r.stdout + r.stderr
