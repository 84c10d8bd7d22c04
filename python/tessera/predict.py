"""Latency predictors: what atoms cost where they were never measured.

    import tessera as ts
    from tessera import predict as tp

    samples = tp.collect(["resnet18", "googlenet"], threads=(1, 2), background_loads=(0.0, 0.5),
                         csv="samples.csv")                       # profile, features, CSV
    p = tp.train(samples, kind="xgboost")                          # lookup | analytic | xgboost
    print(tp.evaluate(p, tp.collect(["mobilenet_v2"])))            # share within +-10%, MAPE
    p.save("pred.json"); p = tp.load("pred.json")
    c = tp.costs(m, p, threads=2)                                  # c.atom_ms -> ts.plan(...)

A predictor written in Python (e.g. a TorchScript module trained in a notebook)
subclasses :class:`PythonPredictor` (or use :class:`TorchScriptPredictor`) and is
accepted wherever the C++ predictors are: the engine calls back into it.

The predictors themselves are C++ (``cpp/include/tessera/predict/predictor.h``):
``lookup`` (measured medians), ``analytic`` (roofline-style, calibrated per op class
and thread count), ``xgboost`` (trees learning the ratio measured / analytic).
"""
from __future__ import annotations

import math
import os
from typing import Iterable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from . import _core
from ._compat import _UNSET, renamed_kwarg
from ._proc import Spinners
from .atoms import Model
from .profiling import CostTable
from .types import Inputs, PathLike

__all__ = [
    "Predictor", "MachineState", "Sample", "PythonPredictor", "TorchScriptPredictor", "BackgroundLoad", "PredictedCosts",
    "features", "samples_of", "collect", "train", "evaluate", "costs", "load", "read_samples", "write_samples",
    "kinds", "feature_matrix", "feature_names",
    "FAMILIES", "family_of", "collect_interleaved", "leave_one_family_out", "adapt", "ScaledPredictor",
    "RegretCase", "plan_regret",
]

Predictor = _core.Predictor
#: A model to profile in :func:`collect`: a zoo name, or (label, tessera.Model, inputs).
ModelSpec = Union[str, tuple[str, Model, Inputs]]
Sample = _core.Sample
MachineState = _core.MachineState  # threads and background load (cores kept busy) an atom runs beside


def __getattr__(name):  # deprecated names of the module (until 0.3)
    if name == "Context":
        from ._compat import deprecated_attribute
        return deprecated_attribute("tessera.predict", "Context", "MachineState", MachineState)
    raise AttributeError(f"module 'tessera.predict' has no attribute '{name}'")


def kinds() -> list:
    """Predictor kinds the engine builds: lookup, analytic, xgboost."""
    return list(_core.predictor_kinds())


# ---- background load --------------------------------------------------------------------------
class BackgroundLoad:
    """Keep ``level`` CPU cores busy elsewhere while profiling (a context manager).

    level 0.5 = one process spinning half of every 5 ms period; 1.5 = two processes at
    75%. This is the load factor the predictors are conditioned on.
    """

    def __init__(self, level: float, period_ms: float = 5.0) -> None:
        if not (level >= 0 and math.isfinite(level)):
            raise _core.InvalidArgumentError(f"background load = {level} must be a finite number >= 0")
        if level > (os.cpu_count() or 1):
            raise _core.InvalidArgumentError(f"background load = {level}: this machine has {os.cpu_count()} cores")
        if not (period_ms > 0 and math.isfinite(period_ms)):
            raise _core.InvalidArgumentError(f"period_ms = {period_ms} must be a finite number > 0")
        self.level = float(level)
        self.period_s = period_ms / 1e3
        self._spinners = None

    def __enter__(self):
        if self.level > 0:
            n = math.ceil(self.level)
            self._spinners = Spinners(n, duty=self.level / n, period_s=self.period_s).__enter__()
        return self

    @property
    def pids(self) -> list:
        """Process ids of the spinners running now (empty outside the ``with`` or at level 0)."""
        return self._spinners.pids if self._spinners is not None else []

    def __exit__(self, *exc):
        if self._spinners is not None:
            self._spinners.__exit__(*exc)
            self._spinners = None
        return False


