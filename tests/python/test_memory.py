"""A process that opens only some atoms holds only their weights (measured as RSS growth)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
import tessera as ts
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
atoms = None if sys.argv[2] == "all" else list(range(int(sys.argv[2])))
m = ts.Model.open(sys.argv[1], atoms=atoms)
print(json.dumps({"growth": rss() - before, "params": m.loaded_param_bytes()}))
"""


@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
def test_partial_open_holds_only_its_weights(name, zoo_model, tmp_path):
    m, _, _ = zoo_model(name)
    store = tmp_path / name
    m.save(store)
    half = m.num_atoms // 2
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))

    def measure(arg):
        r = subprocess.run([sys.executable, "-c", PROBE, str(store), arg], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    part, full = measure(str(half)), measure("all")
    total = sum(a.param_bytes for a in m.atoms)
    assert part["params"] == sum(a.param_bytes for a in m.atoms[:half])
    assert full["params"] == total
    # the half-device process grows by its own weights plus a bounded overhead, far less than the whole store
    assert full["growth"] > 0.8 * total
    assert part["growth"] < part["params"] + 0.25 * total, (part, full, total)
    print(f"{name}: first {half} atoms hold {part['params'] / 1e6:.1f} of {total / 1e6:.1f} MB; RSS growth "
          f"{part['growth'] / 1e6:.1f} MB vs {full['growth'] / 1e6:.1f} MB for the whole store")
