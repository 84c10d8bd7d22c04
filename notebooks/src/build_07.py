"""Builds notebooks/07_variants.ipynb (run: .venv/bin/python notebooks/src/build_07.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Variants: trading a measured amount of accuracy for speed

The split point is one lever; the model is another. tessera makes *variants* of a model - the
tensor at the cut compressed on the wire (fp16, bf16, int8, zstd), the model quantized to int8,
its channels pruned, its input down-scaled - stores each as atoms like any model, **measures**
their accuracy on labelled data, and at run time picks, per request, the (variant, split, codec)
of least latency whose measured loss is within your budget (AdaScale's loop over exact plans).

This notebook uses scikit-learn's digits (they ship with Debian's `python3-sklearn`: no download)
and a small CNN trained here in seconds. The device is emulated: an MCU-class device 200x slower
than this machine, its compute accounted; the link is emulated from a real 3G trace."""),
    code("""import os, pathlib, tempfile
import matplotlib.pyplot as plt
import torch
import tessera as ts
from tessera import datasets

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
ts.set_threads(1)
data = datasets.digits()
net = datasets.digits_cnn(data, epochs=10 if SMOKE else 30)
print(data, f"- the CNN: top-1 {datasets.top1(net, data.test, 128):.3f} on the test split")"""),
    md("""## Making variants, measuring them

`ts.variants` builds each variant as an atom store; `profile` measures every atom here (the device
= 200x, the server = this machine) and each codec's encode/decode time; `ts.accuracy` runs every
variant **as tessera runs it** (its atoms; for wire codecs, the tensors through the codec at each
candidate cut) on the validation split. The test split stays unseen, to check the choices later."""),
    code("""vs = ts.variants(net, data.val.x[:1], train=data.train,
                 make=["wire_fp16", "wire_int8", "int8", "int8_static", "prune30", "prune50", "res6"])
vs.profile(device_slowdown=200, repeats=2 if SMOKE else 5)
for r in ts.accuracy(vs, data):
    print(f"{r['variant']:>10}: top-1 {r['top1']:.3f}  loss {r['loss_pct']:5.2f}%   {r['note']}")"""),
    md("""## The codecs

What one tensor costs on the wire, and what encoding it costs here (median of 21 runs, C++).
int8 is affine (scale and zero point per tensor, or per channel): a quarter of the bytes, an error
of at most half a step."""),
    code("""x = torch.relu(torch.randn(1, 64, 64, 64))   # 1 MB, like a ReLU's output
for c in ts.variant.WIRE_CODECS:
    enc, dec, nbytes = ts.variant.codec_timing(x, c, 21)
    err = float((ts.variant.codec_round_trip(x, c) - x).abs().max())
    print(f"{c:>13}: {nbytes / (4 * x.numel()):.3f} of the bytes, encode {enc:.3f} ms, decode {dec:.3f} ms, max error {err:.2g}")"""),
    md("""## The accuracy-latency frontier

Every candidate the selector knows: per variant, the optimal splits over all bandwidths and device
loads (parametric min cut), each with its measured loss. Below, their predicted latency on a 3G
and a 4G uplink (DADS's medians, rtt 5 ms); the line is the frontier, the stars the choices under
budgets of 0, 0.5, 1 and 2 points."""),
    code("""rtt = 5.0
sel = vs.selector(rtt)
cands = sel.candidates
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, (label, bw) in zip(axes, [("3G", 1.1), ("4G", 5.85)]):
    ctx = ts._core.Context(bandwidth_mbps=bw, rtt_ms=rtt)
    pts = sorted((100 * c.loss, c.latency_ms(ctx), c.name) for c in cands)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.6)
    front, best = [], float("inf")
    for p in pts:
        if p[1] < best:
            best = p[1]; front.append(p)
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k")
    for b in (0, 0.005, 0.01, 0.02):
        ch = sel.select(ctx, b)
        c = cands[ch.index]
        ax.scatter([100 * c.loss], [ch.latency_ms], marker="*", s=120, color="C3")
        print(f"{label} budget {100 * b:.1f}%: {ch.why}")
    ax.set_xscale("symlog", linthresh=0.5); ax.set_xlabel("measured loss (% top-1)"); ax.set_ylabel("predicted ms")
    ax.set_title(f"{label}: {bw} Mbit/s, rtt {rtt} ms")
plt.tight_layout()"""),
    md("""## Live: a trace replay that switches variants

A `tessera serve` process holds every variant (`vs.save`); `AdaptiveDeployment(..., variants=vs,
accuracy_budget=0.01)` chooses before every request from what it measured (bandwidth, device load)
over a Norwegian 3G trace. Beside it, the exact adaptive deployment of the fp32 model alone."""),
    code("""from tessera.runtime import spawn_server, stop_server
traces = pathlib.Path("../../shared/traces/norway-hsdpa")
if not traces.is_dir():
    traces = pathlib.Path(ts.__file__).resolve().parents[2].parent / "shared" / "traces" / "norway-hsdpa"
files = sorted(traces.glob("*")) if traces.is_dir() else []
trace = ts.read_trace(files[0]) if files else [(float(t), 0.5 if (t // 10) % 2 else 20.0) for t in range(120)]
requests = 8 if SMOKE else 60
med = sorted(b for t, b in trace if t < requests)[len([1 for t, _ in trace if t < requests]) // 2]
spec = dict(trace=trace, scale=2.0 / med, rtt_ms=rtt)      # median 2 Mbit/s: both sides of the crossover
repo = vs.save(tempfile.mkdtemp())
proc, endpoint = spawn_server(repo)
try:
    link_v, link_a = ts.Link(**spec), ts.Link(**spec)
    dep = ts.AdaptiveDeployment(vs.base.model, None, server=endpoint, link=link_v, variants=vs,
                                accuracy_budget=0.01, rtt_ms=rtt, device_slowdown=200, emulation="account",
                                timeout_ms=60000)
    fp32 = ts.AdaptiveDeployment(vs.base.model, vs.base.costs, endpoint, link=link_a, rtt_ms=rtt,
                                 device_slowdown=200, emulation="account", timeout_ms=60000)
    true_bw, fp32_ms = [], []
    for i in range(requests):
        x = data.test.x[i:i + 1]
        link_v.set_time(float(i)); link_a.set_time(float(i))
        true_bw.append(link_v.bandwidth_now)
        dep(x); fp32(x)
        fp32_ms.append(fp32.last_record.total_ms)
finally:
    stop_server(proc)
tl = dep.timeline
names = sorted({r["variant"] for r in tl})
fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
a1.plot(true_bw, label="true Mbit/s"); a1.plot([r["bandwidth_estimate"] for r in tl], label="estimate")
a1.set_ylabel("Mbit/s"); a1.legend(fontsize=8)
for n in names:
    idx = [i for i, r in enumerate(tl) if r["variant"] == n]
    a2.scatter(idx, [tl[i]["latency_ms"] for i in idx], s=14, label=f"variants: {n}")
a2.plot(fp32_ms, "k--", lw=1, label="exact adaptive, fp32")
a2.set_ylabel("latency (ms, accounted)"); a2.set_xlabel("request (1 per trace second)"); a2.legend(fontsize=7)
plt.tight_layout()
mean = lambda xs: sum(xs) / len(xs)
print(f"mean latency: variants {mean([r['latency_ms'] for r in tl]):.1f} ms, fp32 adaptive {mean(fp32_ms):.1f} ms; "
      f"switches {sum(r['switched'] for r in tl)}; decisions {mean([r['decide_us'] for r in tl]):.0f} us on average")"""),
    md("""## Checking the choices on data the selector never saw

The losses above were measured on the validation split; each variant chosen is re-measured on the
test split, beside the 95% binomial half-width of a 360-image measurement."""),
    code("""base_test = datasets.top1(vs.runner(vs.base), data.test)
half = datasets.binomial_halfwidth(base_test, len(data.test))
for n in names:
    v = vs[n]
    print(f"{n:>10}: validation loss {100 * v.loss:.2f}%, test loss "
          f"{100 * (base_test - datasets.top1(vs.runner(v), data.test)):.2f}% (budget 1% + {100 * half:.2f}%)")"""),
    md("""## A budget nothing meets

A budget below every variant's measured loss is an error that says what is available."""),
    code("""lossy = ts.VariantSet([v for v in vs if v.loss and v.loss > 0], vs.example_inputs)
lossy.metric, lossy.base_score, lossy.codec_costs = vs.metric, vs.base_score, vs.codec_costs
try:
    ts.variant.VariantSelector(lossy.candidates(rtt)).select(ts._core.Context(bandwidth_mbps=2.0), 0.0)
except ts.NotFoundError as e:
    print("NotFoundError:", e)"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "07_variants.ipynb"))