# ---- features and samples -----------------------------------------------------------------------
def features(model: Model) -> list[_core.AtomFeatures]:
    """Per-atom features (op kinds, FLOPs, bytes, kernel, stride, ...) of a tessera.Model."""
    return list(_core.atom_features(model.graph, model.atoms, model.hash))


def feature_names() -> list:
    """Names of the numeric per-atom features, in the order of each feature's ``x`` (flops,
    in_bytes, out_bytes, ...): ``x[feature_names().index("flops")]``."""
    return list(_core.feature_names())


def samples_of(model: Model, table: CostTable | None = None, threads: int = 1, background_load: float = 0.0,
               label: str = "", load: float = _UNSET) -> list[_core.Sample]:
    """Samples of one model: with a CostTable, measured (training / evaluation); without, to predict.
    ``load=`` is the deprecated name of ``background_load`` (until 0.3)."""
    background_load = renamed_kwarg("samples_of", "load", "background_load", load, background_load, 0.0)
    if table is not None:
        threads, background_load = table.threads, table.background_load
    ctx = MachineState(threads=int(threads), background_load=float(background_load))
    ms = [] if table is None else list(table.atom_ms)
    return list(_core.make_samples(_core.atom_features(model.graph, model.atoms, model.hash), ctx, ms, label))


def _open(spec):
    """A model spec: a zoo name, a TorchScript path with inputs, or (label, Model, inputs)."""
    from . import zoo
    from .atoms import load

    if isinstance(spec, tuple) and len(spec) == 3:
        return spec
    if isinstance(spec, str):
        path, xs = zoo.torchscript(spec)
        return spec, load(str(path), xs), xs
    raise _core.InvalidArgumentError(f"a model is a zoo name or (label, tessera.Model, inputs), got {spec!r}")


def _settled_profile(m: Model, xs: Inputs, threads: int, level: float, repeats: int, warmup: int, label: str,
                     settle: float, max_wait_s: float, reference: dict) -> CostTable:
    """One profile of a campaign, in the machine's reference state when settle > 0: the reference is
    the fastest canary seen so far beside this background load (``reference``: load -> ms, updated;
    the canary runs at 1 thread, beside the caller's BackgroundLoad)."""
    from .profiling import canary_ms, profile

    ref = 0.0
    if settle > 0:
        ref = min([reference.get(level, math.inf)] + [canary_ms() for _ in range(3)])
        reference[level] = ref
    return profile(m, xs, threads=threads, repeats=repeats, warmup=warmup, background_load=level, progress=False,
                   label=label, settle=settle, reference_ms=ref, max_wait_s=max_wait_s)


def _checked_campaign(who: str, models: list, threads: Iterable[int], loads: Iterable[float], repeats: int,
                      settle: float) -> tuple[list[int], list[float]]:
    """(threads, loads) as lists, after checking every input of a profiling campaign before the
    first (minutes-long) profile rather than when its turn comes."""
    threads, loads = [int(t) for t in threads], [float(x) for x in loads]
    if not models:
        raise _core.InvalidArgumentError(f"{who}() needs at least one model (the model list is empty)")
    if not threads or not loads:
        raise _core.InvalidArgumentError(f"{who}() needs at least one thread count and one background load level")
    if repeats < 1:
        raise _core.InvalidArgumentError(f"repeats = {repeats}: at least one timed round is needed")
    ncpu = os.cpu_count() or 1
    for t in threads:
        if t < 1 or t > ncpu:
            raise _core.InvalidArgumentError(f"threads = {t}: this machine has {ncpu} cores")
    if not (settle >= 0 and math.isfinite(settle)):
        raise _core.InvalidArgumentError(f"settle = {settle}: a tolerance >= 0 (0 = off)")
    from . import zoo
    for spec in models:
        if isinstance(spec, str) and spec not in zoo.NAMES:
            raise _core.InvalidArgumentError(f"unknown zoo model '{spec}'; known: {', '.join(zoo.NAMES)}")
    for level in loads:
        BackgroundLoad(level)  # raises for a bad level
    return threads, loads


