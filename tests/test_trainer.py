"""The Trainer: parameters are views of one flat buffer, one launch per step,
and the same numbers as updating each array on its own."""
import numpy as np
import pytest

import mxopt
from mxopt import _engine


def make_params(rng, dtype=np.float32):
    return {"conv_weight": rng.standard_normal((4, 3, 2)).astype(dtype),
            "conv_bias": rng.standard_normal(4).astype(dtype),
            "fc_weight": rng.standard_normal((5, 6)).astype(dtype)}


@pytest.fixture
def count_launches(monkeypatch):
    calls = []
    real = _engine.launch

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "launch", counting)
    return calls


@pytest.mark.parametrize("name, kwargs", [("sgd", {"momentum": 0.9, "wd": 0.01}),
                                          ("nag", {"momentum": 0.8}), ("adam", {"wd": 1e-3})])
def test_trainer_equals_per_array_updates_with_one_launch(rng, name, kwargs, count_launches):
    params = make_params(rng)
    tr = mxopt.Trainer(params, name, {"learning_rate": 0.05, **kwargs})
    assert all(np.shares_memory(tr.params[k], tr.data) for k in params)
    assert [k for k in tr.params] == list(params)
    solo = {k: (mxopt.create(name, learning_rate=0.05, **kwargs), v.copy()) for k, v in params.items()}
    states = {k: opt.create_state(0, w) for k, (opt, w) in solo.items()}
    for step in range(4):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        for k, g in grads.items():
            tr.grads[k][...] = g * 8  # summed over a batch of 8
        count_launches.clear()
        tr.step(batch_size=8)
        assert len(count_launches) == 1
        for k, (opt, w) in solo.items():
            opt.update(0, w, grads[k], states[k])
            np.testing.assert_allclose(tr.params[k], w, rtol=1e-6, atol=1e-7)
    assert tr.optimizer.num_update == 4


def test_multipliers_make_groups(rng, count_launches):
    params = make_params(rng)
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1}, lr_mult={"fc_weight": 0.0},
                       wd_mult={"conv_bias": 0.0})
    before = tr.params["fc_weight"].copy()
    tr.grads["fc_weight"][...] = 1
    tr.grads["conv_bias"][...] = 1
    tr.step()
    assert len(count_launches) == 3
    np.testing.assert_array_equal(tr.params["fc_weight"], before)  # lr_mult 0: frozen
    np.testing.assert_allclose(tr.params["conv_bias"], params["conv_bias"] - 0.1, rtol=1e-6)


def test_float16_trainer_uses_master_weights(rng):
    params = make_params(rng, np.float16)
    tr = mxopt.Trainer(params, "adam", {"learning_rate": 1e-3, "multi_precision": True})
    tr.grads["fc_weight"][...] = 1
    tr.step()
    state = tr._updater.states[0]
    assert state.weight32.dtype == np.float32 and tr.data.dtype == np.float16
    np.testing.assert_array_equal(tr.data, state.weight32.astype(np.float16))


def test_trainer_states_round_trip(rng):
    params = make_params(rng)
    tr = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})
    tr.grads["conv_weight"][...] = 0.5
    tr.step()
    other = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})
    other.load_states(tr.save_states())
    other.data[...] = tr.data
    other.grad_data[...] = tr.grad_data
    for t in (tr, other):
        t.grads["fc_weight"][...] = -1
        t.step()
    np.testing.assert_array_equal(tr.data, other.data)


def test_trainer_bad_input(rng):
    params = make_params(rng)
    with pytest.raises(ValueError, match="one buffer"):
        mxopt.Trainer({**params, "x": np.ones(3)}, "sgd")
    with pytest.raises(TypeError, match="params"):
        mxopt.Trainer({"x": [1.0, 2.0]}, "sgd")
    with pytest.raises(ValueError, match="lr_mult names unknown"):
        mxopt.Trainer(params, "sgd", lr_mult={"nope": 1.0})
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1})
    before = tr.data.copy()
    with pytest.raises(ValueError, match="batch_size"):
        tr.step(batch_size=0)
    np.testing.assert_array_equal(tr.data, before)
