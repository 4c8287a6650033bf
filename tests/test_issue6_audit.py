"""Regression tests for what an audit of issue 6, section 3, still found: each
case raised the wrong error, named the wrong argument, or changed something."""
import copy
import json
import struct
import threading
import warnings

import numpy as np
import pytest
import safetensors.numpy

import mxopt
from mxopt import _arrays, _checks, checkpoint
from mxopt.optimizer import opt_registry

#: Every registered optimizer, with the settings that give it state arrays.
CONFIGS = [("sgd", {"momentum": 0.9}), ("nag", {"momentum": 0.9}), ("adam", {}), ("adagrad", {}),
           ("rmsprop", {}), ("rmsprop", {"centered": True}), ("adadelta", {}), ("adamax", {}),
           ("nadam", {}), ("amsgrad", {}), ("adamw", {}), ("ccsgd", {"momentum": 0.9}),
           ("signum", {}), ("dcasgd", {"momentum": 0.9}), ("lbsgd", {"momentum": 0.9, "batch_scale": 2}),
           ("lbsgd", {"momentum": 0.9, "warmup_strategy": "lars"}), ("lars", {"momentum": 0.9}),
           ("lamb", {}), ("groupadagrad", {})]
CONFIGS += [("ftrl", {})]
CONFIGS += [("ftml", {})]
CONFIGS += [("sgld", {"seed": 1})]


def test_configs_cover_the_registry():
    # other tests register optimizers of their own; mxopt's are those of mxopt.optimizers
    assert {name for name, _ in CONFIGS} == {n for n, k in opt_registry.items() if k.__module__.startswith("mxopt.")}


def make(name, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ccsgd
        return mxopt.create(name, **kwargs)


def frozen(opt, *arrays_or_states):
    """Everything an update may change: counters, multipliers, arrays and carried scalars."""
    out = [opt.num_update, dict(opt._index_update_count), dict(opt.lr_mult), dict(opt.wd_mult), opt.rescale_grad]
    for x in arrays_or_states:
        if isinstance(x, mxopt.State):
            out.append(([a.copy() for a in x.arrays], dict(x.scalars)))
        elif x is None:  # an optimizer that keeps no state (SGLD)
            out.append(None)
        else:
            out.append(x.copy())
    return out


def same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, tuple):
            same(list(x[0]), list(y[0]))
            assert x[1] == y[1]
        elif isinstance(x, list):
            same(x, y)
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}{'-' + str(k) if k else ''}" for n, k in CONFIGS])
def test_list_update_refuses_memory_shared_across_parameters(name, kwargs):
    opt = make(name, learning_rate=0.01, **kwargs)
    # 2-D, so that row-wise optimizers (GroupAdaGrad) take them too
    w0 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    w1 = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    s0, s1 = opt.create_state(0, w0), opt.create_state(1, w1)
    g = np.full((3, 4), 0.5, np.float32)
    opt.update([0, 1], [w0, w1], [g, g.copy()], [s0, s1])  # non-trivial counters and states
    before = frozen(opt, w0, w1, s0, s1, g)
    calls = [
        ("grad of index 1 shares memory with weight of index 0", lambda: opt.update([0, 1], [w0, w1], [g, w0], [s0, s1])),
        ("weight of index 1 shares memory with weight of index 0", lambda: opt.update([0, 1], [w0, w0], [g, g], [s0, s1])),
    ]
    if s1 is not None:  # states to forge (SGLD keeps none)
        inside_w0 = w0.reshape(-1)[:s1.arrays[0].size].reshape(s1.arrays[0].shape)  # a view of w0 shaped like the state
        forged = mxopt.State(s1.optimizer, 1, s1.names, (inside_w0,) + tuple(s1.arrays[1:]), s1.scalars)
        shared = mxopt.State(s1.optimizer, 1, s1.names, s0.arrays, s1.scalars)
        calls += [
            ("state.* of index 1 shares memory with weight of index 0", lambda: opt.update([0, 1], [w0, w1], [g, g], [s0, forged])),
            ("of index 1 shares memory with state", lambda: opt.update([0, 1], [w0, w1], [g, g], [s0, shared])),
        ]
    for label, call in calls:
        with pytest.raises(ValueError, match=label.replace("[", r"\[")):
            call()
        same(before, frozen(opt, w0, w1, s0, s1, g))
    # one gradient array read by two parameters is fine: gradients are only read
    alone = make(name, learning_rate=0.01, **kwargs)
    a, b = w0.copy(), w1.copy()
    sa, sb = copy.deepcopy(s0), copy.deepcopy(s1)
    alone._index_update_count, alone.num_update = dict(opt._index_update_count), opt.num_update
    opt.update([0, 1], [w0, w1], [g, g], [s0, s1])
    alone.update(0, a, g, sa)
    alone.update(1, b, g.copy(), sb)
    np.testing.assert_array_equal(w0, a)
    np.testing.assert_array_equal(w1, b)