def collect(models: Sequence[ModelSpec], threads: Iterable[int] = (1,), background_loads: Iterable[float] = (0.0,),
            repeats: int = 20, warmup: int = 3, csv: PathLike | None = None, progress: Optional[bool] = None,
            tables: Optional[list] = None, settle: float = 0.2, max_wait_s: float = 10.0,
            loads: Iterable[float] = _UNSET) -> list[_core.Sample]:
    """Profile every model under every (threads, background load) and return the samples.

    models: zoo names ("resnet18") or (label, tessera.Model, inputs) tuples; not empty.
    threads, background_loads: the machine states (background load = CPU cores kept busy by
        :class:`BackgroundLoad`; ``loads=`` is its deprecated name, until 0.3).
    csv: also write the samples there. tables: a list that receives (label, CostTable).
    settle: labels from the machine's reference state (see :func:`tessera.profile`): rounds
        count only while the canary is within (1 + settle) x the fastest canary measured so far
        beside the same background load; 0 = off. max_wait_s: per profile, the longest wait for
        that state after a round outside it (then rounds are re-run, at most 4 x repeats).
    """
    from .profiling import progress_bar

    models = list(models)
    loads = renamed_kwarg("collect", "loads", "background_loads", loads, background_loads, (0.0,))
    threads, loads = _checked_campaign("collect", models, threads, loads, repeats, settle)
    if csv is not None:  # where the samples go, checked now rather than after the profiling
        parent = os.path.dirname(os.path.abspath(os.fspath(csv)))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise _core.InvalidArgumentError(f"csv = {os.fspath(csv)}: cannot write in {parent}")
    runs = len(models) * len(threads) * len(loads)
    bar = progress_bar(runs, "collect", progress)
    out = []
    reference = {}  # load -> fastest canary seen beside that load
    try:
        for spec in models:
            label, m, xs = _open(spec)
            for t in threads:
                for level in loads:
                    if bar is not None:
                        bar.set_postfix_str(f"{label} threads={t} load={level}")
                    with BackgroundLoad(level):
                        table = _settled_profile(m, xs, t, level, repeats, warmup, label, settle, max_wait_s,
                                                 reference)
                    if tables is not None:
                        tables.append((label, table))
                    out.extend(samples_of(m, table, label=label))
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if csv is not None:
        write_samples(csv, out)
    return out


def write_samples(path: PathLike, samples: Iterable[_core.Sample]) -> None:
    """Write samples (features, context, measured ms) as CSV, the format `tessera predictor` reads."""
    _core.write_samples_csv(os.fspath(path), list(samples))


def read_samples(path: PathLike) -> list[_core.Sample]:
    """Samples from a CSV written by :func:`write_samples` or ``collect(csv=...)``."""
    return list(_core.read_samples_csv(os.fspath(path)))


def _samples(x) -> list:
    if isinstance(x, (str, os.PathLike)):
        return read_samples(x)
    return list(x)


# ---- training, evaluation, use ------------------------------------------------------------------
def train(samples: Iterable[_core.Sample] | PathLike, kind: str = "xgboost", **options: float) -> "_core.Predictor":
    """Build a predictor of ``kind`` and fit it on samples (a list or a CSV path).

    xgboost options: rounds, max_depth, eta, subsample, min_child_weight, nthread, seed.
    """
    samples = _samples(samples)
    if not samples:
        raise _core.InvalidArgumentError("train() needs samples (the list is empty)")
    if kind == "xgboost" and options:
        p = _core.make_xgboost_predictor(**options)
    elif options:
        raise _core.InvalidArgumentError(f"predictor kind '{kind}' takes no options, got {sorted(options)}")
    else:
        p = _core.make_predictor(kind)
    p.update(samples)
    return p


