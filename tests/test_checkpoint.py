"""Updater states round-trip exactly through bytes (a safetensors file, never
pickle), and a corrupted, forged or mismatched checkpoint is a ValueError
that leaves the updater as it was."""
import copy
import json
import pickle
import struct
import tracemalloc

import numpy as np
import pytest
import safetensors.numpy

import mxopt
from mxopt import checkpoint, lr_scheduler


def trained_updater(name="adam", steps=3, **kwargs):
    opt = mxopt.create(name, learning_rate=0.01, **kwargs)
    up = mxopt.get_updater(opt)
    rng = np.random.default_rng(0)
    weights = {0: rng.standard_normal((3, 4)).astype(np.float32), "fc_bias": rng.standard_normal(5)}
    for _ in range(steps):
        for k, w in weights.items():
            up(k, rng.standard_normal(w.shape).astype(w.dtype), w)
    return up, weights


def snapshot(up):
    """Everything set_states may change, to compare before and after a refused load."""
    opt = up.optimizer
    return (dict(opt._index_update_count), opt.num_update, opt.learning_rate, opt.lr_scheduler,
            dict(opt.lr_mult), dict(opt.wd_mult), opt.wd, opt.multi_precision,
            {k: None if s is None else (s.names, [np.array(a) for a in s], dict(s.scalars))
             for k, s in up.states.items()}, dict(up.states_synced))


def same(a, b):
    *rest_a, states_a, synced_a = a
    *rest_b, states_b, synced_b = b
    assert rest_a == rest_b and synced_a == synced_b and states_a.keys() == states_b.keys()
    for k in states_a:
        if states_a[k] is None:
            assert states_b[k] is None
            continue
        (na, aa, sa), (nb, ab, sb) = states_a[k], states_b[k]
        assert na == nb and sa == sb
        for x, y in zip(aa, ab):
            np.testing.assert_array_equal(x, y)
    return True


def parts(data):
    """The mxopt JSON document and the tensors of a checkpoint."""
    (n,) = struct.unpack_from("<Q", data)
    doc = json.loads(json.loads(data[8:8 + n])["__metadata__"]["mxopt"])
    return doc, safetensors.numpy.load(data)


def forge(doc, tensors, raw_text=None):
    """A checkpoint of ``doc`` and ``tensors`` with a correct digest: integrity holds, sense may not."""
    doc = {k: v for k, v in doc.items() if k != "sha256"}
    order = []
    entries = doc.get("states")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("state"), dict) \
                and isinstance(entry["state"].get("names"), list):
            order += [f"{entry.get('key')}/{n}" for n in entry["state"]["names"] if isinstance(n, str)]
    doc["sha256"] = checkpoint._digest(doc, (tensors[n].tobytes() for n in order if n in tensors))
    text = checkpoint._canonical(doc) if raw_text is None else raw_text
    return safetensors.numpy.save(tensors, metadata={"mxopt": text})


def raw_safetensors(header, payload=b""):
    body = json.dumps(header).encode() if isinstance(header, dict) else header
    return struct.pack("<Q", len(body)) + body + payload


def test_round_trip_is_exact_and_training_continues_identically():
    up, weights = trained_updater(steps=3)
    data = up.get_states()
    assert isinstance(data, bytes)
    # A plain safetensors file: any safetensors reader sees the named state arrays.
    tensors = safetensors.numpy.load(data)
    assert sorted(tensors) == ["0/mean", "0/var", "fc_bias/mean", "fc_bias/var"]
    np.testing.assert_array_equal(tensors["fc_bias/var"], up.states["fc_bias"].var)
    fresh = mxopt.get_updater(mxopt.create("adam", learning_rate=0.01))
    fresh.set_states(data)
    assert fresh.states_synced == {0: False, "fc_bias": False}
    assert fresh.optimizer._index_update_count == up.optimizer._index_update_count
    assert fresh.optimizer.num_update == up.optimizer.num_update
    for k, st in up.states.items():
        assert fresh.states[k].names == st.names and fresh.states[k].index == k
        for a, b in zip(st, fresh.states[k]):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    # The next step from the restored states equals the next step from the originals.
    w_a = {k: w.copy() for k, w in weights.items()}
    w_b = {k: w.copy() for k, w in weights.items()}
    g = {k: np.full(w.shape, 0.3, w.dtype) for k, w in weights.items()}
    for k in weights:
        up(k, g[k], w_a[k])
        fresh(k, g[k], w_b[k])
        np.testing.assert_array_equal(w_a[k], w_b[k])
    assert fresh.states_synced == {0: True, "fc_bias": True}
    assert fresh.get_states() == up.get_states()  # deterministic bytes


