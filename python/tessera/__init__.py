"""tessera: adaptive split inference of DNNs between a device and edge servers.

    import tessera as ts
    m = ts.load("resnet50.pt", example_inputs=(x,))
    m.save("store/resnet50")
    y = m.run((x,), placement=[0] * m.num_atoms)

The package is a thin facade over the compiled engine ``tessera._core``.
"""
# torch must be imported before the compiled extension: loading _core first
# crashes the process (both link libtorch; torch's Python side must come first).
import torch  # noqa: F401

from . import _core

# Freed tensors' memory stays in the heap: without this glibc maps and unmaps every large
# activation, which can pay a page fault per 4 KiB page (measured: vgg11's first ReLU atom, timed
# alone by the profiler, 38 ms -> 0.8 ms). Process-wide; the process keeps its peak memory. TESSERA_KEEP_FREED_MEMORY=0 keeps glibc's defaults.
_core.keep_freed_memory(True)
from ._core import (  # noqa: F401,E402
    DeadlineError,
    EngineError,
    InvalidArgumentError,
    NotFoundError,
    TesseraError,
    UnsupportedError,
)
from .atoms import Block, Model, load  # noqa: F401
from .planning import (  # noqa: F401
    ParametricPlanner,
    Plan,
    Planner,
    evaluate,
    make_constraints,
    make_context,
    make_cost_model,
    plan,
    planner_names,
    plans,
)
from . import planning, profiling  # noqa: F401,E402
from .profiling import CostTable, canary_ms, machine_check, profile  # noqa: F401
from . import predict  # noqa: F401
from .runtime import Deployment, Server, keygen  # noqa: F401
from . import training  # noqa: F401,E402
from .training import SplitTrainer, TrainingServer, profile_training  # noqa: F401
from .adapt import AdaptiveDeployment, Controller, StreamDeployment, poisson_arrivals  # noqa: F401
from .experiment import simulate  # noqa: F401
from .transport import Link, read_trace  # noqa: F401
from .pipeline import Network, Node, Pipeline, plan_pipeline  # noqa: F401
from .power import EnergyController, PowerModel, Radio, energy, plan_energy, sample_profile, tradeoff  # noqa: F401
from . import datasets  # noqa: F401,E402
# accuracy-aware variants; the module is tessera.variant (singular) so that ts.variants stays the function
from .variant import Variant, VariantDeployment, VariantSet, accuracy, fidelity, variants  # noqa: F401,E402
# type aliases of the signatures (tessera.types.Costs, ...); not in __all__: `import *` must not shadow types
from . import types  # noqa: F401,E402

__version__ = _core.__version__  # the release, from cpp/include/tessera/core/version.h


def version_info() -> dict:
    """Every version this build has: the release, the wire protocol it speaks, the atom-store
    format it reads and writes (``tessera --version`` prints them)."""
    return {"version": __version__, "wire_protocol": int(_core.wire_protocol_version),
            "atom_store_format": str(_core.atom_store_format)}

__all__ = [
    # errors (tessera.TesseraError and its kinds; Python built-ins as bases)
    "TesseraError", "InvalidArgumentError", "NotFoundError", "UnsupportedError", "DeadlineError", "EngineError",
    # atoms
    "load", "Model", "Block",
    # planning
    "plan", "plans", "evaluate", "Plan", "Planner", "ParametricPlanner", "planner_names", "make_cost_model",
    "make_context", "make_constraints",
    # profiling and prediction
    "profile", "CostTable", "canary_ms", "machine_check", "predict",
    # runtime
    "Server", "Deployment", "keygen", "Link", "read_trace",
    # split training
    "SplitTrainer", "TrainingServer", "profile_training",
    # adaptation
    "AdaptiveDeployment", "Controller", "StreamDeployment", "poisson_arrivals", "simulate",
    # N nodes
    "Network", "Node", "Pipeline", "plan_pipeline",
    # energy
    "EnergyController", "PowerModel", "Radio", "energy", "plan_energy", "sample_profile", "tradeoff",
    # variants
    "variants", "Variant", "VariantSet", "VariantDeployment", "accuracy", "fidelity", "datasets",
    # the process
    "set_threads", "version_info", "__version__",
]


def _deprecated_module(old: str, new: str, hides: str) -> None:
    """``tessera.<old>`` the module (until 0.2) is now ``tessera.<new>``: importing the old name
    still works and each access warns. ``tessera.<old>`` itself is the function (``hides``)."""
    import importlib
    import sys
    import types
    import warnings

    target = importlib.import_module(f"{__name__}.{new}")

    class _Old(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            warnings.warn(f"the module tessera.{old} is now tessera.{new} (and every public name is "
                          f"tessera.<name>); tessera.{old} is the function {hides}", DeprecationWarning, stacklevel=2)
            return getattr(target, name)

    sys.modules[f"{__name__}.{old}"] = _Old(f"{__name__}.{old}", f"Deprecated: use tessera.{new}.")


_deprecated_module("plan", "planning", "tessera.plan(model, costs, ...)")
_deprecated_module("profile", "profiling", "tessera.profile(model, inputs, ...)")


def set_threads(threads: int) -> None:
    """CPU threads of every kernel in this process: LibTorch's intra-op threads (torch.set_num_threads)
    and OpenBLAS's own pool, which Debian's LibTorch uses for its GEMMs and which torch.set_num_threads
    does not reach (measured: a "1-thread" server burned two cores)."""
    _core.set_intra_op_threads(int(threads))