def evaluate(predictor: _core.Predictor | _core.Prediction | Sequence[float],
             samples: Iterable[_core.Sample] | PathLike,
             min_ms: float = 0.1, tolerance: float = 0.10) -> "_core.Accuracy":
    """Accuracy on measured samples: share of atoms (>= min_ms) and of whole models (sum of
    atoms) within +-tolerance, and MAPE. predictor: a predictor, or the predicted ms of the
    samples already computed (one per sample, a sequence or a Prediction)."""
    samples = _samples(samples)
    if not samples:
        raise _core.InvalidArgumentError("evaluate() needs samples (the list is empty)")
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise _core.InvalidArgumentError(f"tolerance = {tolerance} must be a finite number > 0 (0.1 = +-10%)")
    if not (min_ms >= 0 and math.isfinite(min_ms)):
        raise _core.InvalidArgumentError(f"min_ms = {min_ms} must be a finite number >= 0")
    pred = predictor.predict(samples) if hasattr(predictor, "predict") else predictor
    if not isinstance(pred, _core.Prediction):
        pred = _core.Prediction([float(v) for v in pred])
    return _core.accuracy(samples, pred, float(min_ms), float(tolerance))


class PredictedCosts:
    """Predicted per-atom ms of one model in one context; planners read ``atom_ms``."""

    def __init__(self, prediction: "_core.Prediction", threads: int, background_load: float) -> None:
        self.atom_ms = list(prediction.ms)
        self.fallback = list(prediction.fallback)
        self.threads, self.background_load = threads, background_load

    @property
    def model_ms(self) -> float:
        return sum(self.atom_ms)

    def __repr__(self) -> str:
        return (f"PredictedCosts({len(self.atom_ms)} atoms, {self.model_ms:.3f} ms, "
                f"{sum(self.fallback)} analytic fallbacks)")


def costs(model: Model, predictor: _core.Predictor, threads: int = 1, background_load: float = 0.0,
          load: float = _UNSET) -> PredictedCosts:
    """Predict every atom of ``model`` (a tessera.Model) in one call (C++ or Python predictor)."""
    background_load = renamed_kwarg("costs", "load", "background_load", load, background_load, 0.0)
    ctx = MachineState(threads=int(threads), background_load=float(background_load))
    pred = _core.predict_atoms(predictor, model.graph, model.atoms, model.hash, ctx)
    return PredictedCosts(pred, int(threads), float(background_load))


def load(path: PathLike) -> "_core.Predictor":
    """Read a predictor saved with ``save`` (NotFoundError, or InvalidArgumentError if corrupt)."""
    return _core.load_predictor(os.fspath(path))


def feature_matrix(samples: Iterable[_core.Sample],
                   analytic_ms: Optional[Sequence[float]] = None) -> tuple[np.ndarray, list[str]]:
    """The learned models' input as a float32 numpy array (n x d) and the column names."""
    import numpy as np

    rows = _core.learned_features(list(samples), [] if analytic_ms is None else [float(v) for v in analytic_ms])
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1), list(_core.learned_feature_names())


# ---- Python-defined predictors --------------------------------------------------------------------
class PythonPredictor(_core.Predictor):
    """Base of predictors written in Python. Override ``predict(samples)`` (return a list of
    ms or a ``_core.Prediction``), and optionally ``update`` and ``save``."""

    name = "python"

    def __init__(self) -> None:
        super().__init__()

    def kind(self) -> str:
        return self.name

    def predict(self, samples: Sequence[_core.Sample]) -> Sequence[float] | _core.Prediction:  # pragma: no cover
        raise NotImplementedError

    def update(self, samples: Sequence[_core.Sample]) -> None:
        raise _core.UnsupportedError(f"predictor '{self.kind()}' does not learn from new samples")

    def save(self, path: PathLike) -> None:
        raise _core.UnsupportedError(f"predictor '{self.kind()}' cannot be saved")


