"""Atoms: a model cut once into executable pieces, combined at run time.

``load`` accepts a TorchScript file, a ``torch.jit.ScriptModule`` or an
``nn.Module`` (traced on the example inputs). The returned :class:`Model`
exposes the operator graph, the atoms, the atom store, blocks and split runs.
"""
from __future__ import annotations

import io
import os
from typing import Any, Iterable, Sequence

import torch

from . import _core
from .types import Inputs, Placement

__all__ = ["Model", "Block", "load"]


def _as_tuple(inputs) -> tuple:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, (list, tuple)):
        for i, x in enumerate(inputs):
            if not isinstance(x, torch.Tensor):
                raise _core.InvalidArgumentError(f"input {i} is a {type(x).__name__}, expected a torch.Tensor")
        return tuple(inputs)
    raise _core.InvalidArgumentError(f"inputs must be a tensor or a tuple of tensors, got {type(inputs).__name__}")


def _rebuild(structure: str, flat: Sequence[torch.Tensor]):
    """Rebuild nested outputs from the structure string, e.g. "T(0,L(1,2))"."""
    pos = 0

    def parse():
        nonlocal pos
        if structure[pos] in "TL":
            kind = structure[pos]
            pos += 2  # skip "T("
            items = []
            while structure[pos] != ")":
                items.append(parse())
                if structure[pos] == ",":
                    pos += 1
            pos += 1
            return tuple(items) if kind == "T" else list(items)
        start = pos
        while pos < len(structure) and structure[pos].isdigit():
            pos += 1
        return flat[int(structure[start:pos])]

    return parse()


class Block:
    """A convex set of atoms spliced into one executable TorchScript function."""

    def __init__(self, core: _core.Block) -> None:
        self._core = core

    @property
    def atoms(self) -> list[int]:
        return list(self._core.atoms)

    @property
    def inputs(self) -> list[int]:
        """Value ids the block reads, in call order."""
        return list(self._core.inputs)

    @property
    def outputs(self) -> list[int]:
        """Value ids the block returns, in order."""
        return list(self._core.outputs)

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        return self._core(list(_as_tuple(inputs)))

    def graph_str(self) -> str:
        return self._core.graph_str()

    def __repr__(self) -> str:
        return f"Block(atoms={self.atoms}, inputs={self.inputs}, outputs={self.outputs})"