def test_disjoint_lets_read_only_arrays_share_and_sweeps_in_address_order():
    buf = np.zeros(10)
    named = [("grad a", _arrays.info(buf)), ("grad b", _arrays.info(buf[2:])), ("weight", _arrays.info(np.zeros(3)))]
    _checks.disjoint(named, read_only={"grad a", "grad b"})
    with pytest.raises(ValueError, match="grad b shares memory with grad a"):
        _checks.disjoint(named)
    # many separate arrays (the Trainer's slices of one buffer) are fine, and empty ones never overlap
    flat = np.zeros(4000)
    _checks.disjoint([(f"w{i}", _arrays.info(flat[i * 4:(i + 1) * 4])) for i in range(1000)]
                     + [("empty", _arrays.info(flat[5:5]))])
    with pytest.raises(ValueError, match="w999 shares memory with w0"):
        _checks.disjoint([(f"w{i}", _arrays.info(flat[i * 4:(i + 1) * 4])) for i in range(999)]
                         + [("w999", _arrays.info(flat[3:5]))])


@pytest.mark.parametrize("kwargs, word", [
    ({"learning_rate": 1e300}, r"learning_rate=1e\+300"),
    ({"lr_scheduler": lambda n: 1e300}, r"lr_scheduler\(1\)"),
])
def test_a_derived_scalar_that_overflows_names_the_learning_rate(kwargs, word):
    # AdamW's rule reads eta (the bias-corrected learning rate), a name the user never wrote
    opt = mxopt.AdamW(**kwargs)
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    before = frozen(opt, w, state)
    with pytest.raises(ValueError, match=word):
        opt.update(0, w, np.ones(3, np.float32), state)
    same(before, frozen(opt, w, state))


def test_sym_attribute_that_is_not_a_number_is_named():
    class Sym:
        def attr_dict(self):
            return {"fc_weight": {"__lr_mult__": "abc"}}

        def list_arguments(self):
            return ["data", "fc_weight"]

    with pytest.raises(ValueError, match="__lr_mult__ of 'fc_weight' must be a number"):
        mxopt.SGD(sym=Sym())


def test_a_shallow_copy_of_an_optimizer_has_its_own_counters_and_multipliers():
    opt = mxopt.Adam(learning_rate=0.1)
    first = mxopt.Trainer({"a": np.ones(3, np.float32), "b": np.ones(2, np.float32)}, opt, lr_mult={"a": 0.0})
    twin = copy.copy(opt)
    second = mxopt.Trainer({"x": np.ones(3, np.float32)}, twin, lr_mult={"x": 5.0})
    assert opt.lr_mult == {0: 0.0, 1: 1.0} and twin.lr_mult[0] == 5.0  # "a" stays frozen
    second.grads["x"][...] = 1
    second.step()
    assert opt._index_update_count == {} and opt.num_update == 0
    first.grads["a"][...] = 1
    first.step()
    np.testing.assert_array_equal(first.params["a"], 1.0)
    assert twin.param_dict is opt.param_dict  # still the caller's, as Gluon expects