def test_multi_precision_state_round_trips():
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True)
    up = mxopt.get_updater(opt)
    w = np.linspace(-1, 1, 6).astype(np.float16)
    up(0, np.ones(6, np.float16), w)
    fresh = mxopt.get_updater(mxopt.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True))
    fresh.set_states(up.get_states())
    assert fresh.states[0].names == ("mom", "weight32")
    np.testing.assert_array_equal(fresh.states[0].weight32, up.states[0].weight32)


def test_zero_dimensional_weight_keeps_its_shape():
    up = mxopt.get_updater(mxopt.Adam(learning_rate=0.1))
    w = np.array(2.0, np.float32)
    up(0, np.array(1.0, np.float32), w)
    fresh = mxopt.get_updater(mxopt.Adam(learning_rate=0.1))
    fresh.set_states(up.get_states())
    assert fresh.states[0].mean.shape == ()
    w2 = w.copy()
    up(0, np.array(0.5, np.float32), w)
    fresh(0, np.array(0.5, np.float32), w2)  # usable again (was shape (1,): never again)
    assert w2 == w


def test_none_states_round_trip():
    """SGD without momentum keeps no state (None, as in MXNet) but counts its updates."""
    up = mxopt.get_updater(mxopt.SGD(learning_rate=0.1))
    w = np.ones(3, np.float32)
    up(0, np.ones(3, np.float32), w)
    up.states[1] = None  # an index whose state is None, whatever create_state returns today
    up.optimizer._index_update_count[1] = 4
    fresh = mxopt.get_updater(mxopt.SGD(learning_rate=0.1))
    fresh.set_states(up.get_states())
    assert fresh.states[1] is None and fresh.optimizer._index_update_count == {0: 1, 1: 4}
    fresh(1, np.ones(3, np.float32), w)
    np.testing.assert_allclose(w, 0.8, rtol=1e-6)
    assert fresh.optimizer._index_update_count[1] == 5


class Carrying(mxopt.SGD):
    """An optimizer with a per-index scalar (as Nadam's schedule product), for the checkpoint."""

    carried = {"mu_product": 1.0}


def test_per_index_scalars_round_trip():
    opt = Carrying(learning_rate=0.1, momentum=0.9)
    up = mxopt.get_updater(opt)
    st = mxopt.State("Carrying", 0, ("mom",), (np.zeros(3, np.float32),), {"mu_product": 0.1 + 0.2})
    up.states[0] = st
    opt._index_update_count[0] = 2
    fresh = mxopt.get_updater(Carrying(learning_rate=0.1, momentum=0.9))
    fresh.set_states(up.get_states())
    assert fresh.states[0].scalars == {"mu_product": 0.1 + 0.2}  # exact: JSON keeps every float64 bit
    doc, tensors = parts(up.get_states())
    doc["states"][0]["state"]["scalars"] = {"other": 1.0}
    with pytest.raises(ValueError, match="carries"):
        fresh.set_states(forge(doc, tensors))
    doc["states"][0]["state"]["scalars"] = {}
    with pytest.raises(ValueError, match="carries"):
        fresh.set_states(forge(doc, tensors))
    assert fresh.states[0].scalars == {"mu_product": 0.1 + 0.2}


def test_every_flipped_byte_is_rejected():
    up, _ = trained_updater(steps=1)
    data = up.get_states()
    fresh = mxopt.get_updater(mxopt.create("adam"))
    before = snapshot(fresh)
    for position in range(len(data)):
        for mask in (0x01, 0x80) if position % 7 else (0x01, 0x02, 0x10, 0x20, 0x40, 0x80):
            bad = bytearray(data)
            bad[position] ^= mask
            with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
                fresh.set_states(bytes(bad))
    assert same(snapshot(fresh), before)


