"""Builds notebooks/04_adaptive_deployment.ipynb (run: .venv/bin/python notebooks/src/build_04.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Adaptive deployment on a real bandwidth trace

A device runs a DNN with an edge server reached over an uplink whose bandwidth changes
(a 3G trace recorded on a bus in Oslo, from `../shared/traces`, or a synthetic one when the
traces are not beside the project). tessera watches its own transfers, re-plans with the
parametric planner (a lookup) and switches plans between requests. We compare it with
static plans and with an oracle that knows the true bandwidth of every request.

Emulation: the device is 10x slower than this machine (compute accounted x10); the link is
emulated in the transport (token bucket over the trace + rtt/2 per message), its time
accounted rather than slept so the replay is quick. The server is a real process."""),
    code("""import os, pathlib, statistics, tempfile
import torch
import tessera as ts
from tessera import experiment, zoo
from tessera.runtime import spawn_server

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
torch.set_num_threads(1)
name = "squeezenet1_0" if SMOKE else "googlenet"
requests = 20 if SMOKE else 90
path, xs = zoo.torchscript(name)
m = ts.load(str(path), xs)
ct = ts.profile(m, xs, threads=1, repeats=3 if SMOKE else 10, warmup=2)
costs = experiment.costs_from_profile(ct, device_slowdown=10)
print(m, ct)"""),
    code("""candidates = [pathlib.Path.cwd().parent / "shared" / "traces", pathlib.Path("../../shared/traces"),
              pathlib.Path(ts.__file__).resolve().parents[2].parent / "shared" / "traces"]
tdir = next((p for p in candidates if p.is_dir()), None)
if tdir is not None:
    trace_file = sorted((tdir / "norway-hsdpa").glob("bus*.txt"))[0]
    samples = ts.read_trace(trace_file)
    label = trace_file.name
else:  # a synthetic trace: 3G-like levels with a dead zone
    samples = [(t, bw) for t, bw in enumerate([2.0] * 15 + [0.3] * 15 + [4.0] * 30 + [0.15] * 15 + [3.0] * 30)]
    label = "synthetic"
scale = 5.85 / statistics.median([bw for t, bw in samples if t < requests])   # into DADS's 4G range
link = {"trace": samples, "scale": scale, "rtt_ms": 20.0}
print(label, f"scaled x{scale:.2f}; mean {ts.Link(**link).mean_bandwidth:.2f} Mbit/s over the whole trace")"""),
    code("""repo = pathlib.Path(tempfile.mkdtemp())
m.save(repo / name)
server, endpoint = spawn_server(repo)          # `tessera serve REPO` in another process
runs = experiment.replay(m, xs, costs, endpoint, link, requests=requests, device_slowdown=10)
server.terminate(); server.wait(timeout=30)
for row in experiment.summary_rows(runs):
    print(row)"""),
    md("Bandwidth (true and estimated), where the cut falls (atoms kept on the device), and latency per request:"),
    code("""fig = experiment.plot(runs, title=f"{name} on {label} (x{scale:.2f}), device x10")
a = runs["adaptive"]
print(f"adaptive: {a.switches} plan switches, decision median {statistics.median(a.decide_us):.1f} us")"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "04_adaptive_deployment.ipynb"))