class TorchScriptPredictor(PythonPredictor):
    """A TorchScript module mapping the learned feature matrix (n x d, float32; see
    :func:`feature_matrix`, with log_analytic_ms from ``base``) to log ms (n).

    base: an analytic (or any C++) predictor whose estimate enters the features; None
    leaves that column 0. Atoms whose op class is not in ``known_classes`` (when given)
    get the base estimate, flagged."""

    name = "torchscript"

    def __init__(self, module: torch.nn.Module | torch.jit.ScriptModule, base: _core.Predictor | None = None,
                 known_classes: Optional[Iterable[str]] = None) -> None:
        super().__init__()
        self.module = module
        self.base = base
        self.known_classes = None if known_classes is None else set(known_classes)

    def predict(self, samples: Iterable[_core.Sample]) -> _core.Prediction:
        import torch

        samples = list(samples)
        base = list(self.base.predict(samples).ms) if self.base is not None else None
        x, _ = feature_matrix(samples, base)
        with torch.no_grad():
            y = self.module(torch.from_numpy(x)).reshape(-1).double().exp().tolist()
        flags = [0] * len(samples)
        if self.known_classes is not None and base is not None:
            for i, s in enumerate(samples):
                if s.f.op_class not in self.known_classes:
                    y[i], flags[i] = base[i], 1
        return _core.Prediction(y, flags)

    def save(self, path: PathLike) -> None:
        import torch

        torch.jit.save(self.module, os.fspath(path))


# ---- judging a predictor: unseen families, interleaved labels, few-shot transfer, plan regret ----------
#: The zoo's models (:data:`tessera.zoo.NAMES`) by family: a predictor is judged on a family none
#: of whose members it was trained on (:func:`leave_one_family_out`).
FAMILIES: dict[str, tuple[str, ...]] = {
    "resnet": ("resnet18", "resnet50", "resnet152"),
    "mobilenet": ("mobilenet_v2", "mobilenet_v3_small"),
    "efficientnet": ("efficientnet_b0",),
    "inception": ("googlenet", "inception_v3"),
    "densenet": ("densenet121",),
    "vgg": ("alexnet", "vgg11", "vgg16"),
    "squeezenet": ("squeezenet1_0",),
    "transformer": ("transformer",),
    "lstm": ("lstm",),
}


def family_of(label: str, families: Optional[dict] = None) -> str:
    """The family of a model label in ``families`` (default :data:`FAMILIES`); a label in no
    family is a family of its own (its own name)."""
    for fam, names in (FAMILIES if families is None else families).items():
        if label in names:
            return fam
    return label


