"""Builds notebooks/06_energy.ipynb (run: .venv/bin/python notebooks/src/build_06.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Energy: the phone's battery as well as the latency

A phone pays for every request in energy: computing atoms (more at a higher clock), transmitting
the tensor at the cut (more at a higher transmit power, which buys a faster uplink), receiving the
result, and waiting for the server. This notebook reads a phone's power profile (the
`power_profile.xml` Android phones ship), prices plans by part, draws the energy-latency frontier of
one request, and runs CutEdge's controller (per request: split, clock frequency and transmit power
by drift-plus-penalty over a virtual energy queue) over a real 3G trace, beside the offline oracle.

Everything here is the cost and power model: the clock frequencies and transmit powers are
emulated (this machine's clock is not changed); the last section runs the controller live over a
real server, with the chosen clock emulated as the device's slowdown and the transmit power as the
uplink's rate."""),
    code("""import os, pathlib, tempfile
import matplotlib.pyplot as plt
import tessera as ts
from tessera import zoo

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
ts.set_threads(1)
name = "squeezenet1_0" if SMOKE else "resnet50"
path, xs = zoo.torchscript(name)
m = ts.load(str(path), xs)
ct = ts.profile(m, xs, threads=1, repeats=2 if SMOKE else 5, warmup=1)
costs = {"device": [10 * c for c in ct.atom_ms], "server": list(ct.atom_ms)}   # the phone: 10x slower at its top clock
print(m, f"{sum(ct.atom_ms):.1f} ms here, 1 thread")"""),
    md("""## A phone's power profile

Two sample profiles ship with tessera; each file says where every number comes from (AOSP's
example clusters, Huang et al.'s Wi-Fi and LTE power lines). Currents (mA) become power at the
radio's voltage."""),
    code("""for s in ts.power.SAMPLE_PROFILES:
    print(ts.PowerModel.from_android_profile(ts.sample_profile(s)))
lte = ts.PowerModel.from_android_profile(ts.sample_profile("phone_lte"))
print("LTE transmit levels (mW):", [round(p) for p in lte.tx.levels_mw])
print("LTE uplink rate at each level when the link gives 5.85 Mbit/s at full power:",
      [round(lte.tx_rate_mbps(p, 5.85), 2) for p in lte.tx.levels_mw])
power = ts.PowerModel.from_android_profile(ts.sample_profile("phone_big_little_wifi"))   # used below"""),
    md("""## One request, priced by part

The same request four ways on DADS's Wi-Fi uplink (18.88 Mbit/s, rtt 20 ms): everything on the
phone at its top clock, everything on the server, and tessera's min-latency and min-energy plans
(split, clock and power chosen together). Sending 600 KB over Wi-Fi costs about as much energy as
the phone computing a ResNet-50 itself: where the cut goes decides the battery as much as the
latency."""),
    code("""bw, rtt = 18.88, 20.0
fast = ts.plan_energy(m, costs, power, bandwidth_mbps=bw, rtt_ms=rtt)
frugal = ts.plan_energy(m, costs, power, bandwidth_mbps=bw, rtt_ms=rtt, latency_weight=0, energy_weight=1)
cases = {"device only": ts.energy(m, [0] * m.num_atoms, power, costs=costs, bandwidth_mbps=bw, rtt_ms=rtt),
         "server only": ts.energy(m, [1] * m.num_atoms, power, costs=costs, bandwidth_mbps=bw, rtt_ms=rtt),
         "min latency": ts.energy(m, fast.placement, power, costs=costs, frequency_mhz=fast.op.frequency_mhz,
                                  tx_power_mw=fast.op.tx_power_mw, bandwidth_mbps=bw, rtt_ms=rtt),
         "min energy": ts.energy(m, frugal.placement, power, costs=costs, frequency_mhz=frugal.op.frequency_mhz,
                                 tx_power_mw=frugal.op.tx_power_mw, bandwidth_mbps=bw, rtt_ms=rtt)}
fig, ax = plt.subplots(figsize=(7, 3.2))
left = [0.0] * len(cases)
for part in ("compute_mj", "tx_mj", "rx_mj", "idle_mj"):
    vals = [c[part] for c in cases.values()]
    ax.barh(list(cases), vals, left=left, label=part[:-3])
    left = [l + v for l, v in zip(left, vals)]
for i, c in enumerate(cases.values()):
    ax.text(left[i], i, f"  {c['latency_ms']:.0f} ms", va="center", fontsize=8)
ax.set_xlabel("energy per request (mJ)"); ax.legend(fontsize=8); plt.tight_layout()
for k, c in cases.items():
    print(f"{k:12s} {c['explain']}")"""),
    md("""## The energy-latency frontier of one request

Every plan some weighting of latency and energy makes optimal (the lower convex hull, found by
bisecting on the weight; each point is exact for its operating point: one min cut per clock x
transmit level)."""),
    code("""hull = ts.power.energy_hull(m, costs, power, bandwidth_mbps=bw, rtt_ms=rtt)
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot([d.parts.total_mj for d in hull], [d.parts.latency_ms for d in hull], "o-")
for d in hull:
    ax.annotate(f"{d.op.frequency_mhz:.0f} MHz, {d.op.tx_power_mw:.0f} mW, "
                f"{sum(1 for t in d.placement if t == 0)} atoms here", (d.parts.total_mj, d.parts.latency_ms),
                fontsize=7)
ax.set_xlabel("energy per request (mJ)"); ax.set_ylabel("latency (ms)"); plt.tight_layout()"""),
    md("""## CutEdge's controller over a real trace

A Norwegian 3G trace (the shared traces) scaled so its median is the Wi-Fi uplink above, one request
per second. Per request the controller
minimises V x latency + Q x energy; Q grows while requests spend more than the budget and shrinks
while they spend less, so the long-run average stays at the budget; higher V cares more about
latency now and lets Q grow further. The oracle knows the whole trace in advance (the best mean
latency possible with each point's energy)."""),
    code("""traces = pathlib.Path("../../shared/traces/norway-hsdpa")
if not traces.is_dir():
    traces = pathlib.Path(ts.__file__).resolve().parents[2].parent / "shared" / "traces" / "norway-hsdpa"
files = sorted(traces.glob("*")) if traces.is_dir() else []
trace = ts.read_trace(files[0]) if files else [(float(t), 2.0 if (t // 20) % 2 else 30.0) for t in range(300)]
scale = bw / sorted(b for _, b in trace)[len(trace) // 2]   # median at the Wi-Fi uplink
requests = 60 if SMOKE else 300
points = ts.tradeoff(m, costs, power, trace=trace, V=[1, 10, 100, 1000], rtt_ms=rtt, period_s=1.0,
                     requests=requests, scale=scale)
for p in points:
    print(f"V={p['V']:>5}: {p['energy_mj']:.1f} mJ (budget {p['budget_mj']:.1f}), {p['latency_ms']:.1f} ms "
          f"= {p['latency/oracle']:.3f} x the oracle's at that energy, {p['throughput_fps']:.2f} requests/s")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.4))
ax1.plot([p["energy_mj"] for p in points], [p["latency_ms"] for p in points], "o-", label="controller (V)")
ax1.plot([p["energy_mj"] for p in points], [p["oracle_latency_ms"] for p in points], "k--", label="oracle")
for p in points:
    ax1.annotate(f"V={p['V']}", (p["energy_mj"], p["latency_ms"]), fontsize=8)
ax1.set_xlabel("mean energy (mJ)"); ax1.set_ylabel("mean latency (ms)"); ax1.legend()
for p in points:
    ax2.plot([r["queue"] for r in p["records"]], label=f"V={p['V']}")
ax2.set_xlabel("request"); ax2.set_ylabel("virtual energy queue Q (mJ)"); ax2.legend(fontsize=8)
plt.tight_layout()"""),
    md("""## Live: the controller drives a real deployment

The same controller inside an `AdaptiveDeployment` over a `tessera serve` process: per request
the split, the clock (emulated as the phone's slowdown: 10x at the top clock, more below) and the
transmit power (emulated as the uplink's rate); the timeline records the energy of what was
measured and the queue. When the live phone spends more than the model said (a cold first
request, a slower run), the queue grows and moves the next decisions towards cheaper plans."""),
    code("""from tessera.runtime import spawn_server, stop_server
repo = tempfile.mkdtemp()
m.save(pathlib.Path(repo) / name)
proc, endpoint = spawn_server(repo)
budget = (cases["min latency"]["total_mj"] + cases["min energy"]["total_mj"]) / 2
ctl = ts.EnergyController(m, costs, power, budget_mj=budget, V=100)
dep = ts.AdaptiveDeployment(m, costs, server=endpoint, link=ts.Link(bandwidth_mbps=bw, rtt_ms=rtt),
                            controller=ctl, emulation="account", rtt_ms=rtt, initial_bandwidth_mbps=bw,
                            device_slowdown=10, timeout_ms=60000)
for _ in range(4 if SMOKE else 10):
    dep(xs)
stop_server(proc)
for r in dep.timeline:
    print(f"{r['index']:2d}: {r['device_atoms']:3d} atoms here at {r['frequency_mhz']:.0f} MHz, tx "
          f"{r['tx_power_mw']:.0f} mW ({r['tx_rate_mbps']:.2f} Mbit/s), {r['total_ms']:.0f} ms, "
          f"{r['energy_mj']:.1f} mJ (compute {r['compute_mj']:.1f}, tx {r['tx_mj']:.1f}), Q {r['energy_queue']:.1f}")"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "06_energy.ipynb"))
