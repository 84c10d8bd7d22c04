"""Writes python/tessera/_core.pyi: a type stub of the compiled engine, from its own signatures.

pybind11 puts each function's signature on the first line of its docstring
(``name(arg: type, ...) -> type``; overloads as a numbered list). This turns them into a stub
editors and type checkers read; a signature that does not parse as Python (an unregistered C++
type) becomes ``Any``. Run after changing the bindings; tests/python/test_api.py checks the stub
in the tree is what this writes.

    .venv/bin/python scripts/gen_stubs.py [--check]
"""
from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "python" / "tessera" / "_core.pyi"


def _clean(sig: str) -> str:
    sig = sig.replace("tessera._core.", "").replace("at::Tensor", "torch.Tensor")
    sig = re.sub(r"\bnumpy\.ndarray\[[^\]]*\]", "Any", sig)
    sig = re.sub(r"\b[A-Za-z_]\w*(::[A-Za-z_]\w*)+(<[^>]*>)?", "Any", sig)  # an unregistered C++ type
    return sig


def _valid(src: str) -> bool:
    try:
        ast.parse(src)
        return True
    except SyntaxError:
        return False


def _defaults(sig: str) -> str:
    # "x: int = <tessera._core.Foo object at 0x...>" and other unparseable defaults -> "= ..."
    return re.sub(r"=\s*<[^>]*>", "= ...", sig)


def _signatures(name: str, doc: str | None) -> list[str]:
    """The 'name(...) -> T' lines of a pybind11 docstring (every overload)."""
    if not doc:
        return []
    lines = doc.strip().splitlines()
    out = []
    if any(line.startswith("Overloaded function.") for line in lines[:2]):
        for line in lines:
            m = re.match(r"^\d+\. (" + re.escape(name) + r"\(.*\).*)$", line)
            if m:
                out.append(m.group(1))
    elif lines and lines[0].startswith(name + "("):
        out.append(lines[0])
    return out


def _func(name: str, obj, indent: str, method: bool) -> list[str]:
    sigs = _signatures(name, getattr(obj, "__doc__", None))
    lines = []
    overload = len(sigs) > 1
    for sig in sigs or [None]:
        if sig is None:
            src = f"def {name}(self, *args: Any, **kwargs: Any) -> Any: ..." if method else \
                f"def {name}(*args: Any, **kwargs: Any) -> Any: ..."
        else:
            src = f"def {_defaults(_clean(sig))}: ..."
            if "->" not in sig:
                src = src.replace("): ...", ") -> Any: ...")
            if not _valid(src):
                src = f"def {name}(self, *args: Any, **kwargs: Any) -> Any: ..." if method else \
                    f"def {name}(*args: Any, **kwargs: Any) -> Any: ..."
        if overload:
            lines.append(f"{indent}@overload")
        lines.append(indent + src)
    return lines


def _class(name: str, cls) -> list[str]:
    bases = [b.__name__ for b in cls.__bases__ if b.__module__ == cls.__module__]
    if not bases and issubclass(cls, BaseException):
        bases = [b.__name__ for b in cls.__bases__]
    out = [f"class {name}({', '.join(bases)}):" if bases else f"class {name}:"]
    doc = inspect.getdoc(cls)
    if doc and not doc.startswith(name + "("):
        out.append('    """' + doc.splitlines()[0].replace('"""', "'''") + '"""')
    body = []
    members = getattr(cls, "__members__", None)
    if isinstance(members, dict):  # a pybind11 enum
        for m in members:
            body.append(f"    {m}: {name}")
    for attr, val in sorted(vars(cls).items()):
        if attr.startswith("_") and attr not in ("__init__", "__call__", "__len__", "__getitem__", "__iter__"):
            continue
        if isinstance(members, dict) and attr in members:
            continue
        if isinstance(val, property):
            sig = _signatures("", getattr(val.fget, "__doc__", None) if val.fget else None)
            ret = "Any"
            doc_line = (getattr(val.fget, "__doc__", "") or "").strip().splitlines()
            if doc_line and "->" in doc_line[0]:
                ret = _clean(doc_line[0].rsplit("->", 1)[1].strip()) or "Any"
                if not _valid(f"x: {ret}"):
                    ret = "Any"
            body.append(f"    {attr}: {ret}")
        elif callable(val) or type(val).__name__ in ("instancemethod",):
            body += _func(attr, val, "    ", method=True)
        elif isinstance(val, staticmethod):
            body.append("    @staticmethod")
            body += _func(attr, val.__func__, "    ", method=False)
    return out + (body or ["    ..."])


def generate() -> str:
    import tessera  # noqa: F401  (torch first, then the extension)
    from tessera import _core
    out = ['"""Type stub of tessera._core (the compiled engine), written by scripts/gen_stubs.py: do not edit."""',
           "from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload",
           "",
           "import torch",
           ""]
    names = sorted(n for n in dir(_core) if not n.startswith("_"))
    classes = [n for n in names if inspect.isclass(getattr(_core, n))]
    # base classes first
    ordered, seen = [], set()

    def visit(n):
        if n in seen:
            return
        seen.add(n)
        for b in getattr(_core, n).__bases__:
            if b.__module__ == _core.__name__ and b.__name__ in classes:
                visit(b.__name__)
        ordered.append(n)
    for n in classes:
        visit(n)
    for n in ordered:
        out += _class(n, getattr(_core, n)) + [""]
    for n in names:
        obj = getattr(_core, n)
        if inspect.isclass(obj) or inspect.ismodule(obj):
            continue
        if callable(obj):
            out += _func(n, obj, "", method=False)
        else:
            out.append(f"{n}: {type(obj).__name__}")
    out.append("__version__: str")
    text = "\n".join(out) + "\n"
    ast.parse(text)  # the stub is Python
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the stub in the tree is not current")
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run scripts/gen_stubs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