def collect_interleaved(models: Sequence[ModelSpec], threads: Iterable[int] = (1,),
                        background_loads: Iterable[float] = (0.0,), passes: int = 2, repeats: int = 20,
                        warmup: int = 3, progress: Optional[bool] = None, tables: Optional[list] = None,
                        settle: float = 0.2, max_wait_s: float = 10.0) -> list[list[_core.Sample]]:
    """Profile every model ``passes`` times per context, round-robin, and return one sample list per pass.

    Per context (threads, background load), in turn: model 1, model 2, ..., model n, then the
    same again for the next pass. Every model and every pass of a context thus shares the
    machine's time windows: when this machine changes speed, the training models, the test
    models and the second measurement (pass 2 scored against pass 1: the remeasure ceiling) drift
    alike, instead of one set being profiled minutes after the other as :func:`collect` does.

    tables: a list that receives (pass index, label, CostTable) in measurement order; each table
    records the canary (``canary_ms``, ``canary_reference_ms``) when settle > 0. The canary's
    reference is one per background load level, shared by the whole run. Other arguments as in
    :func:`collect`.
    """
    from .profiling import progress_bar

    models = list(models)
    if passes < 1:
        raise _core.InvalidArgumentError(f"passes = {passes}: at least one measurement per model")
    threads, loads = _checked_campaign("collect_interleaved", models, threads, background_loads, repeats, settle)
    opened = [_open(spec) for spec in models]
    out: list[list[_core.Sample]] = [[] for _ in range(int(passes))]
    bar = progress_bar(len(opened) * len(threads) * len(loads) * int(passes), "collect", progress)
    reference: dict = {}  # load -> fastest canary seen beside that load
    try:
        for t in threads:
            for level in loads:
                with BackgroundLoad(level):
                    for k in range(int(passes)):
                        for label, m, xs in opened:
                            if bar is not None:
                                bar.set_postfix_str(f"pass {k + 1} {label} threads={t} load={level}")
                            table = _settled_profile(m, xs, t, level, repeats, warmup, label, settle, max_wait_s,
                                                     reference)
                            if tables is not None:
                                tables.append((k, label, table))
                            out[k].extend(samples_of(m, table, label=label))
                            if bar is not None:
                                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def leave_one_family_out(samples: Iterable[_core.Sample] | PathLike, kind: str = "xgboost",
                         families: Optional[dict] = None, **options: float) -> "_core.Prediction":
    """Predict every sample with a predictor trained on the samples of every *other* family.

    For each family present in ``samples`` (labels grouped by :func:`family_of`), a predictor of
    ``kind`` (options as in :func:`train`) is trained on all samples outside that family and
    predicts that family's samples: the accuracy of the result (:func:`evaluate`) is the accuracy
    on model families never seen in training. Returns one prediction per sample, in order
    (ms and the analytic-fallback flags). At least two families are needed.
    """
    samples = _samples(samples)
    if not samples:
        raise _core.InvalidArgumentError("leave_one_family_out() needs samples (the list is empty)")
    fam = [family_of(s.label, families) for s in samples]
    names = sorted(set(fam))
    if len(names) < 2:
        raise _core.InvalidArgumentError(f"leave_one_family_out() needs two families or more, got {names}")
    ms, flags = [0.0] * len(samples), [0] * len(samples)
    for held in names:
        p = train([s for s, f in zip(samples, fam) if f != held], kind=kind, **options)
        idx = [i for i, f in enumerate(fam) if f == held]
        pred = p.predict([samples[i] for i in idx])
        for i, v, fb in zip(idx, pred.ms, pred.fallback):
            ms[i], flags[i] = float(v), int(fb)
    return _core.Prediction(ms, flags)


class ScaledPredictor(PythonPredictor):
    """A base predictor times a factor per op class (few-shot transfer to a new machine, see
    :func:`adapt`): ``ms = base(ms) * scales.get(op_class, default_scale)``."""

    name = "scaled"

    def __init__(self, base: _core.Predictor, scales: dict, default_scale: float = 1.0) -> None:
        super().__init__()
        self.base = base
        self.scales = {str(k): float(v) for k, v in scales.items()}
        self.default_scale = float(default_scale)

    def predict(self, samples: Iterable[_core.Sample]) -> _core.Prediction:
        samples = list(samples)
        pred = self.base.predict(samples)
        ms = [v * self.scales.get(s.f.op_class, self.default_scale) for s, v in zip(samples, pred.ms)]
        return _core.Prediction(ms, list(pred.fallback))


