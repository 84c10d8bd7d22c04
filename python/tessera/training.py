"""Split and pipelined training over atoms: each node trains its own part.

    tm = ts.load(path, example_inputs=xs, trainable=True)       # parameters stay parameters
    tm.save("store/net")                                          # what the server opens
    with ts.TrainingServer("store/net") as srv:                   # or spawn_training_server(...)
        trainer = ts.SplitTrainer(tm, plan, server=srv.endpoint,
                                  optimizer=("sgd", {"lr": 0.05, "momentum": 0.9}),
                                  loss="cross_entropy", labels_on="device", micro_batches=4, schedule="1f1b")
        for x, y in loader:
            stats = trainer.step(x, y)     # loss, per-node forward / backward ms, bytes, events
        weights = trainer.state_dict()     # the whole model's weights, gathered

The device (node 0) holds inputs and labels, runs its own atoms and the loss, and drives the
servers (node k = ``server[k - 1]``); only activations and their gradients cross. Each node
steps its own optimizer (LibTorch's SGD / Adam: they step as PyTorch's). A step that fails
anywhere (a server killed, a timeout) moves no weight and raises an error naming the server;
the next step can retry. Training keeps the model's eval semantics (batch norm with its running
statistics, dropout off). Engine: ``cpp/include/tessera/runtime/training.h``.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import torch

from . import _core
from .atoms import Model, _as_tuple
from .runtime import _Served
from .types import Inputs, PathLike

__all__ = ["SplitTrainer", "TrainingServer", "TrainingNode", "spawn_training_server", "profile_training", "TrainingProfile",
           "optimizer_options", "OPTIMIZERS", "measured_stages", "accounted_step"]

#: The optimizers every node can run, with the options each takes.
OPTIMIZERS = {"sgd": ("lr", "momentum", "weight_decay"), "adam": ("lr", "betas", "eps", "weight_decay")}


def optimizer_options(optimizer: str | tuple | Mapping[str, Any]) -> _core.OptimizerOptions:
    """``"sgd"``, ``("sgd", {"lr": 0.05, "momentum": 0.9})`` or ``{"kind": "adam", "lr": 1e-3}`` ->
    the engine's options, checked (an unknown optimizer or option is an InvalidArgumentError naming it)."""
    if isinstance(optimizer, str):
        kind, opts = optimizer, {}
    elif isinstance(optimizer, tuple) and len(optimizer) == 2 and isinstance(optimizer[1], Mapping):
        kind, opts = optimizer
    elif isinstance(optimizer, Mapping):
        opts = dict(optimizer)
        kind = opts.pop("kind", "sgd")
    else:
        raise _core.InvalidArgumentError(
            f"optimizer {optimizer!r}: give a name ('sgd', 'adam'), (name, options) or a dict with 'kind'")
    if kind not in OPTIMIZERS:
        raise _core.InvalidArgumentError(f"optimizer '{kind}' is unknown (known: {', '.join(OPTIMIZERS)})")
    o = _core.OptimizerOptions()
    o.kind = kind
    for k, v in opts.items():
        if k not in OPTIMIZERS[kind]:
            raise _core.InvalidArgumentError(
                f"optimizer '{kind}' has no option '{k}' (it takes {', '.join(OPTIMIZERS[kind])})")
        if k == "betas":
            o.beta1, o.beta2 = (float(b) for b in v)
        else:
            setattr(o, k, float(v))
    o.check()
    return o


