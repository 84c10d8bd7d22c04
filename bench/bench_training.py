"""Split and pipelined training (issue 22): throughput of each placement, and the same accuracy.

Two parts, one run:

1. **Digits CNN** (scikit-learn's 8x8 digits, ts.datasets.DigitsCNN, random init, seed 0): trained
   whole (eager PyTorch, one process) and split (device + a `tessera train-serve` process, a
   U-shaped cut: labels stay on the device) on the same batches in the same order with the same
   optimizer; test accuracy side by side (target: within 0.5 points), loss curves on one plot.
2. **Throughput** of resnet18 and the zoo transformer on random data, per configuration: single
   process (every atom on the device), the planner's cut (ts.plan(objective="training") on
   profiled forward / backward costs), naive cuts, and pipelining with 1, 2 and 4 micro-batches
   (GPipe and 1F1B) at the cut that makes two equal-speed stages. Samples per second
   *accounted* (the measured per-block compute x the emulated speeds, the measured bytes over the
   emulated link, through the training simulator: ts.training.accounted_step) and *wall-clock*
   (this machine: the device is this process, the server another process; one intra-op thread
   each on the 2 cores, so the server's compute really overlaps the device's).

Emulation: the device is RATIO x slower than the server (its measured compute x RATIO, accounted
only), the link BANDWIDTH Mbit/s with RTT ms (accounted only; the wall-clock link is loopback).
The equal-stage pipelining rows use RATIO 1, a free link and a batch PIPE_FACTOR x larger: the
bubble alone bounds 4 micro-batches over 2 stages at 2 x 4 / (4 + 1) -> 1.6x; the "ideal" column is
that bound from the simulator with per-micro-batch costs = full-batch costs / m (what perfect
kernels would give), the accounted column uses the micro-batches' measured costs, and
"kernel_efficiency" says how much compute the whole batch took in one piece over in m pieces
(< 1: the smaller kernels are slower per sample: what separates the two). Medians of STEPS steps after one warm-up, with the
spread (q1-q3).

The seed's figure (pipeline-parallel training on embedded boards, 44.87% less training time than
the AlexNet baseline) comes from several boards combining data and model parallelism; here one
device and one server, model parallelism with micro-batches: the table reports tessera's time
saved against the single process in the same spirit.

    .venv/bin/python bench/bench_training.py [--ratio 4] [--bandwidth 100] [--steps 5]
    tessera bench training [same arguments]
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

import tessera as ts  # noqa: E402
from tessera import training, zoo  # noqa: E402
from tessera.runtime import stop_server  # noqa: E402

from common import RESULTS, quantiles, smoke, table, write_csv  # noqa: E402


def fmt_q(xs, digits=1):
    m, a, b = quantiles(xs)
    return f"{m:.{digits}f} ({a:.{digits}f}-{b:.{digits}f})"


# ---- part 1: the digits CNN, whole vs split ------------------------------------------------
def eager_training(net, batches, lr, micro_batches):
    """Eager PyTorch, eval semantics (batch norm on running statistics, as the atoms train), Adam;
    with micro_batches > 1 the gradients accumulate over equal parts of each batch (the sum of
    per-part losses / batch: the trainer's own arithmetic)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for x, y in batches:
        opt.zero_grad()
        total = 0.0
        for xs, ys in zip(x.chunk(micro_batches), y.chunk(micro_batches)):
            loss = torch.nn.functional.cross_entropy(net(xs), ys, reduction="sum") / x.shape[0]
            loss.backward()
            total += loss.item()
        opt.step()
        losses.append(total)
    return losses


def digits_accuracy(args, workdir):
    data = ts.datasets.digits(seed=0)
    torch.manual_seed(0)
    net = ts.datasets.DigitsCNN().eval()
    batch = 64
    epochs = 2 if smoke() else args.epochs
    tm = ts.load(net, data.train.x[:batch], trainable=True)
    store = workdir / "digits"
    tm.save(store)
    g = torch.Generator().manual_seed(0)
    n = len(data.train)
    batches = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        batches += [(data.train.x[perm[i:i + batch]], data.train.y[perm[i:i + batch]])
                    for i in range(0, n - batch + 1, batch)]
    lr = 3e-3  # Adam: plain SGD barely moves this CNN without batch statistics (27% after 10 epochs)
    k = tm.num_atoms
    placement = [0] * 3 + [1] * (k - 5) + [0] * 2  # U-shaped: first conv block and the head on the device
    runs, rows = {}, []
    for m in (1, 2):
        whole = copy.deepcopy(net)
        eager_losses = eager_training(whole, batches, lr, m)
        proc, endpoint = training.spawn_training_server(store)
        try:
            tr = ts.SplitTrainer(ts.Model.open(store, atoms=[]), placement, server=endpoint,
                                 optimizer=("adam", {"lr": lr}), micro_batches=m, schedule="1f1b")
            split_losses = tr.fit(batches, progress=False)
            state = tr.state_dict()
        finally:
            stop_server(proc)
        split_net = copy.deepcopy(net)
        split_net.load_state_dict({**split_net.state_dict(), **state})
        acc_whole = ts.datasets.top1(whole, data.test)
        acc_split = ts.datasets.top1(split_net.eval(), data.test)
        first_gap = next((i for i, (a, b) in enumerate(zip(eager_losses, split_losses)) if abs(a - b) > 1e-5 * abs(a)),
                         None)
        runs[m] = (eager_losses, split_losses, acc_whole, acc_split)
        rows.append({"micro_batches": m, "steps": len(batches), "epochs": epochs, "batch": batch,
                     "placement": f"device {placement.count(0)} atoms (U), server {placement.count(1)}",
                     "whole_top1": round(acc_whole, 4), "split_top1": round(acc_split, 4),
                     "diff_points": round(100 * (acc_split - acc_whole), 2),
                     "losses_equal_until": "every step" if first_gap is None else f"step {first_gap}",
                     "final_loss_whole": round(eager_losses[-1], 4), "final_loss_split": round(split_losses[-1], 4)})
    half = ts.datasets.binomial_halfwidth(runs[1][2], len(data.test))
    drift = 100 * (runs[2][2] - runs[1][2])
    print("\n## Digits CNN: trained whole (eager PyTorch) vs split (device + a train-serve process), same seed, "
          "batches, optimizer and micro-batches")
    print(table(rows, list(rows[0])))
    print(f"  the float-order ceiling: eager with 2 micro-batches vs eager with 1 differ by {drift:+.2f} points "
          f"(Adam turns summation-order noise into different trajectories); the test split's 95% half-width "
          f"is {100 * half:.1f} points ({len(data.test)} images)")
    path = write_csv("bench_training_digits", [{"step": i, "whole": a, "split": b, "whole_2mb": c, "split_2mb": d}
                                        for i, (a, b, c, d) in enumerate(zip(runs[1][0], runs[1][1], runs[2][0],
                                                                             runs[2][1]))])
    print(f"wrote {path}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        for m, style in ((1, "-"), (2, ":")):
            el, sl, aw, asp = runs[m]
            ax.plot(el, style, label=f"whole, {m} micro-batch{'es' if m > 1 else ''} (test {100 * aw:.1f}%)")
            ax.plot(sl, "--" if m == 1 else "-.", label=f"split U, {m} micro-batch{'es' if m > 1 else ''} "
                    f"(test {100 * asp:.1f}%)")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
        fig.tight_layout()
        RESULTS.mkdir(exist_ok=True)
        fig.savefig(RESULTS / ("bench_training_digits.smoke.png" if smoke() else "bench_training_digits.png"), dpi=110)
    except ImportError:  # pragma: no cover - matplotlib is a Debian package here
        pass
    return rows


# ---- part 2: throughput ---------------------------------------------------------------------
def block_ms(model, node, atoms, env, grads_like=True):
    """Forward + backward ms of one block of atoms through a TrainingNode, env: value -> tensor."""
    import time
    blk = model.train_block(atoms)
    ins = [env[v] for v in blk.inputs]
    t0 = time.perf_counter()
    outs = node.forward(0, list(atoms), ins)
    node.backward(0, list(atoms), [torch.ones_like(o) if o.is_floating_point() else torch.zeros_like(o) for o in outs])
    return (time.perf_counter() - t0) * 1e3, dict(zip(blk.outputs, outs))


def balanced_cut(store, batch):
    """The cut q (atoms [0, q) | [q, n)) whose two blocks' measured forward + backward are closest
    to equal: a binary search over q, each probe timing both blocks once (after a warm-up) on this
    batch. Two equal-speed stages are what the bubble bound speaks of."""
    model = ts.Model.open(store)
    n = model.num_atoms
    node = training.TrainingNode(model, range(n))
    inputs = {v: x for v, x in zip(model.graph.inputs, batch)}

    def imbalance(q):
        best = None
        for _ in range(2):  # a warm-up, then the measurement
            a, out = block_ms(model, node, range(q), inputs)
            b, _ = block_ms(model, node, range(q, n), {**inputs, **out})
            node.discard()
            best = a - b
        return best

    lo, hi = 1, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if imbalance(mid) < 0:
            lo = mid
        else:
            hi = mid
    return lo if abs(imbalance(lo)) <= abs(imbalance(hi)) else hi


def run_config(trainer, batch, labels, steps, ratio, bandwidth, rtt):
    """Median accounted and wall step ms over `steps` steps after one warm-up; and the last stats."""
    trainer.step(batch, labels)
    acc, wall = [], []
    st = None
    for _ in range(steps):
        st = trainer.step(batch, labels)
        wall.append(st.wall_ms)
        acc.append(training.accounted_step(trainer, st, bandwidth, rtt, {0: ratio}).makespan_ms)
    return acc, wall, st


def throughput(args, workdir):
    models = [("squeezenet1_0", 2)] if smoke() else [("resnet18", args.batch), ("transformer", 2 * args.batch)]
    steps = 2 if smoke() else args.steps
    rows, pipe_rows = [], []
    for name, B in models:
        path, xs = zoo.torchscript(name)
        tm = ts.load(path, xs, trainable=True)
        store = workdir / name
        tm.save(store)
        g = torch.Generator().manual_seed(1)
        batch = (torch.cat([xs[0]] * B) + 0.1 * torch.randn((B, *xs[0].shape[1:]), generator=g),)
        classes = tm(xs).shape[-1]
        labels = torch.randint(0, classes, (B,), generator=g)
        prof = ts.profile_training(ts.Model.open(store), batch, repeats=1 if smoke() else 3)
        n = tm.num_atoms
        dev_costs = training.TrainingProfile([f * args.ratio for f in prof.forward_ms],
                                             [b * args.ratio for b in prof.backward_ms], prof.stored_bytes, B)
        tplan = ts.plan(ts.Model.open(store, atoms=[]), {"device": dev_costs, "server": prof}, args.bandwidth, args.rtt,
                        objective="training", constraints={"micro_batches": [m for m in (1, 2, 4) if m <= B]})
        tplan1 = ts.plan(ts.Model.open(store, atoms=[]), {"device": dev_costs, "server": prof}, args.bandwidth,
                         args.rtt, objective="training", constraints={"micro_batches": [1]})
        half = max(1, n // 2)
        configs = {
            "single process (device)": ([0] * n, 1, "gpipe"),
            "planner's cut, 1 micro-batch": (tplan1.placement, 1, "gpipe"),
            f"planner's cut, {tplan.micro_batches} micro-batches {tplan.schedule}":
                (tplan.placement, tplan.micro_batches, tplan.schedule),
            "naive: half the atoms, head on device": ([0] * half + [1] * (n - half - 1) + [0], 1, "gpipe"),
            "naive: first 10% on device, head on device": ([0] * max(1, n // 10) + [1] * (n - max(1, n // 10) - 1) + [0],
                                                           1, "gpipe"),
        }
        proc, endpoint = training.spawn_training_server(store)
        try:
            base_acc = None
            for label, (placement, m, schedule) in configs.items():
                if m > B:
                    continue
                servers = [endpoint] if max(placement) > 0 else []
                tr = ts.SplitTrainer(ts.Model.open(store, atoms=[]), placement, server=servers, micro_batches=m,
                                     schedule=schedule)
                acc, wall, st = run_config(tr, batch, labels, steps, args.ratio, args.bandwidth, args.rtt)
                # the server's weights moved: restart it fresh for the next trainer (version 0)
                stop_server(proc)
                proc, endpoint = training.spawn_training_server(store)
                am = quantiles(acc)[0]
                base_acc = base_acc or am
                rows.append({"model": name, "batch": B, "config": label, "micro_batches": m, "schedule": schedule,
                             "device_atoms": placement.count(0), "accounted_ms": fmt_q(acc),
                             "accounted_sps": round(1000 * B / am, 2), "vs_single": f"{base_acc / am:.2f}x",
                             "time_saved": f"{100 * (1 - am / base_acc):.1f}%",
                             "wall_ms": fmt_q(wall), "wall_sps": round(1000 * B / quantiles(wall)[0], 2),
                             "sent_MB": round(st.bytes_sent / 1e6, 2)})
            # pipelining at two equal-speed stages (ratio 1, free link; labels_on server: two stages), on a
            # larger batch so that a quarter of it still runs efficient kernels
            PB = B * (1 if smoke() else args.pipe_factor)
            pbatch = (torch.cat([batch[0]] * (PB // B)),)
            plabels = torch.cat([labels] * (PB // B))
            q = balanced_cut(store, pbatch)
            placement = [0] * q + [1] * (n - q)
            base = None
            for m, schedule in [(1, "gpipe"), (2, "gpipe"), (2, "1f1b"), (4, "gpipe"), (4, "1f1b")]:
                if m > PB:
                    continue
                tr = ts.SplitTrainer(ts.Model.open(store, atoms=[]), placement, server=endpoint, micro_batches=m,
                                     schedule=schedule, labels_on="server")
                acc, wall, st = run_config(tr, pbatch, plabels, steps, 1.0, None, 0.0)
                stop_server(proc)
                proc, endpoint = training.spawn_training_server(store)
                stages = training.measured_stages(tr, st)
                work = sum(x["fwd_ms"] + x["bwd_ms"] for x in stages) * m  # compute of the whole batch
                # the bubble's bound: the 1-micro-batch stages split evenly into m (perfect kernels)
                stages1 = base[2] if base else stages
                ideal = ts.planning.simulate_training(
                    [{**x, "fwd_ms": x["fwd_ms"] / m, "bwd_ms": x["bwd_ms"] / m} for x in stages1], m, schedule)
                am, wm = quantiles(acc)[0], quantiles(wall)[0]
                if base is None:
                    base = (am, wm, stages1, ideal.makespan_ms, work)
                s0 = stages1
                pipe_rows.append({"model": name, "batch": PB, "cut": f"{q}/{n} atoms on device",
                                  "stage_ms_fwd+bwd": " / ".join(f"{x['fwd_ms'] + x['bwd_ms']:.0f}" for x in s0),
                                  "micro_batches": m, "schedule": schedule, "accounted_ms": fmt_q(acc),
                                  "accounted_speedup": f"{base[0] / am:.2f}x",
                                  "ideal_speedup": f"{base[3] / ideal.makespan_ms:.2f}x",
                                  "kernel_efficiency": f"{base[4] / work:.2f}",
                                  "wall_ms": fmt_q(wall), "wall_speedup": f"{base[1] / wm:.2f}x",
                                  "peak_stored_MB": " / ".join(f"{b / 1e6:.1f}" for b in st.peak_stored_bytes)})
        finally:
            stop_server(proc)
    print(f"\n## Throughput (device = this machine x {args.ratio:g}, link {args.bandwidth:g} Mbit/s rtt {args.rtt:g} ms "
          "accounted; wall-clock on loopback, 1 thread per process)")
    print(table(rows, list(rows[0])))
    print("\n## Pipelining over two equal-speed stages (free link)")
    print(table(pipe_rows, list(pipe_rows[0])))
    for name, rs in (("bench_training_throughput", rows), ("bench_training_pipelining", pipe_rows)):
        print(f"wrote {write_csv(name, rs)}")
    return rows, pipe_rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratio", type=float, default=4.0, help="device slowdown over the server (accounted)")
    p.add_argument("--bandwidth", type=float, default=100.0, help="emulated link, Mbit/s (accounted)")
    p.add_argument("--rtt", type=float, default=5.0, help="emulated round trip, ms (accounted)")
    p.add_argument("--steps", type=int, default=5, help="measured steps per configuration (after one warm-up)")
    p.add_argument("--batch", type=int, default=8, help="resnet18's batch (the transformer's is twice it)")
    p.add_argument("--epochs", type=int, default=15, help="digits CNN epochs")
    p.add_argument("--pipe-factor", type=int, default=4, help="the pipelining rows' batch: this x the model's batch")
    args = p.parse_args(argv)
    ts.set_threads(1)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        digits = digits_accuracy(args, work)
        rows, pipe_rows = throughput(args, work)
    print("\n## Next to the seed (pipeline-parallel training, 44.87% less time than the AlexNet baseline)")
    for r in rows:
        if r["config"].startswith("planner's cut") and "micro-batches" in r["config"]:
            print(f"  {r['model']}: the planner's split with micro-batches saves {r['time_saved']} of the single "
                  f"process's accounted step time ({r['vs_single']} throughput)")
    for r in digits:
        print(f"  digits CNN, {r['micro_batches']} micro-batch(es): split {100 * r['split_top1']:.2f}% vs whole "
              f"{100 * r['whole_top1']:.2f}% test top-1 ({r['diff_points']:+.2f} points)")


if __name__ == "__main__":
    main()