class Model:
    """A model cut into atoms. Build one with :func:`load` or :meth:`Model.open`."""

    def __init__(self, core: _core.Model) -> None:
        self._core = core

    # -- construction ---------------------------------------------------------
    @classmethod
    def open(cls, store: str | os.PathLike, atoms: Iterable[int] | None = None) -> "Model":
        """Open an atom store; with ``atoms``, load only those atoms' files now."""
        return cls(_core.Model.open(os.fspath(store), None if atoms is None else [int(a) for a in atoms]))

    # -- what it is -----------------------------------------------------------
    @property
    def graph(self) -> _core.OpGraph:
        """The operator DAG: nodes (op kinds), values (shape, dtype, bytes)."""
        return self._core.graph

    @property
    def atoms(self) -> list[_core.Atom]:
        return list(self._core.atoms)

    @property
    def num_atoms(self) -> int:
        return self._core.num_atoms

    @property
    def hash(self) -> str:
        return self._core.hash

    def dag(self) -> _core.AtomDag:
        """The atom DAG the planners read (``_core.AtomDag``)."""
        return self._core.dag()

    def loaded_atoms(self) -> list[int]:
        return list(self._core.loaded_atoms())

    def loaded_param_bytes(self) -> int:
        return self._core.loaded_param_bytes()

    @property
    def trainable(self) -> bool:
        """True when loaded with ``trainable=True``: the atoms keep their parameters as parameters."""
        return self._core.trainable

    def parameters(self, atoms: Iterable[int] | None = None) -> dict[str, torch.Tensor]:
        """A trainable model's parameters (of these atoms; all by default) by qualified name, as
        ``state_dict`` names them: the very tensors the atoms run with (an in-place update changes
        the model). Empty for a model that is not trainable."""
        return dict(self._core.parameters([] if atoms is None else [int(a) for a in atoms]))

    def train_block(self, atoms: Iterable[int]) -> _core.TrainBlock:
        """The training block of a convex set of atoms: ``block(inputs, params)`` runs under autograd
        with the parameters (named by ``block.params``) after the activations."""
        return self._core.train_block([int(a) for a in atoms])

    def summary(self, max_rows: int = -1) -> str:
        """An op table with shapes and bytes, then one line per atom."""
        lines = [self.graph.summary(max_rows)]
        lines.append(f"{'atom':>5}  {'ops':<40} {'out bytes':>12} {'param bytes':>12}")
        for i, a in enumerate(self.atoms):
            if max_rows >= 0 and i >= max_rows:
                lines.append(f"  ... {self.num_atoms - max_rows} more atoms")
                break
            ops = ",".join(a.op_kinds)
            ops = ops if len(ops) <= 40 else ops[:37] + "..."
            lines.append(f"{a.id:>5}  {ops:<40} {a.output_bytes:>12} {a.param_bytes:>12}")
        total = sum(a.param_bytes for a in self.atoms)
        lines.append(f"{self.num_atoms} atoms, {self.graph.num_compute_nodes()} compute ops, "
                     f"{total / 1e6:.1f} MB of weights, hash {self.hash[:16]}")
        return "\n".join(lines)

    # -- store ----------------------------------------------------------------
    def save(self, store: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the atom store (manifest.json + one TorchScript file per atom)."""
        self._core.save(os.fspath(store), overwrite)

    # -- execution ------------------------------------------------------------
    def combine(self, atoms: Iterable[int]) -> Block:
        """One executable block from a convex set of atoms (cached)."""
        return Block(self._core.combine([int(a) for a in atoms]))

    def run_flat(self, inputs: Inputs, placement: Placement | None = None) -> list[torch.Tensor]:
        """Like :meth:`run` but returns the flattened list of output tensors."""
        xs = list(_as_tuple(inputs))
        if placement is None:
            return self._core.run(xs)
        return self._core.run(xs, [int(p) for p in placement])

    def run_blocks(self, inputs: Inputs, blocks: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Run explicit blocks (sets of atom ids; every atom in exactly one) in order; returns the
        flattened outputs. An atom missing or repeated is an InvalidArgumentError naming it."""
        return self._core.run_blocks(list(_as_tuple(inputs)), [[int(a) for a in b] for b in blocks])

    def run(self, inputs: Inputs, placement: Placement | None = None) -> Any:
        """Run every block of the placement here; returns what the whole model returns."""
        return _rebuild(self.graph.output_structure, self.run_flat(inputs, placement))

    __call__ = run

    def __repr__(self) -> str:
        return f"tessera.Model({self.num_atoms} atoms, hash {self.hash[:12]})"


def load(source: str | os.PathLike | torch.nn.Module, example_inputs: Inputs,
         optimize_numerics: bool = False, trainable: bool = False) -> Model:
    """Load and atomize a model.

    source: a TorchScript file path, a ``torch.jit.ScriptModule``, or an
        ``nn.Module`` (traced with ``torch.jit.trace`` on the example inputs).
    example_inputs: a tensor or a tuple of tensors; shapes, dtypes and bytes of
        every value are recorded from one run on them.
    optimize_numerics: fold conv + batch norm when freezing (changes results in
        the last bits); off by default so tessera computes what the model computes.
    trainable: keep each atom's parameters as parameters (split training, ``ts.SplitTrainer``):
        the store saves them in the atom's file; inference runs as for a frozen model. Batch norm
        trains with its running statistics and dropout is off (the model's eval semantics).
    """
    xs = list(_as_tuple(example_inputs))
    opts = _core.LoadOptions()
    opts.optimize_numerics = bool(optimize_numerics)
    opts.trainable = bool(trainable)
    if isinstance(source, (str, os.PathLike)):
        return Model(_core.Model.load(os.fspath(source), xs, opts))
    if isinstance(source, torch.nn.Module) and not isinstance(source, torch.jit.ScriptModule):
        # autograd stays on while tracing: under no_grad some modules (Transformer
        # layers) take fused fast paths that hide their operators.
        source = torch.jit.trace(source.eval(), tuple(xs), check_trace=False, strict=False)
    if isinstance(source, torch.jit.ScriptModule):
        label = f"<{type(source).__name__}>"
        try:  # in memory: torch._C.ScriptModule is a torch::jit::Module
            return Model(_core.Model.load_script_module(source._c, xs, opts, label))
        except TypeError:  # a torch built with another pybind11: go through bytes
            pass
        buf = io.BytesIO()
        torch.jit.save(source, buf)
        return Model(_core.Model.load_bytes(buf.getvalue(), xs, opts, label))
    raise _core.InvalidArgumentError(
        f"cannot load a {type(source).__name__}: pass a TorchScript path, a ScriptModule or an nn.Module")