class TrainingServer(_Served):
    """A server's side of split training, in this process: serves one trainable atom store (a
    frozen one is an InvalidArgumentError naming it). ``start()`` returns the server, ``stop()``
    (or leaving a ``with`` block) ends it. For another process: :func:`spawn_training_server`."""

    def __init__(self, store: PathLike, bind: str = "tcp://127.0.0.1:*", threads: int = 0,
                 max_message_mb: int = 4096, verbose: bool = False) -> None:
        o = _core.TrainingServerOptions()
        o.bind = bind
        o.threads = int(threads)
        o.max_message_bytes = int(max_message_mb) << 20
        o.verbose = bool(verbose)
        self._core = _core.TrainingServer(os.fspath(store), o)

    def stats(self) -> _core.TrainingServerStats:
        """Commands served (forwards, backwards, commits, aborts, errors) and the weights' version."""
        return self._core.stats()

    def __repr__(self) -> str:
        return f"tessera.TrainingServer({self.endpoint or 'not started'})"


def spawn_training_server(store: PathLike, bind: str = "tcp://127.0.0.1:*", extra: Sequence[str] = (),
                          timeout: float = 120) -> tuple[Any, str]:
    """Start ``tessera train-serve STORE`` in another process; returns (Popen, endpoint). Stop it
    with :func:`tessera.runtime.stop_server` (or kill it: a step in flight then fails by name)."""
    from .runtime import spawn_server

    return spawn_server(store, bind=bind, extra=extra, timeout=timeout, command="train-serve")


def _placement_of(model: Model, plan: Any) -> tuple[list[int], dict]:
    """A plan-like -> (placement, the defaults it carries: micro_batches, schedule)."""
    defaults = {}
    for key in ("micro_batches", "schedule"):
        if hasattr(plan, key):
            defaults[key] = getattr(plan, key)
    placement = plan.placement if hasattr(plan, "placement") else plan
    placement = [int(p) for p in placement]
    if len(placement) != model.num_atoms:
        raise _core.InvalidArgumentError(
            f"the placement has {len(placement)} entries, the model has {model.num_atoms} atoms")
    return placement, defaults


