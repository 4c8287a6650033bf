"""The MXNet-style plumbing: counting, multipliers, registry, a custom optimizer."""
import math

import numpy as np
import pytest

import mxopt
from mxopt import _checks


def test_counting_follows_mxnet():
    sched = mxopt.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = mxopt.SGD(lr_scheduler=sched, begin_num_update=3)
    w = np.zeros(2)
    opt.update(0, w, np.ones(2), opt.create_state(0, w))
    # begin_num_update=3: the first update is number 4 and uses scheduler(4) = 1/2^3
    assert opt.num_update == 4 and opt._index_update_count[0] == 4
    np.testing.assert_allclose(w, -0.125)
    w1 = np.zeros(2)
    opt.update(1, w1, np.ones(2), opt.create_state(1, w1))
    assert opt.num_update == 4  # the max over indices
    np.testing.assert_allclose(w1, -0.125)


def test_multipliers_by_index_and_by_name():
    opt = mxopt.SGD(learning_rate=1.0, wd=0.5, param_idx2name={0: "fc_weight", 1: "fc_bias"})
    assert opt.wd_mult == {"fc_bias": 0.0}  # MXNet: no decay for names not ending in _weight/_gamma
    opt.set_lr_mult({"fc_weight": 0.1})
    assert opt._get_lr(0) == pytest.approx(0.1) and opt._get_lr(1) == 1.0
    assert opt._get_wd(0) == 0.5 and opt._get_wd(1) == 0.0
    w = np.ones(3)
    opt.update(1, w, np.zeros(3), None)  # bias: no decay, zero gradient -> unchanged
    np.testing.assert_array_equal(w, 1.0)
    opt.update(0, w, np.zeros(3), None)  # weight: decays by lr*lr_mult*wd = 0.05
    np.testing.assert_allclose(w, 0.95)


def test_create_and_registry():
    assert isinstance(mxopt.create("Adam"), mxopt.Adam)
    opt = mxopt.NAG(momentum=0.5)
    assert mxopt.create(opt) is opt
    with pytest.raises(TypeError):
        mxopt.register(object)


def test_a_new_optimizer_is_a_rule_and_a_small_class():
    def signsgd(w, g, lr):
        """w ← w − lr·sign(g)"""
        if g > 0:
            return w - lr
        if g < 0:
            return w + lr
        return w

    @mxopt.register
    class SignSGDExample(mxopt.Optimizer):
        rule = mxopt.UpdateRule(signsgd, n_state=0)

    opt = mxopt.create("signsgdexample", learning_rate=0.5)
    w = np.zeros(3, np.float32)
    opt.update(0, w, np.array([2, -3, 0], np.float32), None)
    np.testing.assert_array_equal(w, [-0.5, 0.5, 0.0])


def test_state_is_tuple_like_and_named():
    opt = mxopt.Adam()
    st = opt.create_state("w", np.zeros((2, 2), np.float32))
    mean, var = st
    assert st.names == ("mean", "var") and st["var"] is var and st.mean is mean and len(st) == 2
    with pytest.raises(AttributeError):
        st.nope