def test_truncated_foreign_and_trailing_data_is_rejected():
    up, _ = trained_updater()
    data = up.get_states()
    fresh = mxopt.get_updater(mxopt.create("adam"))
    before = snapshot(fresh)
    for bad in (data[:-1], data[:10], data[:7], b"", pickle.dumps({"states": 1}), b"\x80\x04junk",
                data + b"\x00", data + data,
                safetensors.numpy.save({"x": np.zeros(2, np.float32)}),
                safetensors.numpy.save({"x": np.zeros(2, np.float32)}, metadata={"mxopt": "{}"})):
        with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
            fresh.set_states(bad)
    with pytest.raises(TypeError, match="bytes"):
        fresh.set_states("a string")
    assert same(snapshot(fresh), before)


def test_checkpoint_of_another_optimizer_is_rejected():
    up, _ = trained_updater("sgd", momentum=0.9)
    other = mxopt.get_updater(mxopt.create("adam"))
    with pytest.raises(ValueError, match="SGD, not Adam"):
        other.set_states(up.get_states())
    nag = mxopt.get_updater(mxopt.create("nag", momentum=0.9))
    with pytest.raises(ValueError, match="SGD, not NAG"):
        nag.set_states(up.get_states())


def test_restored_state_of_wrong_shape_is_rejected_on_use():
    up, weights = trained_updater()
    fresh = mxopt.get_updater(mxopt.create("adam", learning_rate=0.01))
    fresh.set_states(up.get_states())
    w = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        fresh(0, np.ones_like(w), w)
    np.testing.assert_array_equal(w, 0)
    assert fresh.optimizer._index_update_count[0] == 3


def edit(path, value):
    def apply(doc, tensors):
        target = doc
        for step in path[:-1]:
            target = target[step]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return apply


def duplicate_entry(doc, tensors):
    doc["states"].append(copy.deepcopy(doc["states"][0]))


def extra_tensor(doc, tensors):
    tensors["0/extra"] = np.zeros((3, 4), np.float32)


def tensor_as_float64(doc, tensors):
    tensors["0/mean"] = tensors["0/mean"].astype(np.float64)


def tensor_reshaped(doc, tensors):
    tensors["0/mean"] = tensors["0/mean"].reshape(4, 3)


def drop_tensor(doc, tensors):
    del tensors["0/var"]


def names_of_sgd(doc, tensors):
    doc["states"][0]["state"]["names"] = ["mom"]
    tensors["0/mom"] = tensors.pop("0/mean")
    del tensors["0/var"]


def swap_names(doc, tensors):
    doc["states"][0]["state"]["names"] = ["var", "mean"]


