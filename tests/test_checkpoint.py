"""Updater states round-trip exactly through bytes, without pickle, and a
corrupted or mismatched checkpoint is rejected."""
import pickle

import numpy as np
import pytest

import mxopt
from mxopt import checkpoint


def trained_updater(name="adam", steps=3, **kwargs):
    opt = mxopt.create(name, learning_rate=0.01, **kwargs)
    up = mxopt.get_updater(opt)
    rng = np.random.default_rng(0)
    weights = {0: rng.standard_normal((3, 4)).astype(np.float32), "fc_bias": rng.standard_normal(5)}
    for _ in range(steps):
        for k, w in weights.items():
            up(k, rng.standard_normal(w.shape).astype(w.dtype), w)
    return up, weights


def test_round_trip_is_exact_and_training_continues_identically():
    up, weights = trained_updater(steps=3)
    data = up.get_states()
    assert isinstance(data, bytes) and data.startswith(checkpoint.MAGIC)
    fresh = mxopt.get_updater(mxopt.create("adam", learning_rate=0.01))
    fresh.set_states(data)
    assert fresh.optimizer._index_update_count == up.optimizer._index_update_count
    assert fresh.optimizer.num_update == up.optimizer.num_update
    for k, st in up.states.items():
        assert fresh.states[k].names == st.names
        for a, b in zip(st, fresh.states[k]):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # The next step from the restored states equals the next step from the originals.
    w_a = {k: w.copy() for k, w in weights.items()}
    w_b = {k: w.copy() for k, w in weights.items()}
    g = {k: np.full(w.shape, 0.3, w.dtype) for k, w in weights.items()}
    for k in weights:
        up(k, g[k], w_a[k])
        fresh(k, g[k], w_b[k])
        np.testing.assert_array_equal(w_a[k], w_b[k])
    assert fresh.get_states() == up.get_states()


def test_multi_precision_state_round_trips():
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True)
    up = mxopt.get_updater(opt)
    w = np.linspace(-1, 1, 6).astype(np.float16)
    up(0, np.ones(6, np.float16), w)
    fresh = mxopt.get_updater(mxopt.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True))
    fresh.set_states(up.get_states())
    assert fresh.states[0].names == ("mom", "weight32")
    np.testing.assert_array_equal(fresh.states[0].weight32, up.states[0].weight32)


@pytest.mark.parametrize("position", [0, 20, 60, -40, -1])
def test_any_flipped_byte_is_rejected(position):
    up, _ = trained_updater()
    data = bytearray(up.get_states())
    data[position] ^= 0x01
    fresh = mxopt.get_updater(mxopt.create("adam"))
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
        fresh.set_states(bytes(data))
    assert fresh.states == {} and fresh.optimizer.num_update == 0


def test_truncated_and_foreign_data_is_rejected():
    up, _ = trained_updater()
    data = up.get_states()
    fresh = mxopt.get_updater(mxopt.create("adam"))
    for bad in (data[:-1], data[:10], b"", pickle.dumps({"states": 1}), b"\x80\x04junk"):
        with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
            fresh.set_states(bad)
    with pytest.raises(TypeError, match="bytes"):
        fresh.set_states("a string")


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


def test_header_never_unpickles():
    """A well-formed file whose header smuggles a pickle is just a malformed header."""
    import hashlib
    import json
    import struct

    header = json.dumps({"optimizer": "Adam", "num_update": 0, "index_update_count": [],
                         "states": [{"index": 0, "names": ["mean", "var"],
                                     "arrays": [{"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}] * 2}]}).encode()
    body = checkpoint.MAGIC + struct.pack("<Q", len(header)) + header + pickle.dumps(object())[:16]
    with pytest.raises(ValueError, match="malformed"):
        mxopt.get_updater(mxopt.Adam()).set_states(body + hashlib.sha256(body).digest())
