"""Split training (issue 22): trainable atoms, gradients across the cut, micro-batches, a server
killed during a step, and named errors. Every split is checked against eager PyTorch training
of the same TorchScript model (its eval semantics: batch norm with running statistics)."""
import json
import random
import threading
import time

import pytest
import torch

import tessera as ts
from tessera import training, zoo

# Five zoo models of different families (conv + BN, depthwise, fire modules, attention, LSTM);
# the LSTM returns (logits, hidden state): the loss reads output 0.
MODELS = {"resnet18": -1, "mobilenet_v2": -1, "squeezenet1_0": -1, "transformer": -1, "lstm": 0}


def _first(y, output):
    return y[output] if isinstance(y, (tuple, list)) else y


def _reference(path, xs, labels, output, lr):
    """Eager PyTorch: one SGD step of the TorchScript model on the whole batch."""
    ref = torch.jit.load(str(path)).eval()
    w0 = {n: p.detach().clone() for n, p in ref.named_parameters()}
    opt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=0.9)
    out = _first(ref(*xs), output)
    torch.nn.functional.cross_entropy(out, labels).backward()
    grads = {n: p.grad.detach().clone() for n, p in ref.named_parameters() if p.grad is not None}
    opt.step()
    return w0, grads, {n: p.detach().clone() for n, p in ref.named_parameters()}


def _rel(a, b):
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()


def _random_placement(rng, n, servers):
    """Segments of the topological order (each convex): device prefix, then 1-2 servers, then
    maybe a device suffix (a U-shaped split)."""
    cuts = sorted(rng.sample(range(1, n), servers + 1))
    nodes = [0] + list(range(1, servers + 1)) + [0]
    bounds = [0] + cuts + [n]
    placement = []
    for seg, node in enumerate(nodes):
        placement += [node] * (bounds[seg + 1] - bounds[seg])
    return placement


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """name -> (store dir, path, example inputs, batch inputs, labels)."""
    out = {}
    for name, output in MODELS.items():
        path, xs = zoo.torchscript(name)
        tm = ts.load(path, xs, trainable=True)
        d = tmp_path_factory.mktemp("train") / name
        tm.save(d)
        g = torch.Generator().manual_seed(7)
        batch = tuple(torch.cat([x, x.flip(0) if x.dim() > 1 and x.dtype.is_floating_point else x]) if x.shape[0] == 1
                      else x for x in xs)
        batch = tuple(b + 0.01 * torch.randn(b.shape, generator=g) if b.dtype.is_floating_point else b for b in batch)
        classes = _first(tm(xs), output if output >= 0 else 0).shape[-1]
        labels = torch.randint(0, classes, (batch[0].shape[0],), generator=g)
        out[name] = (d, path, xs, batch, labels)
    return out


def test_trainable_atoms_keep_every_parameter_and_infer_as_the_frozen_model(stores):
    for name in ["resnet18", "lstm"]:
        d, path, xs, _, _ = stores[name]
        tm = ts.Model.open(d)
        assert tm.trainable
        names = [p for a in tm.atoms for p in a.params]
        ref = dict(torch.jit.load(str(path)).named_parameters())
        assert sorted(set(names)) == sorted(ref)  # every parameter is some atom's, by its state_dict name
        params = tm.parameters()
        for n, p in ref.items():
            assert torch.equal(params[n], p.detach()), n  # the true values, not the freezing perturbation
        frozen = ts.load(path, xs)
        assert not frozen.trainable and frozen.parameters() == {}
        for a, b in zip(frozen.run_flat(xs), tm.run_flat(xs)):
            assert torch.equal(a, b)  # inference is unchanged
        man = json.loads((d / "manifest.json").read_text())
        assert sum(len(a.get("params", [])) for a in man["atoms"]) == len(names)
    # a batch-norm atom: weight and running variance are both ones, yet stay two tensors
    tm = ts.Model.open(stores["resnet18"][0])
    bn = next(a for a in tm.atoms if "aten::batch_norm" in a.op_kinds)
    assert bn.params == ["bn1.weight", "bn1.bias"]