# Content that a correct digest does not make sensible: each a ValueError naming what is wrong.
FORGERIES = {
    "count -1": (edit(["index_update_count", 0, 1], -1), "index_update_count"),
    "count missing": (edit(["index_update_count"], [["fc_bias", 3]]), "no update count"),
    "count 0 with a state": (edit(["index_update_count", 0, 1], 0), "no update count"),
    "count 2**63": (edit(["index_update_count", 0, 1], 2 ** 63), "index_update_count"),
    "count a float": (edit(["index_update_count", 0, 1], 3.0), "index_update_count"),
    "counts repeated": (edit(["index_update_count"], [[0, 3], [0, 3], ["fc_bias", 3]]), "repeats"),
    "count key a list": (edit(["index_update_count", 0, 0], [0]), "int index or a str"),
    "num_update '7'": (edit(["num_update"], "7"), "num_update"),
    "num_update 1.9": (edit(["num_update"], 1.9), "num_update"),
    "num_update true": (edit(["num_update"], True), "num_update"),
    "num_update -1": (edit(["num_update"], -1), "num_update"),
    "num_update missing": (edit(["num_update"], KeyError), "fields"),
    "unknown field": (edit(["pickle"], "cos\nsystem"), "fields"),
    "other optimizer": (edit(["optimizer"], "SGD"), "for SGD, not Adam"),
    "other version": (edit(["version"], 99), "version"),
    "duplicate index": (duplicate_entry, "two states for the key 0"),
    "key true": (edit(["states", 0, "key"], True), "tensors do not match"),
    "names unknown": (names_of_sgd, "holds"),
    "names listed unbacked": (edit(["states", 0, "state", "names"], ["mom"]), "tensors do not match"),
    "names swapped": (swap_names, "holds"),
    "dtype float16": (edit(["states", 0, "state", "dtype"], "float16"), "dtype"),
    "dtype object": (edit(["states", 0, "state", "dtype"], "object"), "dtype"),
    "shape floats": (edit(["states", 0, "state", "shape"], [3.7, 4.2]), "shape"),
    "shape negative": (edit(["states", 0, "state", "shape"], [-3, -4]), "shape"),
    "shape other": (edit(["states", 0, "state", "shape"], [4, 3]), "the header says"),
    "tensor other dtype": (tensor_as_float64, "the header says"),
    "tensor other shape": (tensor_reshaped, "the header says"),
    "extra tensor": (extra_tensor, "tensors do not match"),
    "missing tensor": (drop_tensor, "tensors do not match"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forged_content_with_a_valid_digest_is_rejected(case):
    change, message = FORGERIES[case]
    up, _ = trained_updater()
    doc, tensors = parts(up.get_states())
    change(doc, tensors)
    fresh = mxopt.get_updater(mxopt.create("adam"))
    before = snapshot(fresh)
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint") as err:
        fresh.set_states(forge(doc, tensors))
    assert message in str(err.value)
    assert same(snapshot(fresh), before)


@pytest.mark.parametrize("text", [
    '{"num_update": Infinity}', '{"num_update": NaN}', '{"a": -Infinity}',
    '{"a": 1, "a": 2}', "[" * 100_000 + "]" * 100_000, '{"a": "\\ud800"', "not json"])
def test_malformed_metadata_is_rejected(text):
    up, _ = trained_updater()
    _, tensors = parts(up.get_states())
    fresh = mxopt.get_updater(mxopt.create("adam"))
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
        fresh.set_states(safetensors.numpy.save(tensors, metadata={"mxopt": text}))
    assert fresh.states == {}


def test_non_canonical_metadata_is_rejected():
    """Only get_states' own spelling is read: a re-spaced or re-ordered document is an edit."""
    up, _ = trained_updater()
    doc, tensors = parts(up.get_states())
    spaced = json.dumps(doc, sort_keys=True)
    with pytest.raises(ValueError, match="canonical"):
        mxopt.get_updater(mxopt.Adam()).set_states(forge(doc, tensors, raw_text=spaced))


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, payload", [
    ({"a": F32, "b": F32}, b"\0" * 8),                                   # two tensors on the same bytes
    ({"a": {**F32, "data_offsets": [0, 16]}}, b"\0" * 8),                # beyond the end
    ({"a": {**F32, "data_offsets": [4, 12]}}, b"\0" * 12),               # a gap before it
    ({"a": F32}, b"\0" * 9),                                              # trailing byte
    ({"a": {**F32, "shape": [3.7, 4.2]}}, b"\0" * 8),                    # non-integer shape
    ({"a": {**F32, "dtype": "O"}}, b"\0" * 8),                           # object dtype: never unpickles
    (b'{"a": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 8]}}', b"\0" * 8),
    (b"[" * 100_000 + b"]" * 100_000, b""),                              # nested 100,000 deep
    (b'{"__metadata__": {"mxopt": 1}}', b""),                            # metadata must be text
    (b"\xff" * 16, b""),                                                  # not UTF-8
])
def test_malformed_safetensors_is_rejected(header, payload):
    fresh = mxopt.get_updater(mxopt.create("adam"))
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
        fresh.set_states(raw_safetensors(header, payload))
    assert fresh.states == {}