@pytest.mark.parametrize("kind", ["matrix", "masked"])
def test_trainer_refuses_matrix_and_masked_parameters(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix's own
        param = np.matrix(np.ones((2, 2), np.float32)) if kind == "matrix" else \
            np.ma.masked_array(np.ones(3, np.float32), mask=[0, 1, 0])
    with pytest.raises(TypeError, match=r"params\['p'\] must be a plain NumPy array"):
        mxopt.Trainer({"p": param}, "sgd")


def test_trainer_still_takes_non_contiguous_parameters():
    w = np.arange(6, dtype=np.float32).reshape(2, 3).T  # copied into the buffer
    tr = mxopt.Trainer({"p": w}, "sgd", {"learning_rate": 1.0})
    np.testing.assert_array_equal(tr.params["p"], w)


def trained_updater(**kwargs):
    up = mxopt.get_updater(mxopt.Adam(learning_rate=0.01, **kwargs))
    w = np.ones((3, 4), np.float16 if kwargs.get("multi_precision") else np.float32)
    for _ in range(2):
        up(0, np.full(w.shape, 0.5, w.dtype), w)
    return up, w


def parts(data):
    (n,) = struct.unpack_from("<Q", data)
    return json.loads(json.loads(data[8:8 + n])["__metadata__"]["mxopt"]), safetensors.numpy.load(data)


def forge(doc, tensors):
    """Re-digest an edited checkpoint, as anyone can."""
    doc = {k: v for k, v in doc.items() if k != "sha256"}
    order = [f"{e['key']}/{n}" for e in doc["states"] if e["state"] for n in e["state"]["names"]]
    doc["sha256"] = checkpoint._digest(doc, (tensors[n].tobytes() for n in order))
    return safetensors.numpy.save(tensors, metadata={"mxopt": checkpoint._canonical(doc)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_state_values_are_refused_at_load_and_at_save(bad):
    up, w = trained_updater()
    doc, tensors = parts(up.get_states())
    tensors["0/var"] = tensors["0/var"].copy()
    tensors["0/var"][1, 2] = bad
    target, _ = trained_updater()
    before = frozen(target.optimizer, *target.states.values())
    with pytest.raises(ValueError, match="'0/var' holds NaN or infinity"):
        target.set_states(forge(doc, tensors))
    same(before, frozen(target.optimizer, *target.states.values()))
    up.states[0]["mean"][0, 0] = bad
    with pytest.raises(ValueError, match=r"state\['mean'\] of 0 holds NaN or infinity"):
        up.get_states()


def test_master_copies_need_multi_precision_at_load():
    mp, _ = trained_updater(multi_precision=True)
    plain, w = trained_updater()
    before = frozen(plain.optimizer, w, *plain.states.values())
    with pytest.raises(ValueError, match="weight32"):
        plain.set_states(mp.get_states())
    same(before, frozen(plain.optimizer, w, *plain.states.values()))
    # with its hyperparameters the checkpoint brings multi_precision=True along
    plain.set_states(mp.get_states(dump_optimizer=True))
    assert plain.optimizer.multi_precision and "weight32" in plain.states[0].names


def test_a_state_with_or_without_a_master_copy_says_so():
    opt = mxopt.Adam(multi_precision=True)
    w16, w32 = np.ones(3, np.float16), np.ones(3, np.float32)
    s16, s32 = opt.create_state(0, w16), opt.create_state(0, w32)
    with pytest.raises(ValueError, match="holds a float32 master copy.*this weight is float32"):
        opt.update(0, w32, np.ones(3, np.float32), s16)
    with pytest.raises(ValueError, match="no float32 master copy.*this weight is float16"):
        opt.update(0, w16, np.ones(3, np.float16), s32)


def test_threads_sharing_an_updater_create_one_state_per_index():
    # identical gradients: any order of the updates gives the same result, unless a state is lost
    def run(up, weight, n):
        for _ in range(n):
            up(0, np.ones(64, np.float32), weight)

    up, w = mxopt.get_updater(mxopt.SGD(learning_rate=0.01, momentum=0.9)), np.zeros(64, np.float32)
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        run(up, w, 25)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref_up, ref = mxopt.get_updater(mxopt.SGD(learning_rate=0.01, momentum=0.9)), np.zeros(64, np.float32)
    run(ref_up, ref, 200)
    assert up.optimizer._index_update_count == {0: 200}
    np.testing.assert_array_equal(w, ref)
    np.testing.assert_array_equal(up.states[0]["mom"], ref_up.states[0]["mom"])


def test_concurrent_trainer_steps_keep_their_own_batch_size():
    tr = mxopt.Trainer({"w": np.zeros(32, np.float32)}, "sgd", {"learning_rate": 1.0})
    tr.grads["w"][...] = 1.0
    barrier = threading.Barrier(4)

    def worker(batch):
        barrier.wait()
        for _ in range(20):
            tr.step(batch_size=batch)

    threads = [threading.Thread(target=worker, args=(b,)) for b in (1, 2, 4, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 20 steps each of 1, 1/2, 1/4, 1/8: all exact in float32
    np.testing.assert_array_equal(tr.params["w"], -20 * (1 + 0.5 + 0.25 + 0.125))


def test_trainer_refuses_an_updaters_multipliers():
    opt = mxopt.SGD(learning_rate=0.1)
    opt.set_lr_mult({0: 0.0})
    data = mxopt.get_updater(opt).get_states(dump_optimizer=True)  # no state yet: only hyperparameters
    tr = mxopt.Trainer({"a": np.ones(3, np.float32)}, "sgd", {"learning_rate": 0.1})
    before = frozen(tr.optimizer, tr.data)
    with pytest.raises(ValueError, match="multipliers by index"):
        tr.load_states(data)
    same(before, frozen(tr.optimizer, tr.data))
    tr.grads["a"][...] = 1
    tr.step()
    np.testing.assert_allclose(tr.params["a"], 0.9)  # "a" still trains


@pytest.mark.parametrize("arg", ["optimizer_params", "lr_mult", "wd_mult"])
def test_trainer_tables_must_be_dicts(arg):
    with pytest.raises(TypeError, match=f"{arg} must be a dict"):
        mxopt.Trainer({"a": np.ones(2, np.float32)}, "sgd", **{arg: [("a", 1.0)]})


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=[f"{n}{'-' + str(k) if k else ''}" for n, k in CONFIGS])
def test_a_schedule_that_decays_below_float32_keeps_training(name, kwargs):
    # 0.01·0.5^t is below float32's smallest subnormal from t = 143 on: the step
    # sizes round to 0 (no step, as in MXNet) instead of stopping the training
    opt = make(name, lr_scheduler=mxopt.lr_scheduler.Exp(base_lr=0.01, gamma=0.5), **kwargs)
    w = np.ones((1, 5), np.float32)
    state = opt.create_state(0, w)
    for _ in range(150):
        opt.update(0, w, np.full((1, 5), 0.5, np.float32), state)
    if name != "adadelta":  # AdaDelta has no learning rate: it keeps stepping
        settled = w.copy()
        opt.update(0, w, np.full((1, 5), 0.5, np.float32), state)
        np.testing.assert_array_equal(w, settled)
    assert opt.num_update == 150 + (name != "adadelta") and np.isfinite(w).all()
    # what the user gives is still checked: a constant rate or a gradient scale that float32 cannot hold
    for bad in ({"learning_rate": 1e-50}, {"rescale_grad": 1e-300, "lr_scheduler": mxopt.lr_scheduler.Exp()}):
        opt = make(name, **kwargs, **bad)
        w = np.ones((1, 5), np.float32)
        state = opt.create_state(0, w)
        if name == "adadelta" and "learning_rate" in bad:
            continue
        with pytest.raises(ValueError, match="rounds to 0 in float32"):
            opt.update(0, w, np.full((1, 5), 0.5, np.float32), state)
        np.testing.assert_array_equal(w, 1.0)


class Param:
    """A stand-in for a Gluon Parameter."""

    def __init__(self, lr_mult=1.0, wd_mult=1.0):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


@pytest.mark.parametrize("attr, value, exc", [
    ("lr_scheduler", 5, TypeError), ("multi_precision", "yes", TypeError), ("num_update", -5, ValueError),
    ("num_update", "7", TypeError), ("num_update", 10 ** 400, ValueError), ("lr_mult", [1.0], TypeError),
    ("lr_mult", {0: float("nan")}, ValueError), ("wd_mult", None, TypeError), ("wd_mult", {0.5: 1.0}, TypeError),
    ("idx2name", {0: 5}, TypeError), ("param_dict", {0: 5}, TypeError),
    ("param_dict", {0: Param(lr_mult=-1.0)}, ValueError)])
def test_public_attributes_that_mxnet_code_assigns_are_checked(attr, value, exc):
    # Gluon's Trainer assigns optimizer.param_dict; scripts assign num_update or lr_scheduler
    opt = mxopt.SGD(momentum=0.9)
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.ones(3, np.float32), state)
    before = frozen(opt, w, state)
    old = getattr(opt, attr)
    with pytest.raises(exc, match=attr):
        setattr(opt, attr, value)
    assert getattr(opt, attr) is old
    opt.update(0, w, np.ones(3, np.float32), state)  # still usable
    assert opt.num_update == before[0] + 1


def test_assigned_param_dict_is_used_live_as_in_gluon():
    opt = mxopt.SGD(learning_rate=0.5)
    params = {0: Param(lr_mult=0.0)}
    opt.param_dict = params
    w = np.ones(2, np.float32)
    opt.update(0, w, np.ones(2, np.float32), None)
    np.testing.assert_array_equal(w, 1.0)
    params[0].lr_mult = 1.0
    opt.update(0, w, np.ones(2, np.float32), None)
    np.testing.assert_array_equal(w, 0.5)
    assert opt.param_dict is params and "param_dict" in vars(opt)