def test_a_frozen_model_cannot_be_trained(stores, tmp_path):
    d, path, xs, batch, labels = stores["resnet18"]
    frozen = ts.load(path, xs)
    with pytest.raises(ts.InvalidArgumentError, match="not loaded trainable"):
        frozen.train_block([0])
    with pytest.raises(ts.InvalidArgumentError, match="not loaded trainable"):
        ts.SplitTrainer(frozen, [0] * frozen.num_atoms)
    frozen.save(tmp_path / "frozen")
    with pytest.raises(ts.InvalidArgumentError, match="frozen"):
        ts.TrainingServer(tmp_path / "frozen")


@pytest.mark.parametrize("name", list(MODELS))
def test_split_gradients_and_weights_equal_single_process_training(stores, name):
    """10 random convex placements per model (1 or 2 servers, U-shaped or not, 1-2 micro-batches,
    both schedules): every gradient and updated weight within 1e-5 relative of eager PyTorch."""
    d, path, xs, batch, labels = stores[name]
    output = MODELS[name]
    lr = 0.05
    w0, g_ref, w_ref = _reference(path, batch, labels, output, lr)
    rng = random.Random(hash(name) % 1000)
    n = ts.Model.open(d, atoms=[]).num_atoms
    for trial in range(10):
        servers = 1 + trial % 2
        placement = _random_placement(rng, n, servers)
        if trial % 3 == 0:  # no device suffix: the loss's output comes from a server
            last = max(placement)
            placement = [p if i < n - 3 else last for i, p in enumerate(placement)]
        srvs = [ts.TrainingServer(d).start() for _ in range(servers)]
        try:
            tm = ts.Model.open(d, atoms=[])
            tr = ts.SplitTrainer(tm, placement, server=[s.endpoint for s in srvs],
                                 optimizer=("sgd", {"lr": lr, "momentum": 0.9}), output=output,
                                 labels_on="server", micro_batches=1 + trial % 2,
                                 schedule=["gpipe", "1f1b"][trial % 2], keep_gradients=True, timeout_ms=60000)
            st = tr.step(batch, labels)
            grads, weights = tr.gradients(), tr.state_dict()
        finally:
            for s in srvs:
                s.stop()
        where = f"{name} placement {placement} trial {trial}"
        assert st.version == 1 and sorted(weights) == sorted(w_ref), where
        assert set(grads) == set(g_ref), where
        for k in g_ref:
            assert _rel(grads[k], g_ref[k]) <= 1e-5, f"{where}: gradient of {k}"
            assert _rel(weights[k], w_ref[k]) <= 1e-5, f"{where}: weight {k}"
        # the device held only its own atoms' files
        assert set(tm.loaded_atoms()) == {a for a, p in enumerate(placement) if p == 0}, where


def test_schedules_and_micro_batches_compute_the_same_step(stores):
    d, path, xs, batch, labels = stores["resnet18"]
    batch = (torch.cat([batch[0]] * 2),)
    labels = torch.cat([labels, labels.flip(0)])
    n = ts.Model.open(d, atoms=[]).num_atoms
    placement = [0] * 8 + [1] * (n - 14) + [0] * 6
    runs = {}
    for micro, schedule in [(1, "gpipe"), (4, "gpipe"), (4, "1f1b")]:
        with ts.TrainingServer(d) as srv:
            tr = ts.SplitTrainer(ts.Model.open(d, atoms=[]), placement, server=srv.endpoint, keep_gradients=True,
                                 micro_batches=micro, schedule=schedule)
            st = tr.step(batch, labels)
            runs[(micro, schedule)] = (st, tr.gradients())
    base = runs[(1, "gpipe")][1]
    for key, (st, grads) in runs.items():
        for k in base:
            assert _rel(grads[k], base[k]) <= 1e-5, (key, k)
    kinds = lambda st: [(e.kind, e.micro_batch) for e in st.events]  # noqa: E731
    gp, ob = runs[(4, "gpipe")][0], runs[(4, "1f1b")][0]
    first_b = lambda st: next(i for i, e in enumerate(st.events) if e.kind == "B")  # noqa: E731
    last_f = lambda st: max(i for i, e in enumerate(st.events) if e.kind == "F")  # noqa: E731
    assert last_f(gp) < first_b(gp), kinds(gp)  # GPipe: every forward before any backward
    assert first_b(ob) < last_f(ob), kinds(ob)  # 1F1B: backwards start while forwards remain
    assert len(gp.events) == len(ob.events) == 4 * (3 * 2 + 1)  # 3 blocks x F and B, and the loss, per micro-batch
    # 1F1B keeps fewer micro-batches' activations on the device at once
    assert ob.device_peak_stored_bytes < gp.device_peak_stored_bytes
    assert gp.forward_ms[1] > 0 and gp.backward_ms[1] > 0 and gp.bytes_sent > 0 and gp.bytes_received > 0


