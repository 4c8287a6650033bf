"""State: named arrays and per-index scalars; copies of a State, an Updater
(and a Trainer, in test_trainer.py) are shallow or deep as asked, never a
recursion."""
import copy

import numpy as np
import pytest

import mxopt
from mxopt import State


def test_state_behaves_like_its_arrays():
    mean, var = np.zeros(3), np.ones(3)
    s = State("Adam", 0, ("mean", "var"), (mean, var))
    assert len(s) == 2 and list(s) == [mean, var] and s[1] is var
    assert s["mean"] is mean and s.var is var and s.scalars == {}
    with pytest.raises(KeyError):
        s["mom"]
    with pytest.raises(AttributeError):
        s.mom
    assert "Adam" in repr(s)


def test_state_scalars_are_checked():
    s = State("Nadam", 3, ("mean",), (np.zeros(2),), {"mu_product": np.float32(0.5)})
    assert s.scalars == {"mu_product": 0.5} and type(s.scalars["mu_product"]) is float
    for bad in ({"x": float("nan")}, {"x": float("inf")}, {"x": "0.5"}, {"x": True}, {"x": None}):
        with pytest.raises(ValueError, match="scalars"):
            State("Nadam", 3, (), (), bad)
    with pytest.raises(TypeError, match="keyed by str"):
        State("Nadam", 3, (), (), {1: 0.5})
    with pytest.raises(ValueError, match="one name per array"):
        State("Adam", 0, ("mean", "var"), (np.zeros(2),))


def test_copy_shares_and_deepcopy_copies():
    s = State("Adam", "fc_weight", ("mean", "var"), (np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32)),
              {"k": 2.0})
    shallow = copy.copy(s)
    assert shallow.arrays is s.arrays and shallow.scalars is s.scalars and shallow.index == "fc_weight"
    deep = copy.deepcopy(s)
    assert (deep.optimizer, deep.index, deep.names, deep.scalars) == (s.optimizer, s.index, s.names, s.scalars)
    for a, b in zip(deep, s):
        assert a is not b and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    deep.mean[...] = 7
    deep.scalars["k"] = 3.0
    assert s.mean.sum() == 0 and s.scalars == {"k": 2.0}
    # one array held twice stays one array in the copy
    twice = State("X", 0, ("a", "b"), (s.mean, s.mean))
    again = copy.deepcopy(twice)
    assert again.a is again.b and again.a is not s.mean


def test_copies_of_an_updater():
    up = mxopt.get_updater(mxopt.Adam(learning_rate=0.1))
    w = np.ones(4, np.float32)
    up(0, np.ones(4, np.float32), w)
    deep = copy.deepcopy(up)
    assert deep.optimizer is not up.optimizer and deep.states[0].mean is not up.states[0].mean
    shallow = copy.copy(up)
    assert shallow.states is up.states and shallow.optimizer is up.optimizer
    w2 = w.copy()
    up(0, np.ones(4, np.float32), w)
    deep(0, np.ones(4, np.float32), w2)
    np.testing.assert_array_equal(w, w2)  # same history, same next step
    assert up.optimizer._index_update_count == deep.optimizer._index_update_count == {0: 2}
    deep(0, np.ones(4, np.float32), w2)
    assert up.optimizer.num_update == 2 and deep.optimizer.num_update == 3


def test_updater_keeps_none_states():
    """create_state may return None (MXNet's SGD without momentum); the Updater keeps it and counts."""
    opt = mxopt.SGD(learning_rate=0.5)
    up = mxopt.get_updater(opt)
    w = np.ones(2, np.float32)
    up.states[0] = None
    up.states_synced[0] = False
    up(0, np.ones(2, np.float32), w)
    assert 0 in up.states and up.states[0] is None and up.states_synced[0]
    np.testing.assert_array_equal(w, 0.5)
    assert copy.deepcopy(up).states == {0: None}


@pytest.mark.cuda
def test_deepcopy_of_a_device_state_stays_on_the_device():
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    from mxopt import _arrays

    opt = mxopt.Adam(learning_rate=0.1)
    w = cuda.to_device(np.ones(5, np.float32))
    state = opt.create_state(0, w)
    opt.update(0, w, cuda.to_device(np.ones(5, np.float32)), state)
    deep = copy.deepcopy(state)
    for a, b in zip(deep, state):
        assert _arrays.target_of(a) == "cuda" and a is not b
        np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host())
    deep.mean.copy_to_device(np.zeros(5, np.float32))
    assert state.mean.copy_to_host().sum() != 0