def test_aliased_ranges_never_allocate_per_state():
    """300 states reading the same 1 MB (a 1.1 MB file that once took 600 MB) is refused at once."""
    n = 2 ** 18
    header = {f"{i}/{name}": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}
              for i in range(150) for name in ("mean", "var")}
    data = raw_safetensors(header, b"\0" * (4 * n))
    assert len(data) < 1_200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
            mxopt.get_updater(mxopt.create("adam")).set_states(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20


def test_dump_optimizer_restores_hyperparameters_without_pickle():
    sched = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1)
    opt = mxopt.SGD(momentum=0.8, wd=1e-3, clip_gradient=2.0, rescale_grad=0.5, lr_scheduler=sched,
                    begin_num_update=1)
    opt.set_lr_mult({0: 0.5, "fc_bias": 2.0})
    opt.set_wd_mult({0: 0.0})
    up = mxopt.get_updater(opt)
    w = np.ones(4, np.float32)
    for _ in range(3):
        up(0, np.full(4, 0.25, np.float32), w)
    data = up.get_states(dump_optimizer=True)
    assert b"pickle" not in data and b"\x80\x04" not in data
    fresh = mxopt.get_updater(mxopt.SGD(momentum=0.8))
    fresh.set_states(data)
    got = fresh.optimizer
    assert (got.momentum, got.wd, got.clip_gradient, got.rescale_grad, got.begin_num_update) == (0.8, 1e-3, 2.0, 0.5, 1)
    assert got.lr_mult == opt.lr_mult and got.wd_mult == opt.wd_mult
    assert isinstance(got.lr_scheduler, lr_scheduler.FactorScheduler) and got.lr_scheduler is not sched
    assert vars(got.lr_scheduler) == vars(sched) and got.learning_rate == opt.learning_rate
    w2 = w.copy()
    up(0, np.full(4, 0.25, np.float32), w)
    fresh(0, np.full(4, 0.25, np.float32), w2)
    np.testing.assert_array_equal(w, w2)
    # Without the flag, hyperparameters stay as they are.
    plain = mxopt.get_updater(mxopt.SGD(momentum=0.8))
    plain.set_states(up.get_states())
    assert plain.optimizer.lr_scheduler is None and plain.optimizer.wd == 0.0


def test_dump_optimizer_momentum_decides_the_state_names():
    """The saved momentum (not the receiving optimizer's) decides which state arrays fit."""
    up, _ = trained_updater("sgd", momentum=0.9)
    fresh = mxopt.get_updater(mxopt.SGD(momentum=0.0))
    with pytest.raises(ValueError, match="holds"):
        fresh.set_states(up.get_states())
    fresh.set_states(up.get_states(dump_optimizer=True))
    assert fresh.optimizer.momentum == 0.9 and fresh.states[0].names == ("mom",)


@pytest.mark.parametrize("sched", [lr_scheduler.MultiFactorScheduler(step=[2, 5], factor=0.5, base_lr=0.1),
                                   lr_scheduler.PolyScheduler(max_update=10, base_lr=0.1, pwr=3),
                                   lr_scheduler.CosineScheduler(max_update=10, base_lr=0.1, warmup_steps=2),
                                   lr_scheduler.Exp(base_lr=0.1, gamma=0.5), lr_scheduler.Inv(base_lr=0.1)])
def test_every_mxopt_schedule_is_saved_by_its_parameters(sched):
    up = mxopt.get_updater(mxopt.Adam(lr_scheduler=sched))
    fresh = mxopt.get_updater(mxopt.Adam())
    fresh.set_states(up.get_states(dump_optimizer=True))
    assert type(fresh.optimizer.lr_scheduler) is type(sched)
    assert [fresh.optimizer.lr_scheduler(n) for n in range(12)] == [sched(n) for n in range(12)]


def test_dump_optimizer_refuses_what_needs_pickle():
    up = mxopt.get_updater(mxopt.SGD(lr_scheduler=lambda n: 0.1))
    with pytest.raises(ValueError, match="lr_scheduler"):
        up.get_states(dump_optimizer=True)
    up.get_states()  # the states alone are fine
    with pytest.raises(TypeError, match="dump_optimizer"):
        up.get_states(dump_optimizer="yes")


