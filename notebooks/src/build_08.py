"""Builds notebooks/08_split_training.ipynb (run: .venv/bin/python notebooks/src/build_08.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# Split training: each node trains its own part

Split learning cuts a model between a device and a server: the device keeps the raw data and the
labels, and only activations (forward) and their gradients (backward) cross the link. tessera does
this over the same atoms it splits inference on: the model is loaded **trainable** (its atoms keep
their weights as parameters), every node runs autograd over its own atoms and steps its own
optimizer, and the device drives the step: the inputs, the loss, micro-batches scheduled as GPipe
or 1F1B so the server's compute overlaps the device's.

This notebook trains scikit-learn's digits (they ship with Debian's `python3-sklearn`: no
download) with a small CNN twice from the same random weights, with the same batches in the same
order: whole, in eager PyTorch, and split between this process (the device) and a training server,
at the cut the training planner picks. Then it compares the loss curves and the test accuracy, and
draws one step's timeline under both schedules. The device is emulated: 20x slower than this
machine, its compute accounted; the link is accounted too (50 Mbit/s, rtt 5 ms)."""),
    code("""import copy, os, pathlib, tempfile, time
import matplotlib.pyplot as plt
import torch
import tessera as ts
from tessera import datasets, training

SMOKE = os.environ.get("TESSERA_NOTEBOOK_SMOKE") == "1"
ts.set_threads(1)
RATIO, BANDWIDTH, RTT = 20.0, 50.0, 5.0     # the emulated device (x slower than here) and link
data = datasets.digits(seed=0)
torch.manual_seed(0)
net = datasets.DigitsCNN().eval()           # random weights; eval: see "Eval semantics" below
whole = copy.deepcopy(net)                  # trained in eager PyTorch
start = copy.deepcopy(net)                  # the starting weights, to load the split result into
batch, epochs = 64, 3 if SMOKE else 15
g = torch.Generator().manual_seed(0)
batches = []
for _ in range(epochs):
    perm = torch.randperm(len(data.train), generator=g)
    batches += [(data.train.x[perm[i:i + batch]], data.train.y[perm[i:i + batch]])
                for i in range(0, len(data.train) - batch + 1, batch)]
print(data, f"- {len(batches)} steps of {batch} images ({epochs} epochs)")"""),
    md("""## Trainable atoms

`ts.load(..., trainable=True)` atomizes the model as for inference, but every atom keeps its
weights as parameters (named as in the module's `state_dict`) instead of folding them into
constants; inference through the atoms is unchanged. The store saves them with the atoms, and
whichever node runs an atom loads its parameters. A frozen store cannot be trained: the training
server refuses it by name."""),
    code("""tm = ts.load(net, data.train.x[:batch], trainable=True)
for a in tm.atoms:
    print(f"atom {a.id:2d} {a.op_kinds[0]:<26} {', '.join(a.params) or '-'}")
store = pathlib.Path(tempfile.mkdtemp()) / "digits"
tm.save(store)
server = ts.TrainingServer(store).start()   # in this process; another machine: `tessera train-serve STORE`
print(server)"""),
    md("""## Where to cut: the training planner

`ts.profile_training` measures each atom's forward and backward here (under autograd, at the
batch); the emulated device is that x 20. `ts.plan(..., objective="training")` then searches every
cut (a U shape: the atoms making the logits stay on the device with the labels, so neither the
labels nor the logits' gradient leave it) x micro-batch counts x schedules, simulating each step,
and keeps the fastest that fits memory."""),
    code("""prof = ts.profile_training(ts.Model.open(store), data.train.x[:batch], repeats=2 if SMOKE else 5)
device = training.TrainingProfile([RATIO * f for f in prof.forward_ms], [RATIO * b for b in prof.backward_ms],
                                  prof.stored_bytes, prof.batch)
costs = {"device": device, "server": prof}
plan = ts.plan(ts.Model.open(store, atoms=[]), costs, BANDWIDTH, RTT, objective="training",
               constraints={"optimizer": "adam"})
print(prof)
print(plan.explain())"""),
    md("""On a device this slow the planner ships the raw images to the server and keeps only the last
layer (and the loss) on the device. If the raw images must not leave the device either, pin the
first atom there (`ts.planning.plan_training` takes `pin=`) and read what that privacy costs:"""),
    code("""private = ts.planning.plan_training(ts.Model.open(store, atoms=[]), {k: c.forward_ms for k, c in costs.items()},
                                    {k: c.backward_ms for k, c in costs.items()}, batch_size=batch,
                                    bandwidth_mbps=BANDWIDTH, rtt_ms=RTT, optimizer="adam", pin={0: "device"})
print(private.explain())
print(f"keeping the raw images on the device: {private.step_ms / plan.step_ms:.2f}x the planner's step")"""),
    md("""## Whole, then split

Trained whole: eager PyTorch, Adam (lr 3e-3), the model in eval mode. Trained split: a
`ts.SplitTrainer` at the planner's cut, with its micro-batches and schedule, the same optimizer on
every node. Both start from the same weights and see the same batches."""),
    code("""opt = torch.optim.Adam(whole.parameters(), lr=3e-3)
whole_losses = []
t0 = time.perf_counter()
for x, y in batches:
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(whole(x), y)
    loss.backward()
    opt.step()
    whole_losses.append(loss.item())
whole_s = time.perf_counter() - t0

trainer = ts.SplitTrainer(ts.Model.open(store, atoms=[]), plan, server=server.endpoint,
                          optimizer=("adam", {"lr": 3e-3}), loss="cross_entropy", labels_on="device",
                          timeout_ms=3000)
print(trainer)
t0 = time.perf_counter()
split_losses = trainer.fit(batches, progress=False)
split_s = time.perf_counter() - t0
print(f"whole {whole_s:.1f} s, split {split_s:.1f} s here (the server is a thread of this process); "
      f"server: {server.stats().forwards} forwards, {server.stats().backwards} backwards, "
      f"{server.stats().commits} commits")"""),
    md("""The two loss curves on one plot, and the test accuracy of each model. The split weights are
gathered from both nodes (`trainer.state_dict()`, the module's own parameter names) and loaded into
a copy of the starting module."""),
    code("""split_net = copy.deepcopy(start)
split_net.load_state_dict({**split_net.state_dict(), **trainer.state_dict()})
acc_whole = datasets.top1(whole, data.test, 128)
acc_split = datasets.top1(split_net.eval(), data.test, 128)
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(whole_losses, label=f"whole, eager PyTorch (test top-1 {100 * acc_whole:.1f}%)")
ax.plot(split_losses, "--", label=f"split, {plan.micro_batches} micro-batches {plan.schedule} "
        f"(test top-1 {100 * acc_split:.1f}%)")
ax.set_xlabel("step"); ax.set_ylabel("training loss"); ax.set_yscale("log"); ax.legend()
plt.tight_layout()
early = max(abs(a - b) for a, b in zip(whole_losses[:10], split_losses[:10]))
late = max(abs(a - b) for a, b in zip(whole_losses, split_losses))
half = datasets.binomial_halfwidth(acc_whole, len(data.test))
print(f"test top-1: whole {100 * acc_whole:.2f}%, split {100 * acc_split:.2f}% "
      f"({100 * (acc_split - acc_whole):+.2f} points; a {len(data.test)}-image measurement is good to "
      f"+-{100 * half:.1f})")
print(f"largest loss difference: {early:.1g} over the first 10 steps, {late:.2g} over all {len(batches)}")"""),
    md("""A split step computes what the whole step computes, up to float summation order: the loss is the
batch mean, the micro-batches' gradients accumulate, and each node's optimizer is LibTorch's, which
steps as PyTorch's (`tests/python/test_training.py` checks gradients and weights after a step within
1e-5 relative, for five zoo models x ten placements). Over hundreds of steps those last-bit
differences grow (Adam divides by the square root of tiny second moments), so the two runs drift
apart like two runs on different hardware: the curves and the accuracies agree, not the last digits.

## One step, GPipe vs 1F1B

A step of the trainer above reports every task it ran (node, micro-batch, block, forward or
backward, the node's own compute ms, the bytes that crossed). `ts.training.accounted_step` turns
it into the step the emulated machines would take: the measured per-block compute (the device's
x 20), the measured bytes over the emulated link, through the training simulator, under either
schedule. GPipe runs every forward then every backward; 1F1B starts a micro-batch's backward as
soon as it can, so fewer micro-batches keep their activations at once."""),
    code("""x, y = batches[0]
stats = trainer.step(x, y)
print(f"measured here: loss {stats.loss:.4f}, wall {stats.wall_ms:.1f} ms, {stats.bytes_sent / 1e3:.0f} kB sent, "
      f"{stats.bytes_received / 1e3:.0f} kB received, {len(stats.events)} tasks")
fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
for ax, schedule in zip(axes, ["gpipe", "1f1b"]):
    tl = training.accounted_step(trainer, stats, BANDWIDTH, RTT, {0: RATIO}, schedule=schedule)
    ts.planning.plot_training_timeline(tl, ax=ax, node_names=["device", "server"])
    ax.set_title(f"{schedule}: {plan.micro_batches} micro-batches, step {tl.makespan_ms:.1f} ms accounted, "
                 f"peak micro-batches in flight per stage {list(tl.peak_in_flight)}", fontsize=9)
plt.tight_layout()
print(f"the planner predicted {plan.step_ms:.1f} ms for this step ({plan.schedule})")"""),
    md("""Here GPipe wins: the server runs all eight forwards back to back while the first results
come back, at the price of keeping every micro-batch's activations until the backwards start. 1F1B
keeps at most two micro-batches in flight (the schedule has two blocks), so the server waits for the
device and the link's round trips between them: less memory, a longer step on this link. The
planner priced both and chose the faster that fits memory; with a memory bound on the server
(`constraints={"memory_bytes": {...}}`) it would take 1F1B or fewer micro-batches.

## Eval semantics

Training runs the model's **eval** semantics: batch norm normalises with its running statistics
(which do not move), dropout is off: what freezing keeps, and the training a frozen backbone's
fine-tuning does. That is why the whole model above is trained in eval mode too, and why Adam is
used: with batch statistics off, plain SGD barely moves this CNN from random weights.

## A server lost in the middle of a step

A step is committed in two phases: every node computes its gradients, then each server applies its
optimizer step, then the device. If a server is lost before the commits, the step raises an error
naming the server, no weight moves anywhere, and the next step can retry. A server started again
from the store holds the store's weights, not the trained ones: the trainer refuses it by version
until the weights are set again (`load_state_dict`, here from a checkpoint taken before the loss)."""),
    code("""checkpoint = trainer.state_dict()           # every node's weights, gathered
before = trainer.version
endpoint = server.endpoint
server.stop()                                # the server is gone
try:
    trainer.step(x, y)
except ts.TesseraError as e:                 # DeadlineError or EngineError, naming the server
    print(f"{type(e).__name__}: {e}")
print(f"the trainer's version: {before} before, {trainer.version} after the failed step")

del server                                   # its sockets closed: the port is free again
server = ts.TrainingServer(store, bind=endpoint).start()   # a new server: the store's initial weights
try:
    trainer.step(x, y)
except ts.EngineError as e:
    print(f"{type(e).__name__}: {e}")
trainer.load_state_dict(checkpoint)          # every node back to the checkpoint
print(f"retried: loss {trainer.step(x, y).loss:.4f}, version {trainer.version}")
server.stop()"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "08_split_training.ipynb"))
