"""Test oracles of the planners, shared by the tests and the benchmarks (like numpy.testing).

    from tessera import testing as tt

    dag = tt.random_dag(random.Random(1), 50)                      # a random AtomDag
    tt.reference_latency(dag, dev, srv, placement, bandwidth_mbps=5.85, rtt_ms=20)
    tt.brute_force(dag, dev, srv, 5.85, rtt_ms=20)                 # best of all 2^n placements
    tt.networkx_min_cut(dag, dev, srv, 5.85, rtt_ms=20).value_ms   # DADS max flow in networkx

Everything here is written independently of the C++ planners, in plain Python, so it
can check them: the latency model of ``cpp/include/tessera/plan/cost_model.h`` (the
one ``evaluate`` and every planner use) spelled out term by term, an exhaustive search
over placements, and the DADS cost graph (Hu et al., INFOCOM 2019) solved by networkx.
networkx is imported only by the functions that need it (``import tessera`` never does).
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Collection, Optional, Sequence

from . import _core

__all__ = ["random_dag", "transfer_ms", "reference_latency", "brute_force", "NetworkxDads", "NxCut",
           "networkx_min_cut"]

BRUTE_FORCE_MAX_ATOMS = 20


# ---- random DAGs ---------------------------------------------------------------------------------

def random_dag(rng: random.Random, n: int, *, skip: float = 0.1, window: Optional[int] = None, chain: float = 0.9,
               two_outputs: float = 0.2, input_fanout: float = 0.03, extra_outputs: float = 0.05,
               value_bytes: tuple = (0, 4000), byte_unit: float = 1.0,
               param_bytes: tuple = (0, 10 ** 6)) -> "_core.AtomDag":
    """A random ``AtomDag`` of atoms 0..n-1 in topological order, drawn from ``rng``
    (a ``random.Random``; the same seed and options give the same DAG).

    Atom a produces one value, or two with probability ``two_outputs``. Its first value
    feeds atom a + 1 with probability ``chain`` (1: always, a chain with skip edges);
    every value also feeds each later atom c with probability ``skip * 8 / max(span, 8)``
    (skip edges, fan-out, multi-consumer values; values with no consumer are dead). The
    later atoms considered are all of them (``window=None``, span = n) or the next
    ``window`` ones (span = window: O(n * window) draws, for DAGs of thousands of atoms).
    The model input feeds atom 0 and each atom with probability ``input_fanout``. Outputs:
    the first value of the last atom, and any value with probability ``extra_outputs``.
    Bytes: ``byte_unit`` x a whole number in ``value_bytes`` (at least 1 for the input);
    param_bytes: a whole number in ``param_bytes`` per atom. A probability of 0 (or a
    chain of 1) draws nothing from ``rng``.
    """
    lo, hi = value_bytes
    p_skip = skip * 8 / max(n if window is None else window, 8)

    def draw(p):
        return p > 0 and rng.random() < p

    input_consumers = {0} | ({c for c in range(n) if rng.random() < input_fanout} if input_fanout > 0 else set())
    values = [_core.DagValue(producer=-1, consumers=sorted(input_consumers),
                             bytes=byte_unit * rng.randint(max(lo, 1), hi), name="input")]
    for a in range(n):
        outputs = 1 if two_outputs <= 0 or rng.random() < 1 - two_outputs else 2
        end = n if window is None else min(n, a + 1 + window)
        for o in range(outputs):
            consumers = [c for c in range(a + 1, end)
                         if (c == a + 1 and o == 0 and (chain >= 1 or rng.random() < chain)) or draw(p_skip)]
            values.append(_core.DagValue(producer=a, consumers=consumers, bytes=byte_unit * rng.randint(lo, hi),
                                         is_output=(a == n - 1 and o == 0) or draw(extra_outputs),
                                         name=f"v{a}_{o}"))
    return _core.AtomDag(num_atoms=n, values=values,
                         param_bytes=[float(rng.randint(*param_bytes)) for _ in range(n)],
                         atom_names=[f"layer{a}" for a in range(n)])


# ---- the latency model, and brute force over placements ----------------------------------------

def transfer_ms(nbytes: float, bandwidth_mbps: float, rtt_ms: float) -> float:
    """One transfer of a value between device and server: serialisation + half a round trip (ms)."""
    return nbytes * 8 / (bandwidth_mbps * 1e6) * 1e3 + rtt_ms / 2


def reference_latency(dag: _core.AtomDag, device_ms: Sequence[float], server_ms: Sequence[float], placement: Sequence[int],
                      bandwidth_mbps: float, rtt_ms: float = 0.0, server_load: float = 1.0,
                      device_load: float = 1.0) -> float:
    """Latency (ms) of ``placement`` (0 = device, 1 = server, per atom) under the latency model
    of cost_model.h written out directly: every atom's compute on its target (x the target's
    load), plus one transfer per value and per other target that needs it (its consumers'
    targets, and the device for a model output; model inputs live on the device)."""
    x = placement
    total = sum(device_ms[a] * device_load if x[a] == 0 else server_ms[a] * server_load
                for a in range(dag.num_atoms))
    for v in dag.values:
        src = 0 if v.producer < 0 else x[v.producer]
        dests = {x[c] for c in v.consumers} | ({0} if v.is_output else set())
        dests.discard(src)
        total += len(dests) * transfer_ms(v.bytes, bandwidth_mbps, rtt_ms)
    return total


def brute_force(dag: _core.AtomDag, device_ms: Sequence[float], server_ms: Sequence[float], bandwidth_mbps: float,
                rtt_ms: float = 0.0, server_load: float = 1.0, device_load: float = 1.0,
                chain: bool = False) -> tuple[float, list[int] | None]:
    """(latency_ms, placement) of the best placement by exhaustive search under
    :func:`reference_latency`: all 2^n placements (the optimum every exact planner must
    reach), or with ``chain=True`` only the n + 1 cuts of the atom order,
    [0] * k + [1] * (n - k) (what the ``chain`` planner searches). The first best
    placement in enumeration order on ties. At most 20 atoms without ``chain``."""
    n = dag.num_atoms
    if chain:
        candidates = ([0] * k + [1] * (n - k) for k in range(n + 1))
    else:
        if n > BRUTE_FORCE_MAX_ATOMS:
            raise _core.InvalidArgumentError(f"brute_force over 2^{n} placements: at most {BRUTE_FORCE_MAX_ATOMS} atoms")
        candidates = itertools.product((0, 1), repeat=n)
    best, best_x = float("inf"), None
    for x in candidates:
        t = reference_latency(dag, device_ms, server_ms, x, bandwidth_mbps, rtt_ms, server_load, device_load)
        if t < best:
            best, best_x = t, list(x)
    return best, best_x


# ---- the DADS graph in networkx -------------------------------------------------------------------

class NxCut:
    """A minimum cut of :class:`NetworkxDads`: ``value_ms`` (the minimum latency),
    ``finite_edges`` (finite-capacity edges of the graph), ``placement`` (0/1 per atom: the
    device is the source side of the cut; one optimal placement)."""

    __slots__ = ("value_ms", "finite_edges", "_source_side", "_n")

    def __init__(self, value_ms: float, finite_edges: int, source_side: Collection[Any], n: int) -> None:
        self.value_ms, self.finite_edges, self._source_side, self._n = value_ms, finite_edges, source_side, n

    @property
    def placement(self) -> list:
        return [0 if a in self._source_side else 1 for a in range(self._n)]

    def __repr__(self):
        return f"NxCut(value_ms={self.value_ms!r}, finite_edges={self.finite_edges})"


class NetworkxDads:
    """The DADS cost graph of a DAG in networkx, built once; :meth:`set_bandwidth` rewrites
    the capacities, :meth:`cut` runs ``nx.minimum_cut`` (preflow-push).

    s = the device, t = the server; an atom on the source side runs on the device. Edges:
    s -> a (server_ms x server_load: paid if a runs on the server), a -> t (device_ms x
    device_load). A value of one consumer c: producer -> c and c -> producer, one transfer
    each way (a model input's producer is s). Several consumers: an auxiliary "up" node
    (producer -> up, up -> each consumer, infinite) and "down" node (each consumer -> down,
    infinite, down -> producer), so the value is paid once per direction. A model output:
    s -> out (infinite) -> producer, paid if the producer is on the server (the return
    transfer, which then also serves consumers on the device). Parallel edges add up. A
    missing capacity is infinite. With ``scale``, capacities are rounded to integers in
    units of 1/scale ms (exact integer max flow; the value moves by at most
    finite_edges / (2 scale) ms) and the cut value is given back in ms.
    """

    def __init__(self, dag: _core.AtomDag, device_ms: Sequence[float], server_ms: Sequence[float], rtt_ms: float = 0.0,
                 server_load: float = 1.0, device_load: float = 1.0, scale: Optional[float] = None) -> None:
        import networkx as nx

        self.n = dag.num_atoms
        self.rtt_ms, self.scale = float(rtt_ms), scale
        self._compute = {}  # edge -> ms, independent of the bandwidth
        self._transfers = []  # (u, w, bytes)
        g = nx.DiGraph()
        g.add_nodes_from(["s", "t"])
        for a in range(self.n):
            self._compute[("s", a)] = server_ms[a] * server_load
            self._compute[(a, "t")] = device_ms[a] * device_load
        for i, v in enumerate(dag.values):
            src = "s" if v.producer < 0 else v.producer
            consumers = list(v.consumers)
            if len(consumers) == 1:
                self._transfers.append((src, consumers[0], v.bytes))
            elif consumers:
                self._transfers.append((src, ("up", i), v.bytes))
                g.add_edges_from((("up", i), c) for c in consumers)  # infinite
            if v.producer < 0:
                continue
            if v.is_output:
                g.add_edge("s", ("out", i))  # infinite
                self._transfers.append((("out", i), v.producer, v.bytes))
            elif len(consumers) == 1:
                self._transfers.append((consumers[0], v.producer, v.bytes))
            elif consumers:
                self._transfers.append((("down", i), v.producer, v.bytes))
                g.add_edges_from((c, ("down", i)) for c in consumers)  # infinite
        g.add_edges_from(self._compute)
        g.add_edges_from((u, w) for u, w, _ in self._transfers)
        self.graph = g
        self.finite_edges = len(set(self._compute) | {(u, w) for u, w, _ in self._transfers})

    def set_bandwidth(self, bandwidth_mbps: float) -> None:
        """Capacities for this bandwidth (Mbit/s): compute edges plus transfer times."""
        caps = dict(self._compute)
        for u, w, nbytes in self._transfers:
            caps[(u, w)] = caps.get((u, w), 0.0) + transfer_ms(nbytes, bandwidth_mbps, self.rtt_ms)
        g, scale = self.graph, self.scale
        for (u, w), c in caps.items():
            g[u][w]["capacity"] = c if scale is None else int(round(c * scale))

    def cut(self) -> NxCut:
        """The minimum s-t cut at the capacities last set."""
        import networkx as nx

        value, (source_side, _) = nx.minimum_cut(self.graph, "s", "t")
        return NxCut(value if self.scale is None else value / self.scale, self.finite_edges, source_side, self.n)


def networkx_min_cut(dag: _core.AtomDag, device_ms: Sequence[float], server_ms: Sequence[float], bandwidth_mbps: float,
                     rtt_ms: float = 0.0, server_load: float = 1.0, device_load: float = 1.0,
                     scale: Optional[float] = None) -> NxCut:
    """The minimum latency (ms) of ``dag`` over all placements, by networkx max flow on the DADS
    graph (:class:`NetworkxDads`; float capacities, or integers in units of 1/scale ms)."""
    g = NetworkxDads(dag, device_ms, server_ms, rtt_ms, server_load, device_load, scale)
    g.set_bandwidth(bandwidth_mbps)
    return g.cut()