@pytest.mark.parametrize("path, value, message", [
    (["values", "momentum"], 1.5, "momentum"),
    (["values", "wd"], -1.0, "wd"),
    (["values", "lr"], "0.1", "lr"),
    (["values", "momentum"], KeyError, "values"),
    (["values", "eval"], 1.0, "values"),
    (["flags", "multi_precision"], 1, "flags"),
    (["flags", "__class__"], True, "flags"),
    (["flags", "multi_precision"], KeyError, "flags"),
    (["lr_mult"], [[0, -1.0]], "lr_mult"),
    (["lr_mult"], [[0, 1.0], [0, 2.0]], "repeats"),
    (["idx2name"], [[0, 7]], "idx2name"),
    (["lr_scheduler"], {"class": "os.system", "params": {}}, "unknown lr_scheduler"),
    (["lr_scheduler"], {"class": "LRScheduler", "params": {}}, "unknown lr_scheduler"),
    (["lr_scheduler"], {"class": "FactorScheduler", "params": {"step": 0}}, "rejects"),
    (["lr_scheduler"], {"class": "FactorScheduler", "params": {"step": 2, "evil": 1}}, "rejects"),
])
def test_forged_hyperparameters_are_rejected(path, value, message):
    up, _ = trained_updater("sgd", momentum=0.9)
    doc, tensors = parts(up.get_states(dump_optimizer=True))
    edit(["hyperparameters", *path], value)(doc, tensors)
    fresh = mxopt.get_updater(mxopt.SGD(momentum=0.9, learning_rate=0.5))
    before = snapshot(fresh)
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint") as err:
        fresh.set_states(forge(doc, tensors))
    assert message in str(err.value)
    assert same(snapshot(fresh), before)


def test_sync_state_context_and_states_synced():
    up, weights = trained_updater()
    st = up.states[0]
    assert up.sync_state_context(st, "cpu(0)") is st
    assert up.states_synced == {0: True, "fc_bias": True}


@pytest.mark.parametrize("name", sorted(mxopt.optimizer._REGISTRY))
def test_dump_optimizer_works_for_every_registered_optimizer(name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # GroupAdaGrad has no weight decay and updates 2-D weights only (as in MXNet).
        wd, shape = (0.0, (2, 3)) if name == "groupadagrad" else (0.125, (6,))
        opt, fresh_opt = mxopt.create(name, wd=wd), mxopt.create(name)
    up = mxopt.get_updater(opt)
    w = np.linspace(-1, 1, 6).astype(np.float32).reshape(shape)
    g = np.linspace(0.5, -0.25, 6).astype(np.float32).reshape(shape)
    up(0, g, w)
    fresh = mxopt.get_updater(fresh_opt)
    fresh.set_states(up.get_states(dump_optimizer=True))
    assert fresh.optimizer.wd == wd
    w2 = w.copy()
    up(0, g, w)
    fresh(0, g, w2)
    np.testing.assert_array_equal(w, w2)


@pytest.mark.parametrize("name, flag", [("rmsprop", "centered"), ("adamw", "correct_bias"), ("sgd", "multi_precision")])
def test_dump_optimizer_restores_flags_that_change_the_update(name, flag):
    default = getattr(mxopt.create(name), flag)
    up = mxopt.get_updater(mxopt.create(name, **{flag: not default}))
    w = np.ones(4, np.float32)
    up(0, np.ones(4, np.float32), w)
    fresh = mxopt.get_updater(mxopt.create(name))
    fresh.set_states(up.get_states(dump_optimizer=True))
    assert getattr(fresh.optimizer, flag) is (not default)


def leaves(doc, path=()):
    """Every path into a JSON document (objects and lists), the document's own first."""
    yield path
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from leaves(v, path + (k,))


def test_any_field_replaced_by_any_json_value_is_a_value_error_or_fine():
    """Forged documents (valid digest) with every field swapped for values of every JSON type:
    set_states raises ValueError or loads something consistent, never another exception."""
    up, _ = trained_updater("sgd", momentum=0.9, steps=1)
    data = up.get_states(dump_optimizer=True)
    doc, tensors = parts(data)
    replacements = [None, True, -1, 0, 2 ** 70, 1.5, "x", "0/mom", [], [0, 1], {}, {"names": []}]
    tried = 0
    for path in leaves(doc):
        if not path or path == ("sha256",):
            continue
        for value in replacements:
            forged = copy.deepcopy(doc)
            edit(list(path), value)(forged, tensors)
            fresh = mxopt.get_updater(mxopt.SGD(momentum=0.9))
            try:
                fresh.set_states(forge(forged, tensors))
            except ValueError as e:
                assert str(e).startswith("not a valid mxopt checkpoint"), e
                assert fresh.states == {} and fresh.optimizer.num_update == 0
            tried += 1
    assert tried > 300
