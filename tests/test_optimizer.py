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