def test_adam_and_several_steps_follow_pytorch(stores):
    """Adam divides by the gradients' own scale, so a gradient near zero turns float summation
    noise into a full step: one micro-batch here (summed as eager sums it)."""
    d, path, xs, batch, labels = stores["transformer"]
    ref = torch.jit.load(str(path)).eval()
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3, betas=(0.8, 0.99))
    n = ts.Model.open(d, atoms=[]).num_atoms
    with ts.TrainingServer(d) as srv:
        tr = ts.SplitTrainer(ts.Model.open(d, atoms=[]), [0] * 10 + [1] * (n - 20) + [0] * 10, server=srv.endpoint,
                             optimizer=("adam", {"lr": 1e-3, "betas": (0.8, 0.99)}))
        for _ in range(3):
            st = tr.step(batch, labels)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ref(*batch), labels)
            loss.backward()
            opt.step()
            assert abs(st.loss - loss.item()) <= 1e-5 * max(1.0, abs(loss.item()))
        weights = tr.state_dict()
        assert tr.version == 3 and srv.stats().version == 3 and srv.stats().commits == 3
    for k, p in ref.named_parameters():
        assert _rel(weights[k], p.detach()) <= 1e-5, k


def test_a_server_killed_during_a_step_moves_no_weight_and_the_next_step_retries(stores):
    d, path, xs, batch, labels = stores["resnet18"]
    big = (torch.cat([batch[0]] * 8),)
    big_labels = torch.cat([labels] * 8)
    n = ts.Model.open(d, atoms=[]).num_atoms
    placement = [0] * 4 + [1] * (n - 8) + [0] * 4
    proc, endpoint = training.spawn_training_server(d)
    tm = ts.Model.open(d, atoms=[])
    tr = ts.SplitTrainer(tm, placement, server=endpoint, micro_batches=4, timeout_ms=3000)
    before = {k: v.clone() for k, v in tm.parameters([a for a, p in enumerate(placement) if p == 0]).items()}
    failure = {}

    def run():
        try:
            tr.step(big, big_labels)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            failure["error"] = e

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.8)  # the server is mid-step: 16 images of ResNet-18 forward and backward take seconds
    proc.kill()
    proc.wait()
    t.join(60)
    assert not t.is_alive()
    err = failure.get("error")
    assert isinstance(err, (ts.DeadlineError, ts.EngineError)), failure
    assert endpoint in str(err) and "no weight moved" in str(err) or endpoint in str(err)
    for k, v in tm.parameters([a for a, p in enumerate(placement) if p == 0]).items():
        assert torch.equal(v, before[k]), f"{k} moved in a failed step"
    assert tr.version == 0
    # the server comes back (from its store, version 0) on the same endpoint: the step retries
    proc2, endpoint2 = training.spawn_training_server(d, bind=endpoint)
    try:
        assert endpoint2 == endpoint
        st = tr.step(big, big_labels)
        assert st.version == 1 and tr.version == 1
    finally:
        from tessera.runtime import stop_server
        stop_server(proc2)


