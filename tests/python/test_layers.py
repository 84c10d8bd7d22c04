"""Layering check (issue 13): scripts/check_layers.py on the real tree and on synthetic trees.

Needs neither the compiled module nor torch (the checker is stdlib Python). Without a
build, run it with `python3 -m pytest --noconftest tests/python/test_layers.py`: the
shared conftest.py imports tessera.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_layers.py"

# A small tree that follows every rule: each layer uses what it may, torch where allowed.
CLEAN = {
    "cpp/include/tessera/tessera.h": '#include "tessera/core/error.h"\n#include "tessera/adapt/adaptive.h"\n'
                                     '#include "tessera/plan.h"\n',
    "cpp/include/tessera/plan.h": '#include "tessera/plan/plan.h"\n',
    "cpp/include/tessera/core/error.h": "#pragma once\n#include <string>\n",
    "cpp/src/core/error.cpp": '#include "tessera/core/error.h"\n',
    "cpp/include/tessera/graph/op_graph.h": '#include "tessera/core/error.h"\n',
    "cpp/src/graph/dtype.h": "#include <c10/core/ScalarType.h>\n",
    "cpp/src/graph/extract.cpp": '#include <torch/script.h>\n#include "dtype.h"\n#include "tessera/graph/op_graph.h"\n',
    "cpp/include/tessera/atoms/model.h": '#include <ATen/core/Tensor.h>\n#include "tessera/graph/op_graph.h"\n',
    "cpp/src/atoms/model_impl.h": '#include <torch/script.h>\n#include "tessera/atoms/model.h"\n',
    "cpp/src/atoms/model.cpp": '#include "model_impl.h"\n#include "../atoms/model_impl.h"\n#include "tessera/core/error.h"\n',
    "cpp/include/tessera/plan/plan.h": '#include <vector>\n#include "tessera/core/error.h"\n',
    "cpp/src/plan/plan.cpp": '#include "tessera/plan/plan.h"\n',
    "cpp/include/tessera/predict/features.h": '#include "tessera/atoms/model.h"\n#include "tessera/graph/op_graph.h"\n',
    "cpp/src/predict/predict_impl.h": '#include <nlohmann/json.hpp>\n#include "tessera/predict/features.h"\n',
    "cpp/src/predict/predictor.cpp": '#include "predict_impl.h"\n',
    "cpp/include/tessera/profile/profile.h": '#include "tessera/predict/features.h"\n',
    "cpp/include/tessera/transport/wire.h": '#include "tessera/core/error.h"\n',
    "cpp/src/transport/wire.cpp": '#include <ATen/ATen.h>\n#include "tessera/transport/wire.h"\n',
    "cpp/include/tessera/runtime/deployment.h":
        '#include "tessera/atoms/model.h"\n#include "tessera/plan/plan.h"\n#include "tessera/transport/wire.h"\n',
    "cpp/src/runtime/msg.h": '#include "tessera/graph/op_graph.h"\n',
    "cpp/src/runtime/deployment.cpp": '#include "tessera/runtime/deployment.h"\n#include "msg.h"\n',
    "cpp/include/tessera/adapt/adaptive.h": '#include "tessera/runtime/deployment.h"\n#include "tessera/plan/plan.h"\n',
    "cpp/src/adapt/adaptive.cpp": '#include "tessera/adapt/adaptive.h"\n',
    "cpp/tools/cli.cpp": '#include <torch/torch.h>\n#include "tessera/tessera.h"\n',
    "python/src/bind_adapt.cpp": '#include <torch/extension.h>\n#include <tessera/adapt/adaptive.h>\n#include "local.h"\n',
    "tests/cpp/plan/test_plan.cpp": '#include <gtest/gtest.h>\n#include "tessera/plan/plan.h"\n',
    "bench/micro.cpp": '#include "tessera/runtime/deployment.h"\n',
}


def make_tree(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def run_checker(root, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args, str(root)],
                          capture_output=True, text=True, timeout=120)


def test_real_tree_is_layered():
    r = run_checker(ROOT)
    assert r.returncode == 0, "layering violations:\n" + r.stdout + r.stderr


def test_clean_synthetic_tree_passes(tmp_path):
    r = run_checker(make_tree(tmp_path, CLEAN))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == ""


def test_graph_lists_layer_edges(tmp_path):
    r = run_checker(make_tree(tmp_path, CLEAN), "--graph")
    assert r.returncode == 0, r.stdout + r.stderr
    edges = {tuple(line.split()[:3:2]): int(line.split()[3])
             for line in r.stdout.splitlines() if line.startswith("  ")}
    assert edges[("runtime", "atoms")] == 1
    assert edges[("adapt", "plan")] == 1
    assert ("atoms", "atoms") not in edges  # a layer including itself is no edge
    assert "NOT ALLOWED" not in r.stdout


BROKEN = {
    "lower layer includes a higher one": (
        {"cpp/src/atoms/x.cpp": '#include "tessera/core/error.h"\n#include "tessera/plan/plan.h"\n'},
        "cpp/src/atoms/x.cpp:2:", "layer 'atoms' must not include layer 'plan'"),
    "public header includes a higher layer (<tessera/...>)": (
        {"cpp/include/tessera/plan/bad.h": "#include <tessera/runtime/deployment.h>\n"},
        "cpp/include/tessera/plan/bad.h:1:", "layer 'plan' must not include layer 'runtime'"),
    "another layer includes a private header": (
        {"cpp/src/runtime/y.cpp": '#include "tessera/core/error.h"\n#include "../atoms/model_impl.h"\n'},
        "cpp/src/runtime/y.cpp:2:", "private header of 'atoms'"),
    "a public header includes its own private header": (
        {"cpp/include/tessera/atoms/atom.h": '#include "../../../src/atoms/model_impl.h"\n'},
        "cpp/include/tessera/atoms/atom.h:1:", "private header of 'atoms'"),
    "a binding includes a private header": (
        {"python/src/bind_bad.cpp": '#include <pybind11/pybind11.h>\n#include "../../cpp/src/atoms/model_impl.h"\n'},
        "python/src/bind_bad.cpp:2:", "private header of 'atoms'"),
    "a C++ test includes a private header": (
        {"tests/cpp/predict/test_bad.cpp": '#include "../../../cpp/src/predict/predict_impl.h"\n'},
        "tests/cpp/predict/test_bad.cpp:1:", "private header of 'predict'"),
    "torch in a core source": (
        {"cpp/src/core/bad.cpp": '#include "tessera/core/error.h"\n#include <torch/script.h>\n'},
        "cpp/src/core/bad.cpp:2:", "torch-free"),
    "c10 in a plan public header": (
        {"cpp/include/tessera/plan/bad.h": "#include <c10/core/ScalarType.h>\n"},
        "cpp/include/tessera/plan/bad.h:1:", "torch-free"),
    "ATen in a transport public header": (
        {"cpp/include/tessera/transport/wire.h": "#include <ATen/ATen.h>\n"},
        "cpp/include/tessera/transport/wire.h:1:", "torch-free"),
    "unknown layer folder": (
        {"cpp/src/widgets/w.cpp": '#include "tessera/core/error.h"\n'},
        "cpp/src/widgets/", "unknown layer folder 'widgets'"),
    "include of an unknown layer's header": (
        {"cpp/tools/t.cpp": '#include "tessera/widgets/w.h"\n'},
        "cpp/tools/t.cpp:1:", "unknown layer 'widgets'"),
    "a layer includes a layer's umbrella header": (
        {"cpp/src/adapt/u.cpp": '#include "tessera/plan.h"\n'},
        "cpp/src/adapt/u.cpp:1:", "umbrella"),
    "a layer's umbrella header reaches into another layer": (
        {"cpp/include/tessera/plan.h": '#include "tessera/plan/plan.h"\n#include "tessera/runtime/server.h"\n'},
        "cpp/include/tessera/plan.h:2:", "includes only tessera/plan/"),
    "a layer includes the umbrella header": (
        {"cpp/src/plan/u.cpp": '#include "tessera/tessera.h"\n'},
        "cpp/src/plan/u.cpp:1:", "umbrella"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_synthetic_violation_fails(tmp_path, case):
    extra, where, rule = BROKEN[case]
    r = run_checker(make_tree(tmp_path, {**CLEAN, **extra}))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout  # exactly the one broken include, nothing from CLEAN
    assert lines[0].startswith(where) and rule in lines[0], lines[0]
