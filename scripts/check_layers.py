#!/usr/bin/env python3
"""Layering check of the C++ code (issue 13).

    python3 scripts/check_layers.py [ROOT]            exit 0 when clean, 1 on violations
    python3 scripts/check_layers.py --graph [ROOT]    also print layer -> layer include counts

Scans every `#include "..."` / `#include <tessera/...>` (and torch includes, for the
torch-free rule) in the C/C++ files of SCANNED and prints one line per violation:
`file:line: #include <what>: <rule broken>`.
"""
import argparse
import os
import re
import sys
from collections import Counter

# The layer picture; docs/ARCHITECTURE.md must show the same one (keep them in sync).
# layer -> the layers it may include besides itself and core.
LAYERS = {
    "core":      [],
    "graph":     ["core"],
    "atoms":     ["graph", "core"],
    "plan":      ["core"],
    "predict":   ["atoms", "graph", "core"],  # torch-free headers only; not enforced here
    "profile":   ["atoms", "graph", "predict", "core"],
    "transport": ["graph", "core"],  # graph: LibTorch tensors <-> the dtype table (graph/tensor.h)
    "runtime":   ["atoms", "graph", "plan", "transport", "core"],
    "adapt":     ["runtime", "plan", "transport", "atoms", "graph", "core"],
}
# Layers whose public headers and sources must not include torch / ATen / c10 ...
TORCH_FREE = {"core", "plan"}
# ... and single public headers of torch layers that must stay torch-free (products read
# them without LibTorch: the op graph, atoms, the wire format, the emulated link, the
# server's and the adaptation's interfaces).
TORCH_FREE_HEADERS = {
    "cpp/include/tessera/graph/op_graph.h",
    "cpp/include/tessera/atoms/atom.h",
    "cpp/include/tessera/atoms/manifest.h",
    "cpp/include/tessera/transport/wire.h",
    "cpp/include/tessera/transport/link.h",
    "cpp/include/tessera/runtime/server.h",
    "cpp/include/tessera/adapt/monitor.h",
    "cpp/include/tessera/adapt/policy.h",
}
TORCH_PREFIXES = ("torch/", "ATen/", "c10/")