def test_bad_input_gets_named_errors(stores):
    d, path, xs, batch, labels = stores["resnet18"]
    tm = ts.Model.open(d, atoms=[])
    n = tm.num_atoms
    split = [0] * 10 + [1] * (n - 10)  # the logits are made on the server
    with ts.TrainingServer(d) as srv:
        with pytest.raises(ts.InvalidArgumentError, match="optimizer 'rmsprop' is unknown"):
            ts.SplitTrainer(tm, split, server=srv.endpoint, optimizer="rmsprop", labels_on="server")
        with pytest.raises(ts.InvalidArgumentError, match="no option 'nesterov'"):
            ts.SplitTrainer(tm, split, server=srv.endpoint, optimizer=("sgd", {"nesterov": 1}), labels_on="server")
        with pytest.raises(ts.InvalidArgumentError, match="labels_on='device'.*runs on node 1"):
            ts.SplitTrainer(tm, split, server=srv.endpoint)
        with pytest.raises(ts.InvalidArgumentError, match="loss 'hinge' is unknown"):
            ts.SplitTrainer(tm, split, server=srv.endpoint, loss="hinge", labels_on="server")
        with pytest.raises(ts.InvalidArgumentError, match="schedule 'zigzag'"):
            ts.SplitTrainer(tm, split, server=srv.endpoint, schedule="zigzag", labels_on="server")
        with pytest.raises(ts.InvalidArgumentError, match="placement"):
            ts.SplitTrainer(tm, [0] * (n - 1), server=srv.endpoint)
        tr = ts.SplitTrainer(tm, split, server=srv.endpoint, labels_on="server", micro_batches=2)
        with pytest.raises(ts.InvalidArgumentError, match="labels have shape"):
            tr.step(batch, labels[:1])
        with pytest.raises(ts.InvalidArgumentError, match="int64 class ids"):
            tr.step(batch, labels.float())
        with pytest.raises(ts.InvalidArgumentError, match="does not divide into 2 micro-batches"):
            tr.step((batch[0][:1],), labels[:1])
        with pytest.raises(ts.InvalidArgumentError, match="keeps no gradients"):
            tr.gradients()
        assert tr.version == 0 and srv.stats().commits == 0
        st = tr.step(batch, labels)  # and after all of that, a step works
        assert st.version == 1


def test_a_training_server_survives_malformed_commands(stores):
    """Commands out of order or for another session get an Error naming them; the server goes on."""
    d, path, xs, batch, labels = stores["squeezenet1_0"]
    n = ts.Model.open(d, atoms=[]).num_atoms
    with ts.TrainingServer(d) as srv:
        node = ts.Model.open(d, atoms=[])
        tr = ts.SplitTrainer(node, [0] * 5 + [1] * (n - 10) + [0] * 5, server=srv.endpoint)
        # a second trainer replaces the first one's session: the first gets a named error
        tr2 = ts.SplitTrainer(ts.Model.open(d, atoms=[]), [0] * 5 + [1] * (n - 10) + [0] * 5, server=srv.endpoint)
        with pytest.raises(ts.EngineError, match="session .* is not open here"):
            tr.step(batch, labels)
        assert tr2.step(batch, labels).version == 1
        assert srv.stats().errors >= 1


def test_profile_training_measures_every_atom(stores):
    d, path, xs, batch, labels = stores["squeezenet1_0"]
    tm = ts.Model.open(d)
    costs = ts.profile_training(tm, batch, repeats=2)
    assert len(costs.forward_ms) == len(costs.backward_ms) == tm.num_atoms
    assert all(v > 0 for v in costs.forward_ms) and all(v >= 0 for v in costs.backward_ms)
    convs = [a.id for a in tm.atoms if "aten::conv2d" in a.op_kinds or "aten::_convolution" in a.op_kinds]
    assert sum(costs.backward_ms[a] for a in convs) > 0.5 * sum(costs.forward_ms[a] for a in convs)
    assert costs.batch == batch[0].shape[0] and costs.stored_bytes[0] > 0


def test_max_in_flight_bounds_every_nodes_stored_activations(stores):
    d, path, xs, batch, labels = stores["resnet18"]
    batch = (torch.cat([batch[0]] * 2),)
    labels = torch.cat([labels, labels.flip(0)])
    n = ts.Model.open(d, atoms=[]).num_atoms
    placement = [0] * 8 + [1] * (n - 14) + [0] * 6
    peaks = {}
    for bound in (0, 1):
        with ts.TrainingServer(d) as srv:
            tr = ts.SplitTrainer(ts.Model.open(d, atoms=[]), placement, server=srv.endpoint, micro_batches=4,
                                 schedule="gpipe", max_in_flight=bound, keep_gradients=True)
            st = tr.step(batch, labels)
            peaks[bound] = (list(st.peak_stored_bytes), tr.gradients())
    (free, g0), (one, g1) = peaks[0], peaks[1]
    assert free[0] == peaks[0][0][0] > 0 and free[1] > 0  # the server reports its own peak
    for node in (0, 1):  # one micro-batch at a time keeps a quarter of the activations (4 equal parts)
        assert one[node] <= 0.3 * free[node], (node, one, free)
    for k in g0:
        assert _rel(g1[k], g0[k]) <= 1e-6, k  # the bound changes the order, not the step
    with pytest.raises(ts.InvalidArgumentError, match="max_in_flight"):
        ts.SplitTrainer(ts.Model.open(d, atoms=[]), [0] * n, max_in_flight=-1)
