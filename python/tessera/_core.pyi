"""Type stub of tessera._core (the compiled engine), written by scripts/gen_stubs.py: do not edit."""
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload

import torch

class Accuracy:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    atoms: int
    atoms_within: float
    fallbacks: int
    mape: float
    model_mape: float
    models: int
    models_within: float

class Controller:
    def __init__(self: Controller, model: Model, cost_model: CostModel, options: DeploymentOptions, policy: Policy, adaptive: AdaptiveOptions) -> None: ...
    def breakpoints(self: Controller) -> List[float]: ...
    def deployment(self: Controller) -> Deployment: ...
    def monitor(self: Controller) -> Monitor: ...
    placement: List[int]
    def policy(self: Controller) -> Policy: ...
    def run(self: Controller, inputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def set_machine_state(self: Controller, threads: Optional[int] = None, background_load: Optional[float] = None) -> None: ...
    def set_memory_budget(self: Controller, bytes: float) -> None: ...
    def timeline(self: Controller) -> List[RequestRecord]: ...

class AdaptiveDeployment(Controller):
    def __init__(self: AdaptiveDeployment, model: Model, cost_model: CostModel, options: DeploymentOptions, adaptive: AdaptiveOptions) -> None: ...

class AdaptiveOptions:
    def __init__(self: AdaptiveOptions) -> None: ...
    def clear_predictor(self: AdaptiveOptions) -> None: ...
    device_memory_bytes: float
    free_memory_fraction: float
    hysteresis: float
    infer_background_load: bool
    initial_bandwidth_mbps: float
    load_step: float
    load_tolerance: float
    max_background_load: float
    max_latency_ms: float
    monitor: MonitorOptions
    planner: str
    predictor_name: str
    probe_every: int
    probe_ms: float
    profiled: DeviceState
    react_to_drops: bool
    rtt_ms: float
    state_tolerance: float
    def use_cost_function(self: AdaptiveOptions, name: str, function: function) -> None: ...
    def use_predictor(self: AdaptiveOptions, predictor: Predictor, model: Model) -> None: ...

class Atom:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    file: str
    id: int
    inputs: List[int]
    name: str
    nodes: List[int]
    op_kinds: List[str]
    output_bytes: int
    outputs: List[int]
    param_bytes: int
    params: List[str]
    sha256: str

class AtomDag:
    """Atoms 0..n-1 in topological order and the values between them."""
    def __init__(self: AtomDag, num_atoms: int = 0, values: List[DagValue] = [], param_bytes: List[float] = [], atom_names: List[str] = []) -> None: ...
    atom_names: List[str]
    num_atoms: int
    param_bytes: List[float]
    def validate(self: AtomDag) -> None: ...
    values: List[DagValue]

class AtomFeatures:
    def __getitem__(self: AtomFeatures, arg0: str) -> float: ...
    def __init__(self: AtomFeatures) -> None: ...
    atom: int
    kinds: str
    main_kind: str
    model: str
    op_class: str
    x: List[float]

class Block:
    def __call__(self: Block, inputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    atoms: List[int]
    def graph_str(self: Block) -> str: ...
    inputs: List[int]
    outputs: List[int]

class BlockTiming:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    atoms: List[int]
    batch: int
    busy: bool
    busy_wait_ms: float
    bytes_down: int
    bytes_up: int
    codec_down: str
    codec_up: str
    compute_ms: float
    error: str
    fallback: bool
    link_ms: float
    queue_ms: float
    remote: bool
    round_trip_ms: float
    server: int
    server_ms: float
    target: int
    transfer_ms: float

class CodecCost:
    """What a wire codec costs per transfer: encoded bytes ratio and encode + decode ms (plan/variants.h)."""
    def __init__(self: CodecCost, encode_ms_per_mb: float = 0.0, decode_ms_per_mb: float = 0.0, ratio: float = 1.0) -> None: ...
    decode_ms_per_mb: float
    encode_ms_per_mb: float
    ratio: float

class Constraints:
    """Limits gads searches under; pin[atom] = -1 (free) or a target."""
    def __init__(self: Constraints, device_memory_bytes: float = inf, max_latency_ms: float = inf, max_energy_mj: float = inf, pin: List[int] = []) -> None: ...
    device_memory_bytes: float
    max_energy_mj: float
    max_latency_ms: float
    pin: List[int]

class Context:
    """Run-time context: bandwidth (Mbit/s), rtt (ms), server load, memory, objective."""
    def __init__(self: Context, bandwidth_mbps: float, rtt_ms: float = 0.0, server_load: float = 1.0, device_memory_budget_bytes: float = inf, energy_weight: float = 0.0, objective: str = 'latency', device_load: float = 1.0) -> None: ...
    bandwidth_mbps: float
    device_load: float
    device_memory_budget_bytes: float
    energy_weight: float
    objective: str
    rtt_ms: float
    server_load: float
    def validate(self: Context) -> None: ...

class ControllerOptions:
    V: float
    def __init__(self: ControllerOptions) -> None: ...
    budget_mj: float
    deadline_ms: float
    initial_queue: float

class CostModel:
    """compute_ms[target][atom] (0 = device, 1 = server), optional energy and links."""
    def __init__(self: CostModel, dag: AtomDag, compute_ms: List[List[float]], energy_mj: List[List[float]] = [], links: List[List[LinkCost]] = []) -> None: ...
    compute_ms: List[List[float]]
    dag: AtomDag
    energy_mj: List[List[float]]
    links: List[List[LinkCost]]
    num_atoms: int
    num_targets: int
    def validate(self: CostModel) -> None: ...

class CostTable:
    def __init__(self: CostTable) -> None: ...
    atom_ms: List[float]
    atom_q1_ms: List[float]
    atom_q3_ms: List[float]
    background_load: float
    canary_ms: float
    canary_reference_ms: float
    def from_json(self, *args: Any, **kwargs: Any) -> Any: ...
    label: str
    model_hash: str
    model_ms: float
    model_q1_ms: float
    model_q3_ms: float
    num_atoms: int
    param_bytes: List[int]
    def read(self, *args: Any, **kwargs: Any) -> Any: ...
    repeats: int
    rounds_discarded: int
    settled: bool
    def sum_atom_ms(self: CostTable) -> float: ...
    def summary(self: CostTable, atoms: List[Atom] = [], top: int = -1) -> str: ...
    threads: int
    def to_json(self: CostTable) -> str: ...
    value_bytes: List[int]
    waited_ms: float
    warmup: int
    def write(self: CostTable, path: str) -> None: ...

class CutSolver:
    """Low level: the min-cut of an AtomDag (compress = CIC/QDMP reduction)."""
    def __init__(self: CutSolver, dag: AtomDag, compress: bool = False) -> None: ...
    num_edges: int
    num_flow_atoms: int
    num_nodes: int

class DagValue:
    """A tensor crossing atom boundaries (producer -1 = model input)."""
    def __init__(self: DagValue, producer: int = -1, consumers: List[int] = [], bytes: float = 0.0, is_output: bool = False, name: str = '') -> None: ...
    bytes: float
    codec: str
    codec_ms: float
    consumers: List[int]
    dtype: str
    is_output: bool
    name: str
    producer: int
    rank: int

class DeadlineError(TesseraError):
    """A deadline passed."""
    ...

class Decision:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    cost_source: str
    device_state: DeviceState
    device_time_factor: float
    estimate_device_atoms: int
    frequency_mhz: float
    placement: List[int]
    plan_id: int
    predicted_ms: float
    tx_power_mw: float
    uplink_rate_factor: float
    why: str

class Deployment:
    @overload
    def __init__(self: Deployment, model: Model, plan: Plan, options: DeploymentOptions) -> None: ...
    @overload
    def __init__(self: Deployment, model: Model, placement: List[int], options: DeploymentOptions) -> None: ...
    device_slowdown: float
    def echo(self: Deployment, tensors: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def last_timeline(self: Deployment) -> Timeline: ...
    def ping(self: Deployment, timeout_ms: int = 500) -> str: ...
    placement: List[int]
    plan: Plan
    def probe(self: Deployment, bytes: int) -> float: ...
    def run(self: Deployment, inputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def select_server(self: Deployment) -> int: ...
    server_available: bool
    def server_states(self: Deployment) -> List[ServerState]: ...
    servers: List[str]
    def set_device_slowdown(self: Deployment, slowdown: float) -> None: ...
    def set_placement(self: Deployment, placement: List[int]) -> None: ...
    def set_plan(self: Deployment, plan: Plan) -> None: ...

class DeploymentOptions:
    def __init__(self: DeploymentOptions) -> None: ...
    busy_retry_ms: int
    codec: str
    curve_public_key: str
    curve_secret_key: str
    curve_server_key: str
    device_slowdown: float
    emulation: Any
    link: Any
    probe_timeout_ms: int
    retry_ms: int
    seed: int
    server: str
    server_policy: str
    servers: List[str]
    timeout_ms: int

class DeviceState:
    """The device's machine state: intra-op threads and background load (cores kept busy)."""
    def __init__(self: DeviceState, threads: int = 1, background_load: float = 0.0) -> None: ...
    background_load: float
    threads: int

class EmulatedLink:
    def __init__(self: EmulatedLink, spec: LinkSpec) -> None: ...
    def bandwidth_at(self: EmulatedLink, t_s: float) -> float: ...
    def bandwidth_now(self: EmulatedLink) -> float: ...
    def duration_s(self: EmulatedLink) -> float: ...
    def mean_bandwidth(self: EmulatedLink) -> float: ...
    def now_s(self: EmulatedLink) -> float: ...
    def serialization_ms(self: EmulatedLink, bytes: float, t_s: float) -> float: ...
    def set_uplink_rate_factor(self: EmulatedLink, factor: float) -> None: ...
    def set_virtual_time(self: EmulatedLink, t_s: float) -> None: ...
    spec: LinkSpec
    def transmit(self: EmulatedLink, bytes: float, uplink: bool = True) -> float: ...
    uplink_rate_factor: float
    def use_wall_clock(self: EmulatedLink) -> None: ...

class Emulation:
    """Members:"""
    Sleep: Emulation
    Account: Emulation
    def __init__(self: Emulation, value: int) -> None: ...
    name: str
    value: int

class EnergyController:
    def __init__(self: EnergyController, cost_model: CostModel, power: PowerModel, options: ControllerOptions) -> None: ...
    def decide(self: EnergyController, bandwidth_mbps: float, rtt_ms: float) -> EnergyDecision: ...
    def observe(self: EnergyController, energy_mj: float) -> None: ...
    options: ControllerOptions
    queue: float

class EnergyDecision:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    bandwidth_mbps: float
    candidates: int
    def explain(self: EnergyDecision, cost_model: CostModel) -> str: ...
    lagrangian: bool
    meets_deadline: bool
    objective: float
    op: Operating
    parts: EnergyParts
    placement: List[int]
    rtt_ms: float
    why: str

class EnergyParts:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    compute_mj: float
    device_ms: float
    down_bytes: float
    def explain(self: EnergyParts) -> str: ...
    idle_mj: float
    latency_ms: float
    link_ms: float
    rx_mj: float
    server_ms: float
    throughput_fps: float
    total_mj: float
    transfer_ms: float
    tx_mj: float
    tx_rate_mbps: float
    up_bytes: float

class EnergyRecord:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    bandwidth_mbps: float
    decision: EnergyDecision
    index: int
    queue: float

class EnergyWeights:
    def __init__(self: EnergyWeights) -> None: ...
    deadline_ms: float
    energy: float
    latency: float

class EngineError(TesseraError):
    """A failure inside the engine."""
    ...

class FrameRecord:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    error: str
    fallback: bool
    request_id: int
    stages: List[StageRecord]
    total_ms: float

class InvalidArgumentError(TesseraError):
    """Bad input: the message names what was wrong."""
    ...

class LinkCost:
    """What a link from one target to another costs the planner: bandwidth, rtt, energy per byte."""
    def __init__(self: LinkCost, bandwidth_mbps: float = 0.0, rtt_ms: float = 0.0, energy_mj_per_byte: float = 0.0) -> None: ...
    bandwidth_mbps: float
    energy_mj_per_byte: float
    rtt_ms: float

class LinkSpec:
    def __init__(self: LinkSpec) -> None: ...
    bandwidth_mbps: float
    burst_bytes: float
    label: str
    min_bandwidth_mbps: float
    rtt_ms: float
    time_scale: float
    trace: List[Tuple[float, float]]

class LoadOptions:
    def __init__(self: LoadOptions) -> None: ...
    optimize_numerics: bool
    trainable: bool

class LoadSwitch:
    """The light/heavy-load decision of a stream: latency plan or throughput plan, by arrival rate and queue (adapt/load_switch.h)."""
    def __init__(self: LoadSwitch, latency_ms: float, throughput_fps: float, options: LoadSwitchOptions = ...) -> None: ...
    arrival_rate: float
    def arrive(self: LoadSwitch, t_s: float) -> None: ...
    def decide(self: LoadSwitch, queued: int) -> str: ...
    latency_rate: float
    mode: str
    def served_latency_mode(self: LoadSwitch, service_ms: float) -> None: ...
    why: str

class LoadSwitchOptions:
    def __init__(self: LoadSwitchOptions) -> None: ...
    policy: str
    queue_up: int
    rate_window: int
    service_ewma: float
    switch_down: float
    switch_up: float

class MachineState:
    """The machine an atom runs on: intra-op threads and background load (cores kept busy)."""
    def __init__(self: MachineState, threads: int = 1, background_load: float = 0.0) -> None: ...
    background_load: float
    threads: int

class Model:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    atoms: List[Atom]
    def check_inputs(self: Model, inputs: List[torch.Tensor]) -> None: ...
    def combine(self: Model, atoms: List[int]) -> Block: ...
    def dag(self: Model) -> Any: ...
    def dag_value(self: Model, graph_value: int) -> int: ...
    graph: OpGraph
    hash: str
    def load(self, *args: Any, **kwargs: Any) -> Any: ...
    def load_bytes(self, *args: Any, **kwargs: Any) -> Any: ...
    def load_script_module(self, *args: Any, **kwargs: Any) -> Any: ...
    def loaded_atoms(self: Model) -> List[int]: ...
    def loaded_param_bytes(self: Model) -> int: ...
    num_atoms: int
    def open(self, *args: Any, **kwargs: Any) -> Any: ...
    def parameters(self: Model, atoms: List[int] = []) -> List[Tuple[str, torch.Tensor]]: ...
    @overload
    def run(self: Model, inputs: List[torch.Tensor], placement: List[int]) -> List[torch.Tensor]: ...
    @overload
    def run(self: Model, inputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def run_blocks(self: Model, inputs: List[torch.Tensor], blocks: List[List[int]]) -> List[torch.Tensor]: ...
    def save(self: Model, dir: str, overwrite: bool = False) -> None: ...
    def train_block(self: Model, atoms: List[int]) -> TrainBlock: ...
    trainable: bool

class Monitor:
    def __init__(self: Monitor, options: MonitorOptions = ...) -> None: ...
    bandwidth_mbps: Optional[float]
    device_load: float
    device_samples: int
    def free_memory_bytes(self, *args: Any, **kwargs: Any) -> Any: ...
    def load_of(self: Monitor, server: int = 0) -> float: ...
    def observe_device(self: Monitor, device_ms: float, predicted_ms: float) -> None: ...
    def observe_rtt(self: Monitor, rtt_ms: float) -> None: ...
    def observe_server(self: Monitor, server_ms: float, predicted_ms: float, server: int = 0) -> None: ...
    def observe_transfer(self: Monitor, bytes: float, transfer_ms: float) -> None: ...
    def restart_device_load(self: Monitor) -> None: ...
    rtt_ms: float
    samples: int
    server_load: float

class MonitorOptions:
    def __init__(self: MonitorOptions) -> None: ...
    estimator: str
    ewma_alpha: float
    kalman_q: float
    kalman_r: float
    load_alpha: float
    min_bytes: float
    min_device_ms: float
    window: int

class NotFoundError(TesseraError):
    """A file, store, model or atom does not exist."""
    ...

class Observation:
    def __init__(self: Observation) -> None: ...
    current: List[int]
    device_load: float
    device_samples: int
    device_state: DeviceState
    est_bandwidth: float
    index: int
    link_time_s: float
    memory_budget_bytes: float
    replan: bool
    rtt_ms: float
    server_load: float
    true_bandwidth: float

class OpGraph:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    inputs: List[int]
    nodes: List[OpNode]
    def num_compute_nodes(self: OpGraph) -> int: ...
    output_structure: str
    outputs: List[int]
    def summary(self: OpGraph, max_rows: int = -1) -> str: ...
    values: List[OpValue]

class OpNode:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    args: List[int]
    atom: int
    helper: bool
    id: int
    inputs: List[int]
    kind: str
    outputs: List[int]
    scope: str

class OpValue:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    bytes: int
    consumers: List[int]
    dtype: str
    id: int
    info: TensorInfo
    is_tensor: bool
    name: str
    producer: int
    shape: List[int]
    type: str

class Operating:
    def __init__(self: Operating, frequency_mhz: float = 0.0, tx_power_mw: float = 0.0) -> None: ...
    frequency_mhz: float
    tx_power_mw: float

class OptimizerOptions:
    def __init__(self: OptimizerOptions) -> None: ...
    beta1: float
    beta2: float
    def check(self: OptimizerOptions) -> None: ...
    eps: float
    kind: str
    lr: float
    momentum: float
    weight_decay: float

class ParametricPlanner:
    """Every optimal min-cut plan over bandwidth; a bandwidth change is a lookup."""
    def __init__(self: ParametricPlanner, cost_model: CostModel, context: Context, constraints: Constraints = ..., min_bw: float = 0.01, max_bw: float = 10000.0) -> None: ...
    def breakpoints(self: ParametricPlanner) -> List[float]: ...
    def lookup(self: ParametricPlanner, bandwidth_mbps: float) -> Plan: ...
    def lookup_index(self: ParametricPlanner, bandwidth_mbps: float) -> int: ...
    def lookup_indices(self: ParametricPlanner, bandwidths_mbps: List[float]) -> List[int]: ...
    def lookup_placement(self: ParametricPlanner, bandwidth_mbps: float) -> List[int]: ...
    num_cuts_solved: int
    segments: List[ParametricSegment]

class ParametricSegment:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    bw_hi_mbps: float
    bw_lo_mbps: float
    intercept: float
    placement: List[int]
    slope: float

class Pipeline:
    def __init__(self: Pipeline, model: Model, plan: PipelinePlan, network: PipelineNetwork, options: PipelineOptions) -> None: ...
    in_flight: int
    def map(self: Pipeline, frames: List[List[torch.Tensor]]) -> List[List[torch.Tensor]]: ...
    def poll(self: Pipeline, timeout_ms: int) -> List[PipelineDone]: ...
    def records(self: Pipeline) -> List[FrameRecord]: ...
    reply_endpoint: str
    def run(self: Pipeline, inputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def stats(self: Pipeline) -> PipelineStats: ...
    def submit(self: Pipeline, inputs: List[torch.Tensor]) -> int: ...

class PipelineDone:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    outputs: List[torch.Tensor]
    record: FrameRecord
    ticket: int

class PipelineNetwork:
    """The network a pipeline is planned on: nodes (the first is the device), bandwidth_mbps[i][j] and rtt_ms[i][j] between them (0 Mbit/s: no link), pin, tiling."""
    def __init__(self: PipelineNetwork) -> None: ...
    bandwidth_mbps: List[List[float]]
    def index(self: PipelineNetwork, name: str) -> int: ...
    nodes: List[PipelineNode]
    pin: List[int]
    rtt_ms: List[List[float]]
    tiling: Any
    def validate(self: PipelineNetwork, dag: AtomDag) -> None: ...

class PipelineNode:
    """A node of a PipelineNetwork: name, compute_ms per atom, memory_bytes for weights, load (how much busier than its costs say)."""
    def __init__(self: PipelineNode) -> None: ...
    compute_ms: List[float]
    load: float
    memory_bytes: float
    name: str

class PipelineOptions:
    def __init__(self: PipelineOptions) -> None: ...
    emulation: Any
    endpoints: List[str]
    in_flight: int
    reply_advertise: str
    reply_bind: str
    retry_ms: int
    send_timeout_ms: int
    slowdown: List[float]
    timeout_ms: int

class PipelinePlan:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    algorithm: str
    bottleneck: str
    bottleneck_ms: float
    def explain(self: PipelinePlan, network: PipelineNetwork) -> str: ...
    latency_ms: float
    link_ms: List[float]
    def ok(self: PipelinePlan) -> bool: ...
    reason: str
    stage_ms: List[float]
    stages: List[Stage]
    status: str
    throughput_fps: float
    tile_ms: List[float]

class PipelineStageStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    accounted_ms: float
    bytes_in: float
    compute_ms: float
    cpu_ms: float
    frames: int
    link_back_ms: float
    link_in_ms: float
    node: str
    queue_ms: float
    tile_fallbacks: int
    tile_link_ms: float
    tile_ms: float

class PipelineStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    accounted_bottleneck_ms: float
    accounted_fps: float
    bottleneck: str
    fallbacks: int
    frames: int
    late: int
    latency_ms_median: float
    stages: List[PipelineStageStats]
    def to_json(self: PipelineStats) -> str: ...
    wall_fps: float

class PipelineTiling:
    def __init__(self: PipelineTiling) -> None: ...
    chain: List[int]
    def empty(self: PipelineTiling) -> bool: ...
    in_bytes: List[float]
    max_tiles: int
    ops: List[List[RowOp]]
    out_bytes: List[float]
    rows_in: List[int]
    rows_out: List[int]

class Plan:
    """A placement with its predicted metrics, blocks and transfers."""
    def __init__(self: Plan) -> None: ...
    algorithm: str
    bandwidth_mbps: float
    blocks: List[ScheduledBlock]
    device_activation_bytes: float
    device_memory_bytes: float
    energy_mj: float
    def explain(self: Plan, cost_model: CostModel) -> str: ...
    latency_ms: float
    link_ms: float
    objective: float
    def ok(self: Plan) -> bool: ...
    placement: List[int]
    reason: str
    rtt_ms: float
    status: str
    target_ms: List[float]
    throughput_fps: float
    transfer_bytes: float
    transfers: List[Transfer]

class Planner:
    """A planner prepared for one cost model (graph built once)."""
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    name: str
    def plan(self: Planner, context: Context, constraints: Constraints = ..., current: List[int] = []) -> Plan: ...

class Policy:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    def breakpoints(self: Policy) -> List[float]: ...
    def decide(self: Policy, observation: Observation) -> Decision: ...
    name: str
    uses_estimates: bool

class PowerModel:
    def __init__(self: PowerModel) -> None: ...
    active_mw: List[float]
    freqs_mhz: List[float]
    idle_mw: float
    memory_bound: float
    reference_mhz: float
    rx_mw: float
    source: str
    def time_factor(self: PowerModel, frequency_mhz: float) -> float: ...
    tx: Radio
    def tx_levels(self: PowerModel) -> List[float]: ...
    def tx_rate_mbps(self: PowerModel, power_mw: float, bandwidth_mbps: float) -> float: ...
    def validate(self: PowerModel) -> None: ...

class Prediction:
    def __init__(self: Prediction, ms: List[float], fallback: List[int] = []) -> None: ...
    fallback: List[bool]
    ms: List[float]

class Predictor:
    """A latency predictor: per-atom milliseconds from features and a context (predict/predictor.h)."""
    def __init__(self: Predictor) -> None: ...
    def kind(self: Predictor) -> str: ...
    def predict(self: Predictor, samples: List[Sample]) -> Prediction: ...
    def save(self: Predictor, path: object) -> None: ...
    def update(self: Predictor, samples: List[Sample]) -> None: ...

class ProfileOptions:
    def __init__(self: ProfileOptions, threads: int = 0, repeats: int = 20, warmup: int = 3, background_load: float = 0.0, settle: float = 0.0, reference_ms: float = 0.0, max_discarded: int = -1, max_wait_ms: float = 30000.0) -> None: ...
    background_load: float
    max_discarded: int
    max_wait_ms: float
    reference_ms: float
    repeats: int
    settle: float
    threads: int
    warmup: int

class Radio:
    def __init__(self: Radio) -> None: ...
    bandwidth_mhz: float
    levels_mw: List[float]
    max_power_mw: float

class RequestRecord:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    busy: bool
    compute_mj: float
    cost_source: str
    decide_us: float
    device_atoms: int
    device_background_load: float
    device_ms: float
    device_param_bytes: float
    device_threads: int
    energy_mj: float
    energy_queue: float
    est_bandwidth: float
    est_device_load: float
    est_load: float
    estimate_device_atoms: int
    fallback: bool
    frequency_applied: str
    frequency_mhz: float
    idle_mj: float
    index: int
    link_time_s: float
    plan_id: int
    predicted_ms: float
    probed: bool
    queue_ms: float
    rx_mj: float
    server: int
    server_ms: float
    switched: bool
    total_ms: float
    transfer_ms: float
    true_bandwidth: float
    tx_mj: float
    tx_power_mw: float
    tx_rate_mbps: float
    why: str

class RowOp:
    def __init__(self: RowOp) -> None: ...
    dilation: int
    kernel: int
    label: str
    pad: int
    stride: int

class Sample:
    """One atom in one machine state (features f, ctx), with its measured ms when known (else < 0) and a label."""
    def __init__(self: Sample) -> None: ...
    ctx: MachineState
    f: AtomFeatures
    label: str
    ms: float

class ScheduledBlock:
    """A convex set of atoms on one target, with the values it reads and writes (tessera::ScheduledBlock)."""
    def __init__(self: ScheduledBlock) -> None: ...
    atoms: List[int]
    inputs: List[int]
    outputs: List[int]
    target: int

class Server:
    def __init__(self: Server, options: ServerOptions) -> None: ...
    endpoint: str
    metrics_endpoint: str
    def metrics_text(self: Server) -> str: ...
    def models(self: Server) -> List[str]: ...
    running: bool
    def start(self: Server) -> None: ...
    def stats(self: Server) -> ServerStats: ...
    def stop(self: Server) -> None: ...

class ServerOptions:
    def __init__(self: ServerOptions) -> None: ...
    allowed_client_keys: List[str]
    batch_delay_us: int
    batch_max: int
    bind: str
    curve_secret_key: str
    forward_timeout_ms: int
    intra_op_threads: int
    keep_freed_memory: bool
    max_message_bytes: int
    max_queue: int
    metrics_port: int
    repository: str
    verbose: bool
    workers: int

class ServerState:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    available: bool
    busy: int
    endpoint: str
    ewma_ms: float
    ewma_queue_ms: float
    failures: int
    requests: int

class ServerStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    batched: int
    batches: int
    busy_ms: float
    bytes_in: int
    bytes_out: int
    echoes: int
    errors: int
    forward_failures: int
    forwards: int
    late: int
    pings: int
    queue_peak: int
    queued: int
    refused_busy: int
    replies: int
    requests: int
    tile_fallbacks: int
    def to_json(self: ServerStats) -> str: ...
    unbatchable: int
    workers_busy: int

class SimulationOptions:
    def __init__(self: SimulationOptions) -> None: ...
    adaptive: AdaptiveOptions
    compute_jitter: float
    device_load: float
    device_load_trace: List[Tuple[float, float]]
    memory_trace: List[Tuple[float, float]]
    outlier_factor: float
    outlier_rate: float
    period_s: float
    requests: int
    retry_ms: float
    rtt_ms: float
    sample_noise: float
    seed: int
    server_load: float
    server_load_trace: List[Tuple[float, float]]
    timeout_ms: float

class SplitTrainer:
    def __init__(self: SplitTrainer, model: Model, placement: List[int], options: TrainerOptions) -> None: ...
    def blocks(self: SplitTrainer) -> List[Tuple[List[int], int]]: ...
    def gradients(self: SplitTrainer) -> List[Tuple[str, torch.Tensor]]: ...
    def load_state_dict(self: SplitTrainer, state: List[Tuple[str, torch.Tensor]]) -> None: ...
    placement: List[int]
    def predict(self: SplitTrainer, inputs: List[torch.Tensor]) -> torch.Tensor: ...
    def state_dict(self: SplitTrainer) -> List[Tuple[str, torch.Tensor]]: ...
    def step(self: SplitTrainer, inputs: List[torch.Tensor], labels: torch.Tensor) -> StepStats: ...
    version: int

class Stage:
    def __init__(self: Stage) -> None: ...
    atoms: List[int]
    helpers: List[int]
    node: int

class StageRecord:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    accounted_ms: float
    bytes_back: int
    bytes_in: int
    compute_ms: float
    cpu_ms: float
    link_back_ms: float
    link_in_ms: float
    node: int
    queue_ms: float
    ran_remote: bool
    tile_fallbacks: int
    tile_link_ms: float
    tile_ms: float

class StepStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    backward_ms: List[float]
    bytes_received: int
    bytes_sent: int
    device_peak_stored_bytes: int
    events: List[TrainEvent]
    forward_ms: List[float]
    loss: float
    peak_stored_bytes: List[int]
    version: int
    wall_ms: float

class StreamContext:
    def __init__(self: StreamContext) -> None: ...
    bandwidth_mbps: float
    rtt_ms: float

class StreamController:
    def __init__(self: StreamController, model: Model, cost_model: CostModel, context: StreamContext, deployment: DeploymentOptions, pipeline: PipelineOptions, options: LoadSwitchOptions) -> None: ...
    latency_plan: Plan
    def records(self: StreamController) -> List[StreamRecord]: ...
    def serve(self: StreamController, frames: List[List[torch.Tensor]], arrivals_s: List[float]) -> List[List[torch.Tensor]]: ...
    def stats(self: StreamController) -> StreamStats: ...
    throughput_plan: PipelinePlan

class StreamRecord:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    arrival_rate: float
    arrival_s: float
    done_s: float
    fallback: bool
    index: int
    latency_ms: float
    latency_rate: float
    mode: str
    queued: int
    service_ms: float
    start_s: float
    switched: bool
    wait_ms: float
    why: str

class StreamStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    arrival_fps: float
    fallbacks: int
    frames: int
    latency_frames: int
    latency_ms_p50: float
    latency_ms_p99: float
    latency_plan_fps: float
    latency_plan_ms: float
    served_fps: float
    steady_fps: float
    switches: int
    throughput_frames: int
    throughput_plan_fps: float
    def to_json(self: StreamStats) -> str: ...
    wait_ms_p50: float

class TensorInfo:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    bytes: int
    dtype: str
    shape: List[int]

class TesseraError(Exception):
    """Base class of every tessera error."""
    ...

class TileWindow:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    crop: int
    in_hi: int
    in_lo: int
    out_hi: int
    out_lo: int
    slice_rows_out: int

class Timeline:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    blocks: List[BlockTiming]
    device_ms: float
    fallback: bool
    queue_ms: float
    server: int
    server_ms: float
    total_ms: float
    transfer_ms: float

class TrainBlock:
    def __call__(self: TrainBlock, inputs: List[torch.Tensor], params: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    atoms: List[int]
    def graph_str(self: TrainBlock) -> str: ...
    inputs: List[int]
    outputs: List[int]
    params: List[str]

class TrainEvent:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    block: int
    bytes_received: int
    bytes_sent: int
    compute_ms: float
    end_ms: float
    kind: str
    micro_batch: int
    node: int
    start_ms: float

class TrainerOptions:
    def __init__(self: TrainerOptions) -> None: ...
    keep_gradients: bool
    labels_on: str
    loss: str
    max_in_flight: int
    micro_batches: int
    optimizer: OptimizerOptions
    output: int
    schedule: str
    servers: List[str]
    timeout_ms: int

class TrainingCosts:
    """Backward ms and optimizer update ms per node and atom (the forward ms are the PipelineNetwork's compute_ms), at the full batch."""
    def __init__(self: TrainingCosts) -> None: ...
    backward_ms: List[List[float]]
    update_ms: List[List[float]]
    def validate(self: TrainingCosts, dag: AtomDag, network: PipelineNetwork) -> None: ...

class TrainingEvent:
    """One operation of a simulated training step: stage, micro_batch (-1: update), op ('F', 'B', 'send_F', 'send_B', 'update'), node (sends: the sender), to_node (sends: the receiver, else -1), start_ms, end_ms."""
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    end_ms: float
    micro_batch: int
    node: int
    op: str
    stage: int
    start_ms: float
    to_node: int

class TrainingNode:
    def __init__(self: TrainingNode, model: Model, atoms: List[int], optimizer: OptimizerOptions) -> None: ...
    atoms: List[int]
    def backward(self: TrainingNode, micro_batch: int, block: List[int], grad_outputs: List[torch.Tensor]) -> List[torch.Tensor]: ...
    def commit(self: TrainingNode) -> None: ...
    def discard(self: TrainingNode) -> None: ...
    def forward(self: TrainingNode, micro_batch: int, block: List[int], inputs: List[torch.Tensor], keep: bool = True) -> List[torch.Tensor]: ...
    def load_state(self: TrainingNode, state: List[Tuple[str, torch.Tensor]]) -> None: ...
    def param_names(self: TrainingNode) -> List[str]: ...
    peak_stored_bytes: int
    def state(self: TrainingNode) -> List[Tuple[str, torch.Tensor]]: ...
    stored_bytes: int
    version: int

class TrainingOptions:
    """The knobs of a training plan: batch_size, micro_batches (choices), schedules, labels_on_device, optimizer_state_factor, micro_batch_overhead_ms, order, max_candidates."""
    def __init__(self: TrainingOptions) -> None: ...
    batch_size: int
    labels_on_device: bool
    max_candidates: int
    micro_batch_overhead_ms: float
    micro_batches: List[int]
    optimizer_state_factor: float
    order: List[int]
    schedules: List[str]

class TrainingPlan:
    """A placement for training with its simulated step (plan/training.h)."""
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    algorithm: str
    batch_size: int
    best_step_ms: List[float]
    def explain(self: TrainingPlan, network: PipelineNetwork) -> str: ...
    micro_batch_choices: List[int]
    micro_batches: int
    node_memory_bytes: List[float]
    node_param_bytes: List[float]
    node_stored_bytes: List[float]
    def ok(self: TrainingPlan) -> bool: ...
    over_memory: int
    placement: List[int]
    pruned: int
    reason: str
    samples_per_s: float
    schedule: str
    simulated: int
    stage_costs: List[TrainingStage]
    stages: List[Stage]
    status: str
    step_ms: float
    timeline: TrainingTimeline

class TrainingServer:
    def __init__(self: TrainingServer, store_dir: str, options: TrainingServerOptions = ...) -> None: ...
    endpoint: str
    def start(self: TrainingServer) -> None: ...
    def stats(self: TrainingServer) -> TrainingServerStats: ...
    def stop(self: TrainingServer) -> None: ...

class TrainingServerOptions:
    def __init__(self: TrainingServerOptions) -> None: ...
    bind: str
    max_message_bytes: int
    threads: int
    verbose: bool

class TrainingServerStats:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    aborts: int
    backwards: int
    commits: int
    errors: int
    forwards: int
    version: int

class TrainingStage:
    """One stage of a training pipeline for simulate_training: its node, per micro-batch fwd_ms / bwd_ms, send_fwd_ms (activations to the next stage) / send_bwd_ms (gradients to the previous one) on the link, fwd_delay_ms / bwd_delay_ms after them (rtt / 2), stored_bytes kept per micro-batch until its backward, update_ms once per step."""
    def __init__(self: TrainingStage, node: int = 0, fwd_ms: float = 0.0, bwd_ms: float = 0.0, send_fwd_ms: float = 0.0, send_bwd_ms: float = 0.0, fwd_delay_ms: float = 0.0, bwd_delay_ms: float = 0.0, stored_bytes: float = 0.0, update_ms: float = 0.0) -> None: ...
    bwd_delay_ms: float
    bwd_ms: float
    fwd_delay_ms: float
    fwd_ms: float
    node: int
    send_bwd_ms: float
    send_fwd_ms: float
    stored_bytes: float
    update_ms: float

class TrainingTimeline:
    """A simulated training step: events, makespan_ms, node_busy_ms, and per stage peak_in_flight / peak_stored_bytes, per node node_peak_stored_bytes."""
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    events: List[TrainingEvent]
    makespan_ms: float
    node_busy_ms: List[float]
    node_peak_stored_bytes: List[float]
    peak_in_flight: List[int]
    peak_stored_bytes: List[float]

class Transfer:
    def __init__(self: Transfer) -> None: ...
    bytes: float
    codec: str
    from_target: int
    ms: float
    to_target: int
    value: int

class UnsupportedError(TesseraError):
    """Not supported (yet): says what."""
    ...

class VariantCandidate:
    def __init__(self: VariantCandidate) -> None: ...
    bytes: float
    codec_ms: float
    device_memory_bytes: float
    device_ms: float
    energy_mj: float
    def latency_ms(self: VariantCandidate, context: Context) -> float: ...
    loss: float
    name: str
    placement: List[int]
    server_ms: float
    transfers: int
    variant: int

class VariantChoice:
    def __init__(self, *args: Any, **kwargs: Any) -> Any: ...
    feasible: int
    index: int
    latency_ms: float
    objective: float
    why: str

class VariantSelector:
    """Chooses a (variant, split) candidate per request under an accuracy budget (plan/variants.h)."""
    def __init__(self: VariantSelector, candidates: List[VariantCandidate]) -> None: ...
    def best_loss(self: VariantSelector) -> float: ...
    candidates: List[VariantCandidate]
    def select(self: VariantSelector, context: Context, loss_budget: float) -> VariantChoice: ...
    def select_many(self: VariantSelector, contexts: List[Context], loss_budget: float) -> List[int]: ...

MODEL_INPUT: int
def accuracy(samples: List[Sample], predicted: Prediction, min_ms: float = 0.1, tolerance: float = 0.1) -> Accuracy: ...
def activation_peak_bytes(dag: AtomDag, blocks: List[ScheduledBlock], target: int = 0) -> float: ...
def adaptive_policy(cost_model: CostModel, options: AdaptiveOptions) -> Policy: ...
def atom_features(graph: OpGraph, atoms: List[Atom], model_hash: str) -> List[AtomFeatures]: ...
atom_store_format: str
def blas_threads() -> int: ...
def canary_ms(runs: int = 5) -> float: ...
def candidate_from_plan(variant: int, name: str, plan: Any, loss: float) -> VariantCandidate: ...
def codec_names() -> List[str]: ...
def codec_round_trip(tensor: torch.Tensor, codec: str) -> torch.Tensor: ...
def codec_timing(tensor: torch.Tensor, codec: str, repeats: int = 21) -> tuple: ...
def codec_wire_bytes(tensor: torch.Tensor, codec: str) -> tuple: ...
def constraint_violation(plan: Plan, context: Context, constraints: Constraints = ...) -> str: ...
def cpufreq_unavailable() -> str: ...
def curve_keypair() -> Tuple[str, str]: ...
def device_energy(cost_model: CostModel, power: PowerModel, placement: List[int], op: Operating, bandwidth_mbps: float, rtt_ms: float) -> EnergyParts: ...
def energy_hull(cost_model: CostModel, power: PowerModel, bandwidth_mbps: float, rtt_ms: float, deadline_ms: float = inf) -> List[EnergyDecision]: ...
def energy_oracle(cost_model: CostModel, power: PowerModel, bandwidth_mbps: List[float], rtt_ms: float, budget_mj: float, deadline_ms: float = inf) -> Tuple[List[EnergyDecision], float]: ...
def energy_oracle_from_hulls(hulls: List[List[EnergyDecision]], budget_mj: float) -> Tuple[List[EnergyDecision], float]: ...
def energy_policy(cost_model: CostModel, power: PowerModel, options: ControllerOptions) -> Policy: ...
def evaluate(cost_model: CostModel, context: Context, placement: List[int]) -> Plan: ...
def evaluate_pipeline(dag: AtomDag, network: PipelineNetwork, stages: List[Stage]) -> PipelinePlan: ...
def evaluate_training(dag: AtomDag, network: PipelineNetwork, costs: TrainingCosts, placement: List[int], micro_batches: int, schedule: str, options: TrainingOptions) -> TrainingPlan: ...
def feature_names() -> List[str]: ...
def keep_freed_memory(on: bool = True) -> bool: ...
def lagged_oracle_policy(cost_model: CostModel, rtt_ms: float, link: LinkSpec, lag_s: float) -> Policy: ...
def learned_feature_names() -> List[str]: ...
def learned_features(samples: List[Sample], analytic_ms: List[float] = []) -> List[List[float]]: ...
def load_predictor(path: str) -> Predictor: ...
def make_plan(algorithm: str, cost_model: CostModel, context: Context, constraints: Constraints = ..., current: List[int] = []) -> Plan: ...
def make_planner(algorithm: str, cost_model: CostModel) -> Planner: ...
def make_predictor(kind: str) -> Predictor: ...
def make_samples(features: List[AtomFeatures], context: MachineState, ms: List[float] = [], label: str = '') -> List[Sample]: ...
def make_xgboost_predictor(rounds: int = 400, max_depth: int = 6, eta: float = 0.05, subsample: float = 0.8, min_child_weight: float = 2.0, nthread: int = 1, seed: int = 0) -> Predictor: ...
def op_class(kind: str) -> str: ...
def op_classes() -> List[str]: ...
def optimizer_state_factor(optimizer: str) -> float: ...
def oracle_policy(cost_model: CostModel, rtt_ms: float) -> Policy: ...
def pipeline_planner_names() -> List[str]: ...
def pipeline_tiling(model: Model, max_tiles: int = 2) -> PipelineTiling: ...
def plan_energy(cost_model: CostModel, power: PowerModel, bandwidth_mbps: float, rtt_ms: float, weights: EnergyWeights) -> EnergyDecision: ...
def plan_energy_brute_force(cost_model: CostModel, power: PowerModel, bandwidth_mbps: float, rtt_ms: float, weights: EnergyWeights) -> EnergyDecision: ...
def plan_from_placement(dag: AtomDag, placement: List[int], num_targets: int = 2) -> Plan: ...
def plan_pipeline(dag: AtomDag, network: PipelineNetwork, algorithm: str, order: List[int], objective: str) -> PipelinePlan: ...
def plan_pipeline_convex_brute_force(dag: AtomDag, network: PipelineNetwork, order: List[int], objective: str = 'throughput', max_atoms: int = 12) -> Any: ...
def plan_training(dag: AtomDag, network: PipelineNetwork, costs: TrainingCosts, options: TrainingOptions) -> TrainingPlan: ...
def planner_names() -> List[str]: ...
def predict_atoms(predictor: Predictor, graph: OpGraph, atoms: List[Atom], model_hash: str, context: MachineState) -> Prediction: ...
def predictor_kinds() -> List[str]: ...
def profile(model: Model, inputs: List[torch.Tensor], options: ProfileOptions = ..., progress: object = None) -> CostTable: ...
def read_samples_csv(path: str) -> List[Sample]: ...
def read_trace(path: str) -> List[Tuple[float, float]]: ...
def run_controller(controller: EnergyController, bandwidth_mbps: List[float], rtt_ms: float) -> List[EnergyRecord]: ...
def schedule_blocks(dag: AtomDag, placement: List[int]) -> List[ScheduledBlock]: ...
def set_intra_op_threads(threads: int) -> None: ...
def simulate(cost_model: CostModel, link: LinkSpec, policy: Policy, options: SimulationOptions) -> List[RequestRecord]: ...
def simulate_training(stages: List[TrainingStage], micro_batches: int, schedule: str = '1f1b') -> TrainingTimeline: ...
def split_rows(chain: List[RowOp], rows_in: int, shares: List[float]) -> List[TileWindow]: ...
def stage_tiles(network: PipelineNetwork, stage: Stage) -> List[TileWindow]: ...
def static_policy(name: str, placement: List[int]) -> Policy: ...
def tile_window(chain: List[RowOp], rows_in: int, a: int, b: int) -> TileWindow: ...
def validate_plan(plan: Plan, cost_model: CostModel) -> List[str]: ...
def validate_plan_on(plan: Plan, dag: AtomDag, num_targets: int = 2) -> List[str]: ...
wire_protocol_version: int
def with_codec(costs: CostModel, codec: str, cost: CodecCost = ...) -> CostModel: ...
def write_samples_csv(path: str, samples: List[Sample]) -> None: ...
__version__: str