class SplitTrainer:
    """Trains a trainable model split over the device and servers (see the module's docstring).

    plan: a placement (node per atom: 0 device, k = ``server[k - 1]``), a :class:`tessera.Plan`,
        or a training plan (its ``micro_batches`` and ``schedule`` become the defaults).
    optimizer: ``"sgd"``, ``("sgd", {"lr": .., "momentum": ..})``, ``("adam", {"lr": .., "betas": ..})``.
    loss: ``"cross_entropy"`` (labels: int64 class ids) or ``"mse"`` (labels: the target).
    labels_on: ``"device"``: the loss's output must be made on the device (a U-shaped split: the
        labels and the logits' gradient never leave it); ``"server"``: no such constraint.
    micro_batches, schedule: the batch is cut into micro-batches run as ``"gpipe"`` (every forward
        then every backward) or ``"1f1b"`` (a backward as soon as one is ready); remote blocks run
        while the device computes.
    output: which model output the loss reads (needed when the model has several).
    keep_gradients: every node keeps its last step's gradients (:meth:`gradients`).
    max_in_flight: micro-batches whose activations are kept at once, at most (bounds every node's
        activation memory; 0: the schedule's own - every one for GPipe, the block count for 1F1B).
        Each step's ``peak_stored_bytes`` says what every node kept at most.
    """

    def __init__(self, model: Model, plan: Any, server: str | Sequence[str] = (),
                 optimizer: str | tuple | Mapping[str, Any] = ("sgd", {"lr": 0.01}), loss: str = "cross_entropy",
                 labels_on: str = "device", micro_batches: int | None = None, schedule: str | None = None,
                 output: int = -1, timeout_ms: int = 30000, keep_gradients: bool = False,
                 max_in_flight: int = 0) -> None:
        if not isinstance(model, Model):
            raise _core.InvalidArgumentError(f"model must be a tessera.Model, got {type(model).__name__}")
        placement, defaults = _placement_of(model, plan)
        o = _core.TrainerOptions()
        o.servers = [server] if isinstance(server, str) else list(server)
        o.optimizer = optimizer_options(optimizer)
        o.loss = loss
        o.labels_on = labels_on
        o.micro_batches = int(micro_batches if micro_batches is not None else defaults.get("micro_batches", 1))
        o.schedule = str(schedule if schedule is not None else defaults.get("schedule", "gpipe"))
        o.output = int(output)
        o.timeout_ms = int(timeout_ms)
        o.keep_gradients = bool(keep_gradients)
        o.max_in_flight = int(max_in_flight)
        self.model = model
        self.options = o
        self._core = _core.SplitTrainer(model._core, placement, o)

    def step(self, inputs: Inputs, labels: torch.Tensor) -> _core.StepStats:
        """One training step on a batch (forward and backward on every node, then the commits);
        returns its StepStats (loss, wall_ms, per-node forward_ms / backward_ms, bytes, events)."""
        return self._core.step(list(_as_tuple(inputs)), labels)

    def fit(self, batches: Iterable[tuple[Inputs, torch.Tensor]], epochs: int = 1,
            progress: bool | None = None) -> list[float]:
        """Steps over ``(inputs, labels)`` batches ``epochs`` times; returns every step's loss (a
        tqdm bar on a terminal, or when ``progress`` is true)."""
        from .profiling import progress_bar

        batches = list(batches)
        bar = progress_bar(len(batches) * int(epochs), "split training", progress)
        losses = []
        for _ in range(int(epochs)):
            for x, y in batches:
                losses.append(self.step(x, y).loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if bar is not None:
            bar.close()
        return losses

    def predict(self, inputs: Inputs) -> torch.Tensor:
        """The loss's output for ``inputs`` through the nodes (no training)."""
        return self._core.predict(list(_as_tuple(inputs)))

    def state_dict(self) -> "OrderedDict[str, torch.Tensor]":
        """Every parameter of the model by its ``state_dict`` name, gathered from the nodes (copies)."""
        return OrderedDict(self._core.state_dict())

    def gradients(self) -> "OrderedDict[str, torch.Tensor]":
        """The last step's gradient of every parameter, gathered (made with ``keep_gradients=True``)."""
        return OrderedDict(self._core.gradients())

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Set every node's parameters (all of them must be given; optimizer state restarts)."""
        self._core.load_state_dict([(k, v.detach()) for k, v in state.items()])

    @property
    def version(self) -> int:
        """Optimizer steps applied so far."""
        return self._core.version

    @property
    def placement(self) -> list[int]:
        return list(self._core.placement)

    def blocks(self) -> list[tuple[list[int], int]]:
        """The schedule's blocks in execution order: (atom ids, node)."""
        return [(list(a), n) for a, n in self._core.blocks()]

    def __repr__(self) -> str:
        nodes = sorted(set(self.placement))
        return (f"tessera.SplitTrainer({self.model.num_atoms} atoms on nodes {nodes}, "
                f"{self.options.micro_batches} micro-batches {self.options.schedule}, version {self.version})")


class TrainingNode:
    """One node's part of split training, in this process: the parameters of ``atoms`` (the model's
    own tensors, made to require grad), their optimizer, and what each micro-batch keeps between
    its forward and its backward. What the device and every server run inside; use it directly to
    time blocks or to drive a schedule of your own."""

    def __init__(self, model: Model, atoms: Iterable[int], optimizer: str | tuple | Mapping[str, Any] = "sgd") -> None:
        self._core = _core.TrainingNode(model._core, [int(a) for a in atoms], optimizer_options(optimizer))

    def forward(self, micro_batch: int, block: Sequence[int], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Run a block (a convex set of this node's atoms) under autograd for ``micro_batch``;
        ``inputs`` follow ``model.train_block(block).inputs``. Returns the outputs (detached)."""
        return self._core.forward(int(micro_batch), [int(a) for a in block], list(inputs))

    def backward(self, micro_batch: int, block: Sequence[int],
                 grad_outputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The gradients of that forward's outputs -> its inputs' (parameters' accumulate)."""
        return self._core.backward(int(micro_batch), [int(a) for a in block], list(grad_outputs))

    def commit(self) -> None:
        """Apply the optimizer step to the accumulated gradients and zero them."""
        self._core.commit()

    def discard(self) -> None:
        """Drop the accumulated gradients and kept activations; no weight moves."""
        self._core.discard()

    @property
    def version(self) -> int:
        """Optimizer steps applied."""
        return self._core.version

    @property
    def peak_stored_bytes(self) -> int:
        """The most activation bytes kept at once since the last commit or discard."""
        return self._core.peak_stored_bytes

    def state(self) -> "OrderedDict[str, torch.Tensor]":
        """Copies of its parameters by name."""
        return OrderedDict(self._core.state())


class TrainingProfile:
    """Per-atom forward and backward ms of a trainable model on this machine (median of repeats),
    with the bytes each atom's outputs keep for backward: what the training planner reads."""

    def __init__(self, forward_ms: Sequence[float], backward_ms: Sequence[float], stored_bytes: Sequence[int],
                 batch: int) -> None:
        self.forward_ms = [float(v) for v in forward_ms]
        self.backward_ms = [float(v) for v in backward_ms]
        self.stored_bytes = [int(v) for v in stored_bytes]
        self.batch = int(batch)

    @property
    def step_ms(self) -> float:
        """Forward plus backward of every atom, one after the other."""
        return sum(self.forward_ms) + sum(self.backward_ms)

    def __repr__(self) -> str:
        return (f"TrainingProfile({len(self.forward_ms)} atoms, batch {self.batch}: forward {sum(self.forward_ms):.2f} "
                f"ms, backward {sum(self.backward_ms):.2f} ms)")


def profile_training(model: Model, inputs: Inputs, repeats: int = 5, warmup: int = 1) -> TrainingProfile:
    """Measure each atom's forward and backward ms under autograd, one atom at a time in the
    model's order (forward) and the reverse order (backward, with random output gradients), on
    ``inputs``' batch; the median of ``repeats`` passes after ``warmup``."""
    if not model.trainable:
        raise _core.InvalidArgumentError("profile_training needs a trainable model (ts.load(..., trainable=True))")
    xs = list(_as_tuple(inputs))
    n = model.num_atoms
    node = TrainingNode(model, range(n))
    g = model.graph
    fwd: list[list[float]] = [[] for _ in range(n)]
    bwd: list[list[float]] = [[] for _ in range(n)]
    stored = [0] * n
    atoms = model.atoms
    for rep in range(int(warmup) + int(repeats)):
        env = {g.inputs[i]: x for i, x in enumerate(xs)}
        outs = {}
        for a in range(n):
            ins = [env[v] for v in atoms[a].inputs]
            t0 = time.perf_counter()
            ys = node.forward(0, [a], ins)
            dt = (time.perf_counter() - t0) * 1e3
            for v, y in zip(atoms[a].outputs, ys):
                env[v] = y
            outs[a] = ys
            stored[a] = sum(y.numel() * y.element_size() for y in ys)
            if rep >= warmup:
                fwd[a].append(dt)
        for a in reversed(range(n)):
            grads = [torch.randn_like(y) if y.is_floating_point() else torch.zeros_like(y) for y in outs[a]]
            t0 = time.perf_counter()
            node.backward(0, [a], grads)
            dt = (time.perf_counter() - t0) * 1e3
            if rep >= warmup:
                bwd[a].append(dt)
        node.discard()
    batch = int(xs[0].shape[0]) if xs and xs[0].dim() > 0 else 1
    return TrainingProfile([_median(v) for v in fwd], [_median(v) for v in bwd], stored, batch)


def _median(v: Sequence[float]) -> float:
    v = sorted(v)
    return v[len(v) // 2] if v else 0.0


def measured_stages(trainer: SplitTrainer, stats: _core.StepStats, bandwidth_mbps: float | None = None,
                    rtt_ms: float = 0.0, slowdown: Mapping[int, float] | Sequence[float] | None = None) -> list[dict]:
    """A measured step as the pipeline stages the training simulator reads
    (``ts.planning.simulate_training``): one stage per block of the trainer's schedule, with the
    median per-micro-batch forward and backward ms its node measured (x ``slowdown[node]``: an
    emulated slower device or server), and the activations and gradients that crossed, priced on
    an emulated link of ``bandwidth_mbps`` (serialisation) and ``rtt_ms`` (half after each send);
    without a bandwidth the links cost nothing. The loss counts as the last stage's forward; when a
    server runs the first block, a stage of the device's own that only uploads the inputs comes
    first."""
    blocks = trainer.blocks()
    k = len(blocks)
    slow = dict(enumerate(slowdown)) if isinstance(slowdown, Sequence) else dict(slowdown or {})
    # (kind, what, block) -> per-micro-batch values: F/B compute ms, bytes sent and received
    series: dict = defaultdict(list)
    for e in stats.events:
        series[(e.kind, "ms", e.block)].append(e.compute_ms)
        series[(e.kind, "sent", e.block)].append(e.bytes_sent)
        series[(e.kind, "received", e.block)].append(e.bytes_received)
    med = lambda kind, what, b: _median(series[(kind, what, b)])  # noqa: E731
    send_f, send_b = [0.0] * k, [0.0] * k  # bytes each stage sends forward / backward
    for b, (_, node) in enumerate(blocks):
        if node != 0:  # a remote block: its inputs came from the stage before, its outputs go on
            if b > 0:
                send_f[b - 1] = max(send_f[b - 1], med("F", "sent", b))
            send_f[b] = max(send_f[b], med("F", "received", b))
            send_b[b] = max(send_b[b], med("B", "received", b))
            if b + 1 < k:
                send_b[b + 1] = max(send_b[b + 1], med("B", "sent", b))
    price = (lambda n: n * 8.0 / (bandwidth_mbps * 1e3)) if bandwidth_mbps else (lambda n: 0.0)
    stages = []
    if k and blocks[0][1] != 0 and med("F", "sent", 0):  # the inputs' upload, when a server runs first
        stages.append({"node": 0, "fwd_ms": 0.0, "bwd_ms": 0.0, "send_fwd_ms": price(med("F", "sent", 0)),
                       "send_bwd_ms": 0.0, "fwd_delay_ms": rtt_ms / 2, "bwd_delay_ms": 0.0})
    for b, (_, node) in enumerate(blocks):
        f = slow.get(node, 1.0)
        stages.append({"node": node, "fwd_ms": (med("F", "ms", b) + (med("L", "ms", -1) if b == k - 1 else 0.0)) * f,
                       "bwd_ms": med("B", "ms", b) * f, "send_fwd_ms": price(send_f[b]) if b + 1 < k else 0.0,
                       "send_bwd_ms": price(send_b[b]) if b > 0 else 0.0,
                       "fwd_delay_ms": rtt_ms / 2 if send_f[b] and b + 1 < k else 0.0,
                       "bwd_delay_ms": rtt_ms / 2 if send_b[b] and b > 0 else 0.0})
    return stages


def accounted_step(trainer: SplitTrainer, stats: _core.StepStats, bandwidth_mbps: float | None = None,
                   rtt_ms: float = 0.0, slowdown: Mapping[int, float] | Sequence[float] | None = None,
                   micro_batches: int | None = None, schedule: str | None = None) -> _core.TrainingTimeline:
    """The step's time on the emulated machines and link: its :func:`measured_stages` through the
    training simulator with the trainer's micro-batches and schedule (or those given). The
    timeline's ``makespan_ms`` is the accounted step; ``stats.wall_ms`` is what this machine took."""
    from .planning import simulate_training

    stages = measured_stages(trainer, stats, bandwidth_mbps, rtt_ms, slowdown)
    return simulate_training(stages, int(micro_batches or trainer.options.micro_batches),
                             str(schedule or trainer.options.schedule))