PUBLIC = "cpp/include/tessera"
PRIVATE = "cpp/src"
UMBRELLA = PUBLIC + "/tessera.h"
SCANNED = [PUBLIC, PRIVATE, "cpp/tools", "python/src", "tests/cpp", "bench"]
EXTENSIONS = {".h", ".hh", ".hpp", ".hxx", ".inl", ".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    """(kind, layer) of a file or include target, path relative to ROOT with '/'.

    kind: 'public' (cpp/include/tessera/<layer>/...), 'private' (cpp/src/<layer>/...),
    'umbrella' (cpp/include/tessera/tessera.h), 'layer_umbrella' (cpp/include/tessera/<layer>.h:
    one include for a layer's public headers), 'stray' (directly in one of the two roots), or
    None (outside the layers: bindings, tools, tests, bench, third party).
    """
    if path == UMBRELLA:
        return "umbrella", None
    if path.startswith(PUBLIC + "/") and "/" not in path[len(PUBLIC) + 1:] and path.endswith(".h") \
            and path[len(PUBLIC) + 1:-2] in LAYERS:
        return "layer_umbrella", path[len(PUBLIC) + 1:-2]
    for kind, base in (("public", PUBLIC), ("private", PRIVATE)):
        if path.startswith(base + "/"):
            parts = path[len(base) + 1:].split("/")
            return (kind, parts[0]) if len(parts) > 1 else ("stray", None)
    return None, None


def resolve(src, name):
    """The ROOT-relative path an include names, or None when outside the tree."""
    if name.startswith("tessera/"):
        return "cpp/include/" + name
    target = os.path.normpath(os.path.join(os.path.dirname(src), name)).replace(os.sep, "/")
    return None if target.startswith("../") else target


def check_include(src, src_kind, src_layer, bracket, name):
    """The rule an include breaks (a string), or None; also returns the edge (from, to)."""
    if name.split("/")[0] + "/" in TORCH_PREFIXES:
        if src_layer in TORCH_FREE:
            return f"torch-free: sources and public headers of layer '{src_layer}' must not include torch/ATen/c10", None
        if src in TORCH_FREE_HEADERS:
            return "torch-free: this public header must not include torch/ATen/c10 (TORCH_FREE_HEADERS)", None
        return None, None
    if bracket == "<" and not name.startswith("tessera/"):
        return None, None
    kind, layer = layer_of(resolve(src, name) or "")
    edge = (src_layer or src_kind, layer) if src_kind in ("public", "private", "umbrella") else None
    if src_kind == "layer_umbrella":
        edge = None  # a layer's own headers, gathered
    if kind is None:
        return None, None
    if kind == "stray":
        return "not a header of any layer (public headers live in tessera/<layer>/)", None
    if kind in ("umbrella", "layer_umbrella"):
        if src_kind in ("public", "private"):
            return f"layer '{src_layer}' must not include an umbrella header ({name})", edge
        if src_kind == "layer_umbrella":
            return f"the umbrella header of layer '{src_layer}' includes only tessera/{src_layer}/ headers", edge
        return None, edge
    if src_kind == "layer_umbrella" and not (kind == "public" and layer == src_layer):
        return f"the umbrella header of layer '{src_layer}' includes only tessera/{src_layer}/ headers", edge
    if layer not in LAYERS:
        return f"unknown layer '{layer}' (add it to LAYERS in scripts/check_layers.py)", edge
    if kind == "private" and not (src_kind == "private" and src_layer == layer):
        who = {"public": f"a public header of '{src_layer}'", "private": f"layer '{src_layer}'",
               "umbrella": "the umbrella header"}.get(src_kind, os.path.dirname(src) + "/")
        return (f"private header of '{layer}' (cpp/src/{layer}/) included from {who}; "
                f"only cpp/src/{layer}/ may include it"), edge
    if src_kind in ("public", "private") and src_layer in LAYERS:
        allowed = [src_layer, "core"] + LAYERS[src_layer]
        if layer not in allowed:
            return (f"layer '{src_layer}' must not include layer '{layer}' "
                    f"(allowed: {', '.join(dict.fromkeys(allowed))})"), edge
    return None, edge


def source_files(root):
    for top in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for f in sorted(filenames):
                if os.path.splitext(f)[1] in EXTENSIONS:
                    yield os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")


def check(root):
    """(violations as lines, Counter of layer -> layer include edges)."""
    violations, edges = [], Counter()
    for base in (PUBLIC, PRIVATE):
        full = os.path.join(root, base)
        for d in sorted(os.listdir(full)) if os.path.isdir(full) else []:
            if os.path.isdir(os.path.join(full, d)) and d not in LAYERS:
                violations.append(f"{base}/{d}/: unknown layer folder '{d}' "
                                  f"(add it to LAYERS in scripts/check_layers.py)")
    for src in source_files(root):
        src_kind, src_layer = layer_of(src)
        if src_kind == "stray":
            violations.append(f"{src}: file outside any layer folder")
            continue
        with open(os.path.join(root, src), encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                bracket, name = m.groups()
                rule, edge = check_include(src, src_kind, src_layer, bracket, name)
                if edge and edge[1] and edge[0] != edge[1]:
                    edges[edge] += 1
                if rule:
                    shown = f'"{name}"' if bracket == '"' else f"<{name}>"
                    violations.append(f"{src}:{lineno}: #include {shown}: {rule}")
    return violations, edges


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."),
                    help="repository root (default: the one this script is in)")
    ap.add_argument("--graph", action="store_true",
                    help="print the layer -> layer include edges found, with counts")
    args = ap.parse_args(argv)
    if not os.path.isdir(os.path.join(args.root, "cpp")):
        ap.error(f"{args.root}: no cpp/ folder here")
    violations, edges = check(args.root)
    if args.graph:
        print("layer -> layer include edges (count of #include lines):")
        for (a, b), n in sorted(edges.items()):
            ok = a == "umbrella" or b in LAYERS.get(a, []) or b == "core"
            print(f"  {a:>9} -> {b:<9} {n:3d}{'' if ok else '   NOT ALLOWED'}")
    for v in violations:
        print(v)
    if violations:
        print(f"{len(violations)} layering violation(s)", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
