"""Type aliases of tessera's public signatures (``tessera.types``), for editors and type checkers.

    from tessera.types import Costs, Placement, Inputs
    def my_policy(model: ts.Model, costs: Costs, placement: Placement) -> ts.Plan: ...

Each alias names what the functions accept (the checks themselves happen at run time, mostly
in C++): ``Costs`` the per-target costs a planner takes, ``Placement`` one target per atom,
``Inputs`` a model's inputs, ``BandwidthTrace`` a link's bandwidth over time, ``ModelLike``
what the planners plan. This module imports only the engine and torch, so every tessera
module can use it without an import circle.
"""
from __future__ import annotations

import os
from typing import Any, List, Mapping, Protocol, Sequence, Tuple, TypedDict, Union, runtime_checkable

import torch

from . import _core

__all__ = [
    "PathLike",
    "Inputs",
    "Placement",
    "HasAtomMs",
    "PerAtom",
    "CostsDict",
    "Costs",
    "HasDag",
    "ModelLike",
    "TraceSamples",
    "BandwidthTrace",
]

#: A file or directory path: a ``str`` or an ``os.PathLike`` (``pathlib.Path``).
PathLike = Union[str, os.PathLike]

#: A model's inputs: one tensor, or a tuple or list of tensors (positional inputs in order).
Inputs = Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]]

#: One target per atom, in atom order (0 = the device, 1 = the server; more targets in pipelines).
Placement = Sequence[int]


@runtime_checkable
class HasAtomMs(Protocol):
    """Anything with per-atom milliseconds in ``atom_ms``: a :class:`tessera.CostTable` (a profile)
    or a :class:`tessera.predict.PredictedCosts` (a prediction)."""

    @property
    def atom_ms(self) -> Sequence[float]:
        """Milliseconds per atom, in atom order."""
        ...


#: Per-atom values (ms, or mJ for energy): a sequence of numbers in atom order, or an object
#: with ``atom_ms`` (a CostTable, PredictedCosts).
PerAtom = Union[Sequence[float], HasAtomMs]


class CostsDict(TypedDict, total=False):
    """The keys of a costs mapping (:func:`tessera.planning.make_cost_model` reads them):
    ``device`` and ``server`` (required): per-atom ms on each target; ``energy`` (optional):
    ``{"device": mJ per atom, "server": mJ per atom}``; ``energy_mj_per_byte`` (optional): the
    radio's energy per byte sent (mJ). Any other key is an ``InvalidArgumentError``."""

    device: PerAtom
    server: PerAtom
    energy: Mapping[str, PerAtom]
    energy_mj_per_byte: float


#: The per-target costs a planner takes: ``{"device": PerAtom, "server": PerAtom}`` plus the
#: optional ``"energy"`` and ``"energy_mj_per_byte"`` keys (see :class:`CostsDict`). Any mapping
#: with those keys is accepted (a plain ``dict`` built in steps type-checks as a Mapping).
Costs = Union[CostsDict, Mapping[str, Any]]


@runtime_checkable
class HasDag(Protocol):
    """Anything with a ``dag()`` method returning the atom DAG: a :class:`tessera.Model`."""

    def dag(self) -> _core.AtomDag:
        """The atom DAG the planners read."""
        ...


#: What a planner plans: a :class:`tessera.Model` (anything with ``dag()``) or a bound
#: ``tessera.planning.AtomDag`` (a DAG built by hand, ``tessera.testing.random_dag``).
ModelLike = Union[HasDag, _core.AtomDag]

#: A bandwidth trace as samples: ``[(time_s, Mbit/s), ...]`` (what :func:`tessera.read_trace` returns).
TraceSamples = Sequence[Tuple[float, float]]

#: What :class:`tessera.Link` takes as ``trace``: a trace file path (lines "time_s Mbit/s") or samples.
BandwidthTrace = Union[PathLike, TraceSamples]