def adapt(predictor: _core.Predictor, samples: Iterable[_core.Sample] | PathLike, kind: str = "trees",
          prior: float = 2.0) -> "_core.Predictor":
    """Few-shot transfer: a copy of a trained predictor adapted to a new machine (or context) from
    a few samples measured there (10-30 atoms); ``predictor`` itself is left as it was.

    kind "trees": the copy keeps learning on the samples (an XGBoost predictor adds trees to the
        ones it has; any C++ predictor's ``update``); the predictor must be savable (C++).
    kind "scale": a :class:`ScaledPredictor` over the predictor, with one factor per op class:
        the median of measured / predicted over that class's samples (a median: one atom the
        predictor got badly wrong must not move a class), shrunk in log space towards the median
        ratio of all samples with the weight of ``prior`` samples, so a class seen once moves only
        part of the way; classes not in the samples get the median ratio of all samples.
    """
    import tempfile

    samples = _samples(samples)
    if not samples:
        raise _core.InvalidArgumentError("adapt() needs samples measured on the new target (the list is empty)")
    if kind == "trees":
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "predictor.json")
            predictor.save(path)
            copy = load(path)
        copy.update(samples)
        return copy
    if kind == "scale":
        if not (prior >= 0 and math.isfinite(prior)):
            raise _core.InvalidArgumentError(f"prior = {prior} must be a finite number >= 0")
        pred = list(predictor.predict(samples).ms)
        logs = [(s.f.op_class, math.log(s.ms / p)) for s, p in zip(samples, pred) if s.ms > 0 and p > 0]
        if not logs:
            raise _core.InvalidArgumentError("adapt(kind='scale') needs samples with measured and predicted ms > 0")
        g = float(np.median([r for _, r in logs]))
        by: dict = {}
        for c, r in logs:
            by.setdefault(c, []).append(r)
        scales = {c: math.exp((len(rs) * float(np.median(rs)) + prior * g) / (len(rs) + prior)) for c, rs in by.items()}
        return ScaledPredictor(predictor, scales, math.exp(g))
    raise _core.InvalidArgumentError(f"adapt kind = '{kind}': 'trees' or 'scale'")


class RegretCase(NamedTuple):
    """One planning context of :func:`plan_regret`: the measured latency of the plan made from
    predicted costs (``chosen_ms``) against the plan made from measured costs (``optimum_ms``)."""

    device_factor: float
    bandwidth_mbps: float
    rtt_ms: float
    optimum_ms: float
    chosen_ms: float
    regret: float       # chosen_ms / optimum_ms - 1 (0 = the predicted costs chose as well as the measured)
    split: bool         # the measured optimum places atoms on both the device and the server


def plan_regret(model: Model, predicted_ms: Sequence[float], measured_ms: Sequence[float],
                device_factors: Iterable[float] = (2, 5, 10, 20, 50, 100),
                bandwidths_mbps: Iterable[float] = (0.5, 1, 2, 5, 10, 20, 50, 100),
                rtts_ms: Iterable[float] = (5, 20, 50), algorithm: str = "mincut") -> list[RegretCase]:
    """What planning from predicted costs loses, priced with measured costs, over a grid of contexts.

    Per atom ms on the server are ``predicted_ms`` (resp. ``measured_ms``); the device is
    ``device_factor`` times slower. For every (device factor, bandwidth, rtt): the plan made from
    the predicted costs, its placement priced with the measured costs (:func:`tessera.evaluate`),
    against the plan made from the measured costs (:func:`tessera.plan`).
    """
    from .planning import Planner, evaluate as evaluate_plan

    pred, meas = [float(v) for v in predicted_ms], [float(v) for v in measured_ms]
    n = model.num_atoms
    if len(pred) != n or len(meas) != n:
        raise _core.InvalidArgumentError(f"plan_regret: {len(pred)} predicted and {len(meas)} measured ms "
                                         f"for a model of {n} atoms")
    out = []
    for f in device_factors:
        cp = {"device": [f * v for v in pred], "server": pred}
        cm = {"device": [f * v for v in meas], "server": meas}
        from_pred, from_meas = Planner(model, cp, algorithm), Planner(model, cm, algorithm)  # graphs built once
        for bw in bandwidths_mbps:
            for rtt in rtts_ms:
                chosen = from_pred.plan(bw, rtt)
                best = from_meas.plan(bw, rtt)
                got = evaluate_plan(model, cm, chosen.placement, bw, rtt).latency_ms
                on_server = sum(best.placement)
                out.append(RegretCase(float(f), float(bw), float(rtt), best.latency_ms, got,
                                      got / best.latency_ms - 1.0, 0 < on_server < n))
    return out