def test_hyper_descriptor_checks_every_assignment():
    opt = mxopt.SGD(momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        opt.momentum = 1.0
    assert opt.momentum == 0.9
    assert _checks.at_least(0.0)("x", 3) == 3.0
    with pytest.raises(ValueError, match="finite"):
        _checks.at_least(0.0)("x", math.inf)


def test_schedules_from_mxnet_jl():
    exp = mxopt.lr_scheduler.Exp(base_lr=0.1, gamma=0.9)
    inv = mxopt.lr_scheduler.Inv(base_lr=0.1, gamma=0.9, power=0.5)
    assert exp(0) == 0.1 and exp(3) == pytest.approx(0.1 * 0.9 ** 3)
    assert inv(0) == 0.1 and inv(4) == pytest.approx(0.1 * (1 + 0.9 * 4) ** -0.5)
    opt = mxopt.SGD(lr_scheduler=exp)
    w = np.zeros(1)
    opt.update(0, w, np.ones(1), None)
    np.testing.assert_allclose(w, -0.09)  # first update uses num_update = 1


def _hammer(opt, indices, steps):
    """Each thread updates its own weight at its index; returns the weights."""
    import threading

    weights = {i: np.zeros(64) for i in indices}
    states = {i: opt.create_state(i, weights[i]) for i in indices}
    barrier = threading.Barrier(len(indices))

    def work(i):
        barrier.wait()
        for _ in range(steps):
            opt.update(i, weights[i], np.ones(64), states[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in indices]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return weights


def test_threads_on_one_index_lose_no_count():
    opt = mxopt.SGD(learning_rate=1.0)
    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        weights = _hammer(opt, [0, 0, 0, 0], 300)
    finally:
        sys.setswitchinterval(old)
    assert opt._index_update_count[0] == 1200 and opt.num_update == 1200


def test_threads_on_different_indices():
    opt = mxopt.Adam(learning_rate=0.1)
    weights = _hammer(opt, [0, 1, 2], 50)
    alone = mxopt.Adam(learning_rate=0.1)
    w = np.zeros(64)
    st = alone.create_state(0, w)
    for _ in range(50):
        alone.update(0, w, np.ones(64), st)
    for i in range(3):
        np.testing.assert_array_equal(weights[i], w)  # each index its own bias correction
        assert opt._index_update_count[i] == 50


def test_carried_scalars_advance_after_the_launch_only():
    """spec: ``carried`` names per-index scalars; ``advance`` gives them after update t;
    step_scalars sees the new values; State.scalars is written only after the launch."""
    def decay(w, g, lr, prod):
        return w - lr * prod * g

    seen = []

    class ProductExample(mxopt.Optimizer):
        rule = mxopt.UpdateRule(decay, n_state=0)
        carried = {"prod": 1.0}

        def advance(self, carried, t):
            return {"prod": carried["prod"] * 0.5}

        def step_scalars(self, index, t, lr, wd, carried):
            seen.append(carried["prod"])
            return {**super().step_scalars(index, t, lr, wd), "prod": carried["prod"]}

    opt = ProductExample(learning_rate=1.0)
    w = np.zeros(2)
    state = opt.create_state(0, w)
    assert state is not None and state.scalars == {"prod": 1.0} and state.names == ()
    opt.update(0, w, np.ones(2), state)
    opt.update(0, w, np.ones(2), state)
    assert seen == [0.5, 0.25] and state.scalars == {"prod": 0.25}
    np.testing.assert_allclose(w, -0.75)
    with pytest.raises(ValueError, match="grad shares memory"):  # a failing update stores nothing
        opt.update(0, w, w, state)
    assert state.scalars == {"prod": 0.25} and opt._index_update_count[0] == 2
    assert mxopt.Optimizer().step_scalars(0, 1, 0.1, 0.0).keys() == {"lr", "wd", "rescale_grad", "clip_gradient"}


def test_list_update_is_mxnets_aggregated_update():
    # MXNet counts every index of a list first, then uses the learning rate at the
    # resulting num_update for all of them.
    sched = mxopt.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=1.0)
    opt = mxopt.SGD(lr_scheduler=sched)
    ws = [np.zeros(2), np.zeros(2)]
    opt.update([0, 1], ws, [np.ones(2), np.ones(2)], [None, None])
    assert opt.num_update == 1
    np.testing.assert_array_equal(ws[0], [-1.0, -1.0])
    np.testing.assert_array_equal(ws[1], [-1.0, -1.0])
    opt.update([0, 1], ws, [np.ones(2), np.ones(2)], [None, None])
    assert opt.num_update == 2
    np.testing.assert_array_equal(ws[1], [-1.5, -1.5])  # scheduler(2) = 0.5


def test_list_update_checks_everything_first():
    opt = mxopt.Adam(learning_rate=0.1)
    w0, w1 = np.ones(3, np.float32), np.ones(3, np.float32)
    s0, s1 = opt.create_state(0, w0), opt.create_state(1, w1)
    with pytest.raises(TypeError, match="grad"):
        opt.update([0, 1], [w0, w1], [np.ones(3, np.float32), np.ones(3)], [s0, s1])  # float64 grad
    np.testing.assert_array_equal(w0, 1.0)
    assert opt.num_update == 0 and opt._index_update_count == {}
    with pytest.raises(ValueError, match="twice"):
        opt.update([0, 0], [w0, w0.copy()], [w0.copy(), w0.copy()], [s0, s0])
    b = np.ones(6, np.float32)
    with pytest.raises(ValueError, match="shares memory"):
        opt.update([0, 1], [b[:3], b[2:5]], [w0.copy(), w1.copy()], [s0, s1])
    with pytest.raises(TypeError, match="same length"):
        opt.update([0, 1], [w0], [w0], [s0])
    np.testing.assert_array_equal(b, 1.0)


def test_updater_takes_lists():
    up = mxopt.get_updater(mxopt.SGD(learning_rate=0.5, momentum=0.9))
    ws = [np.zeros(2, np.float32), np.zeros(3, np.float32)]
    up([0, 1], [np.ones(2, np.float32), np.ones(3, np.float32)], ws)
    assert set(up.states) == {0, 1} and up.states_synced == {0: True, 1: True}
    np.testing.assert_array_equal(ws[1], -0.5)
