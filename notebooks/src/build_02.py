"""Builds notebooks/02_planners.ipynb (run: .venv/bin/python notebooks/src/build_02.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Planners against bandwidth

Every tessera planner on two real models: predicted end-to-end latency from 0.1 to 100
Mbit/s, the parametric planner's breakpoints (where the optimal plan changes), and where
the cut falls. Costs are profiled on this machine (1 thread); the device is taken 10x
slower (a phone-class device), rtt 20 ms. gads plans under a device memory budget of 30%
of the model's parameters; the other planners ignore the budget."""),
    code("""import os, time
import numpy as np
import matplotlib.pyplot as plt
import torch
import tessera as ts
from tessera import zoo

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
torch.set_num_threads(1)
names = ["resnet18", "mobilenet_v2"] if SMOKE else ["resnet50", "googlenet"]
RTT, SLOWDOWN = 20.0, 10.0
bws = np.logspace(-1, 2, 25 if SMOKE else 80)   # 0.1 .. 100 Mbit/s
models = {}
for name in names:
    path, xs = zoo.torchscript(name)
    m = ts.load(str(path), xs)
    ct = ts.profile(m, xs, threads=1, repeats=3 if SMOKE else 10, warmup=2)
    costs = {"device": [SLOWDOWN * c for c in ct.atom_ms], "server": ct.atom_ms}
    models[name] = (m, costs)
    print(f"{name}: {m.num_atoms} atoms, device {sum(costs['device']):.0f} ms, server {sum(costs['server']):.1f} ms, "
          f"{sum(m.dag().param_bytes) / 1e6:.1f} MB of parameters")"""),
    md("""Every planner is prepared once per model (`ts.Planner`: graphs built once), then
re-planned at each bandwidth; the parametric planner computes the whole envelope once."""),
    code("""ALGS = ts.planner_names()
results = {}
for name, (m, costs) in models.items():
    budget = 0.3 * sum(m.dag().param_bytes)
    planners = {a: ts.Planner(m, costs, a) for a in ALGS}
    lat = {a: [] for a in ALGS}
    fps = {a: [] for a in ALGS}
    on_device = {a: [] for a in ALGS}
    decide_us = {a: [] for a in ALGS}
    current = None
    for bw in bws:
        for a, p in planners.items():
            cons = {"device_memory_bytes": budget} if a == "gads" else None
            t0 = time.perf_counter()
            plan = p.plan(bw, rtt_ms=RTT, constraints=cons, current=current if a == "gads" else None)
            decide_us[a].append((time.perf_counter() - t0) * 1e6)
            if a == "gads":
                current = plan
            lat[a].append(plan.latency_ms)
            fps[a].append(plan.throughput_fps)
            on_device[a].append(plan.placement)
    par = ts.ParametricPlanner(m, costs, rtt_ms=RTT)
    results[name] = dict(lat=lat, fps=fps, on_device=on_device, decide_us=decide_us, par=par, budget=budget)
    print(name, "median decision us:", {a: round(float(np.median(v)), 1) for a, v in decide_us.items()})
    print(name, f"parametric: {len(par.segments)} plans, breakpoints (Mbit/s):",
          [round(b, 3) for b in par.breakpoints() if 0.1 <= b <= 100])"""),
    md("""Predicted latency per planner (log-log). Dashed grey lines: the parametric planner's
breakpoints. mincut, compressed and parametric are exact and coincide; chain
(Neurosurgeon) is restricted to one split point; throughput maximises frames per second,
not latency; gads pays for keeping the device's parameters under the budget."""),
    code("""styles = {"device_only": ("k", ":"), "server_only": ("grey", ":"), "chain": ("tab:orange", "-"),
          "mincut": ("tab:blue", "-"), "compressed": ("tab:cyan", "--"), "parametric": ("tab:green", "-."),
          "throughput": ("tab:purple", "-"), "gads": ("tab:red", "-")}
fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
for ax, (name, r) in zip(axes[0], results.items()):
    for a in ALGS:
        c, ls = styles[a]
        label = f"gads (<= {r['budget'] / 1e6:.0f} MB on device)" if a == "gads" else a
        ax.plot(bws, r["lat"][a], color=c, linestyle=ls, label=label, lw=1.6)
    for b in r["par"].breakpoints():
        if bws[0] <= b <= bws[-1]:
            ax.axvline(b, color="grey", lw=0.8, ls="--", alpha=0.6)
    ax.set_xscale("log"); ax.set_yscale("log")
    ax.set_xlabel("bandwidth (Mbit/s)"); ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{name}: rtt {RTT:g} ms, device x{SLOWDOWN:g}")
    ax.grid(True, which="both", alpha=0.3)
axes[0][0].legend(fontsize=8)
plt.tight_layout(); plt.show()"""),
    md("""Where the cut falls: for each bandwidth (x) and atom (y, in topological order), the
colour says where the atom runs under the min-cut plan (blue: device, orange: server),
with gads under the memory budget beside it. At low bandwidth everything stays on the
device; as the link gets faster the cut moves towards the input until everything is
offloaded."""),
    code("""from matplotlib.colors import ListedColormap
cmap = ListedColormap(["tab:blue", "tab:orange"])
fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.6 * len(models)), squeeze=False)
for row, (name, r) in zip(axes, results.items()):
    for ax, a in zip(row, ["mincut", "gads"]):
        grid = np.array(r["on_device"][a]).T   # atoms x bandwidths, 0 device / 1 server
        ax.pcolormesh(bws, np.arange(grid.shape[0] + 1), np.vstack([grid, grid[-1:]]), cmap=cmap,
                      vmin=0, vmax=1, shading="auto")
        ax.set_xscale("log"); ax.set_xlabel("bandwidth (Mbit/s)"); ax.set_ylabel("atom (topological order)")
        ax.set_title(f"{name}: {a}" + (" under the memory budget" if a == "gads" else ""))
plt.tight_layout(); plt.show()"""),
    md("Atoms kept on the device, and the frame rate of a stream (the throughput planner's objective):"),
    code("""fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for name, r in results.items():
    for a, ls in [("mincut", "-"), ("chain", "--"), ("gads", ":")]:
        axes[0].plot(bws, [len(x) - sum(x) for x in r["on_device"][a]], ls, label=f"{name} {a}")
    for a, ls in [("mincut", "-"), ("throughput", "--")]:
        axes[1].plot(bws, r["fps"][a], ls, label=f"{name} {a}")
axes[0].set_ylabel("atoms on the device"); axes[1].set_ylabel("frames per second (pipelined)")
for ax in axes:
    ax.set_xscale("log"); ax.set_xlabel("bandwidth (Mbit/s)"); ax.grid(True, alpha=0.3); ax.legend(fontsize=8)
plt.tight_layout(); plt.show()"""),
    md("The min-cut plan at the DADS 4G bandwidth (5.85 Mbit/s), explained:"),
    code("""name = names[0]
m, costs = models[name]
print(ts.plan(m, costs, bandwidth_mbps=5.85, rtt_ms=RTT, algorithm="mincut").explain())"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "02_planners.ipynb"))
