"""Builds notebooks/05_pipelines.ipynb (run: .venv/bin/python notebooks/src/build_05.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# A model over a device and several servers

A phone and a few edge boxes: tessera places the model's atoms in **stages**, one per node, in
pipeline order, so that a stream of frames keeps every node busy at once. This notebook places
a model on three nodes, draws the stages, streams frames through real `tessera serve` processes
(each stage's server forwards its values straight to the next), and plots the frame rate as
nodes are added.

Everything runs on this machine: node speeds are emulated (the phone is 10x slower than this
machine, servers 1x or 2x), links by their bandwidth and round trip. *Accounted* figures are
what the plan does with every node and link on its own machine (each stage's CPU time x its
node's slowdown, each hop's bytes over its link); *wall* figures are this machine's cores
shared by every process."""),
    code("""import os, pathlib, tempfile
import matplotlib.pyplot as plt
import torch
import tessera as ts
from tessera import zoo
from tessera.runtime import spawn_server, stop_server

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
ts.set_threads(1)   # LibTorch's threads and OpenBLAS's pool
name = "squeezenet1_0" if SMOKE else "resnet50"
path, xs = zoo.torchscript(name)
m = ts.load(str(path), xs)
ct = ts.profile(m, xs, threads=1, repeats=2 if SMOKE else 5, warmup=1)   # this machine = speed 1
print(m, f"{sum(ct.atom_ms):.1f} ms here, 1 thread")"""),
    md("""## Three nodes

The phone (10x slower) reaches `edge-a` over a 20 Mbit/s uplink; `edge-a` and `edge-b`
(twice as fast as this machine) sit on a 1 Gbit/s LAN. Pairs without a link are
unreachable. `pso_dp` searches which servers to use and in what order, with the exact DP
partition inside."""),
    code("""def network(k):
    speeds = [1.0, 2.0, 1.0, 2.0, 4.0][:k - 1]
    nodes = [ts.Node("phone", speed=0.1, reference=ct)]
    nodes += [ts.Node(f"edge-{chr(97 + i)}", speed=s, reference=ct) for i, s in enumerate(speeds)]
    links = {("phone", "edge-a"): ts.Link(bandwidth_mbps=20, rtt_ms=10)} if k > 1 else {}
    for i, a in enumerate(nodes[1:]):
        for b in nodes[i + 2:]:
            links[(a.name, b.name)] = (1000.0, 1.0)
    return ts.Network(nodes, links)

net = network(3)
plan = ts.plan_pipeline(m, net, objective="throughput", algorithm="pso_dp")
print(plan.explain())"""),
    md("Where the stages fall along the model (atoms in topological order) and what each costs per frame:"),
    code("""fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3))
colors = plt.cm.tab10.colors
for i, (node, atoms) in enumerate(plan.stages):
    if atoms:
        ax1.barh(0, len(atoms), left=min(atoms), color=colors[i], label=f"stage {i}: {node} ({len(atoms)} atoms)")
ax1.set_xlim(0, m.num_atoms); ax1.set_yticks([]); ax1.set_xlabel("atom (topological order)")
ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
names = [n for n, _ in plan.stages]
ax2.barh(range(len(names)), plan.stage_ms, color=[colors[i] for i in range(len(names))], label="compute")
ax2.barh([i + 0.3 for i in range(len(names))], plan.link_ms[:len(names)], height=0.3, color="0.5",
         label="link after the stage")
ax2.axvline(plan.bottleneck_ms, color="k", ls="--", lw=0.8, label=f"bottleneck: {plan.bottleneck}")
ax2.set_yticks(range(len(names))); ax2.set_yticklabels(names); ax2.invert_yaxis()
ax2.set_xlabel("ms per frame (predicted)"); ax2.legend(fontsize=8)
plt.tight_layout()"""),
    md("""## Streaming frames

One `tessera serve` process per server node; `ts.Pipeline` runs the phone's stage here and keeps
up to `in_flight` frames travelling. Every output is checked against the unsplit model."""),
    code("""repo = pathlib.Path(tempfile.mkdtemp())
m.save(repo / name)
procs, endpoints = [], {}
for node in net.nodes[1:]:
    proc, ep = spawn_server(repo / name)
    procs.append(proc)
    endpoints[node.name] = ep
frames = [tuple(x + 0.01 * i for x in xs) for i in range(6 if SMOKE else 24)]
pipe = ts.Pipeline(m, plan, in_flight=4, endpoints=endpoints, timeout_ms=120000)
list(pipe.map(frames[:4]))                                   # first use: the servers load their atoms
ys = list(pipe.map(frames))
ok = all(torch.allclose(y, m.run_flat(x)[0], rtol=1e-4, atol=1e-5) for x, y in zip(frames, ys))
st = pipe.stats()
print(f"{len(ys)} frames, outputs equal to the unsplit model: {ok}; {st.fallbacks} fallbacks")
for i, s in enumerate(st.stages):
    print(f"stage {i} on {s.node:7s}: compute {s.compute_ms:6.1f} ms here, accounted {s.accounted_ms:6.1f} ms, "
          f"link in {s.link_in_ms:6.1f} ms, back {s.link_back_ms:5.1f} ms")
print(f"predicted {plan.throughput_fps:.2f} fps; accounted {st.accounted_fps:.2f} fps (bottleneck {st.bottleneck}); "
      f"wall {st.wall_fps:.2f} fps on this machine")"""),
    md("""## More nodes

The same model on 1 to 5 nodes (the phone alone, then servers of speeds 1, 2, 1, 2 added):
predicted frames per second of `pso_dp`, and of the naive `equal_layers` baseline, with the
measured (accounted) figure of each `pso_dp` plan streamed through the servers."""),
    code("""ks = [1, 2, 3] if SMOKE else [1, 2, 3, 4, 5]
for k in ks[1:]:
    if f"edge-{chr(95 + k)}" not in endpoints:
        proc, ep = spawn_server(repo / name)
        procs.append(proc)
        endpoints[f"edge-{chr(95 + k)}"] = ep
rows = []
for k in ks:
    netk = network(k)
    best = ts.plan_pipeline(m, netk, algorithm="pso_dp")
    naive = ts.plan_pipeline(m, netk, algorithm="equal_layers")
    eps = {n.name: endpoints[n.name] for n in netk.nodes[1:]}
    p = ts.Pipeline(m, best, in_flight=1, endpoints=eps, timeout_ms=120000)   # one at a time: clean accounting
    list(p.map(frames[:2]))
    list(p.map(frames[:4 if SMOKE else 8]))
    rows.append((k, best.throughput_fps, naive.throughput_fps, p.stats().accounted_fps, len(best.stages)))
    print(f"{k} node(s): pso_dp {best.throughput_fps:.2f} fps predicted, {rows[-1][3]:.2f} accounted "
          f"({len(best.stages)} stages); equal_layers {naive.throughput_fps:.2f} fps")
for proc in procs:
    stop_server(proc)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="pso_dp (predicted)")
ax.plot([r[0] for r in rows], [r[3] for r in rows], "s--", label="pso_dp (accounted, streamed)")
ax.plot([r[0] for r in rows], [r[2] for r in rows], "^:", label="equal_layers (predicted)")
ax.set_xlabel("nodes (the phone + servers)"); ax.set_ylabel("frames per second"); ax.set_xticks(ks)
ax.set_title(f"{name}: phone 10x slower, 20 Mbit/s uplink"); ax.legend(); plt.tight_layout()"""),
    md("""The uplink from the phone caps every plan that sends the raw input (20 Mbit/s carries
about 4 frames of 600 KB per second): past that point more servers only help a model whose
stages, not its input, are the bottleneck. `equal_layers` ignores the links and the nodes'
speeds, which is why it trails."""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "05_pipelines.ipynb"))
