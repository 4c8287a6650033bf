"""MXNet 1.9.1's optimizer API: code written for ``mx.optimizer`` runs unchanged."""
import copy
import inspect
import warnings

import numpy as np
import pytest

import mxopt
from mxopt import optimizer as opt_module


def test_registry_under_mxnet_names():
    assert opt_module.opt_registry is mxopt.Optimizer.opt_registry
    assert opt_module.opt_registry["adam"] is mxopt.Adam
    opt = mxopt.Optimizer.create_optimizer("SGD", momentum=0.9)
    assert isinstance(opt, mxopt.SGD) and opt.momentum == 0.9
    with pytest.raises(ValueError, match="unknown optimizer"):
        mxopt.Optimizer.create_optimizer("nope")

    @mxopt.Optimizer.register
    class ApiExampleOpt(mxopt.Optimizer):
        rule = mxopt.UpdateRule(lambda w, g, lr: w - lr * g, n_state=0)

    assert opt_module.opt_registry["apiexampleopt"] is ApiExampleOpt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mxopt.Optimizer.register(ApiExampleOpt)  # the same class again: no warning

    class ApiExampleOpt(mxopt.Optimizer):  # noqa: F811 - another class, same name
        rule = mxopt.UpdateRule(lambda w, g, lr: w - lr * g, n_state=0)

    with pytest.warns(UserWarning, match="replaces"):
        mxopt.register(ApiExampleOpt)


def test_constructor_positional_order_is_mxnets():
    params = list(inspect.signature(mxopt.Optimizer.__init__).parameters)[1:]
    assert params == ["rescale_grad", "param_idx2name", "wd", "clip_gradient", "learning_rate",
                      "lr_scheduler", "sym", "begin_num_update", "multi_precision", "param_dict"]
    opt = mxopt.Optimizer(0.5, {0: "fc_weight"}, 0.1, 2.0, 0.3)
    assert (opt.rescale_grad, opt.idx2name, opt.wd, opt.clip_gradient, opt.lr) == (0.5, {0: "fc_weight"}, 0.1, 2.0, 0.3)


class Param:  # what Gluon's Trainer passes in param_dict: objects with lr_mult and wd_mult
    def __init__(self, lr_mult=1.0, wd_mult=1.0):
        self.lr_mult, self.wd_mult = lr_mult, wd_mult


def test_param_dict_multipliers_take_precedence_and_are_read_live():
    p0 = Param(lr_mult=0.5, wd_mult=0.0)
    opt = mxopt.SGD(learning_rate=1.0, wd=0.1, param_dict={0: p0}, param_idx2name={0: "fc_weight"})
    opt.set_lr_mult({0: 3.0, "fc_weight": 7.0})  # MXNet: param_dict wins over both
    assert opt._get_lr(0) == 0.5 and opt._get_wd(0) == 0.0
    w = np.ones(2)
    opt.update(0, w, np.ones(2), None)
    np.testing.assert_allclose(w, 0.5)
    p0.lr_mult = 0.0  # freezing a Gluon parameter after the trainer was made
    opt.update(0, w, np.ones(2), None)
    np.testing.assert_allclose(w, 0.5)
    p0.lr_mult = float("nan")
    before = (w.copy(), dict(opt._index_update_count))
    with pytest.raises(ValueError, match=r"param_dict\[0\]\.lr_mult"):
        opt.update(0, w, np.ones(2), None)
    np.testing.assert_array_equal(w, before[0])
    assert opt._index_update_count == before[1]
    # an index not in param_dict falls back to the tables
    opt.set_lr_mult({1: 0.25})
    assert opt._get_lr(1) == 0.25


def test_param_dict_is_shared_not_copied():
    params = {0: Param()}
    opt = mxopt.SGD(param_dict=params)
    assert opt.param_dict is params
    twin = copy.deepcopy(opt)
    assert twin.param_dict is params and twin._lock is not opt._lock


@pytest.mark.parametrize("bad, exc, word", [
    ([Param()], TypeError, "param_dict must be a dict"),
    ({0: object()}, TypeError, r"param_dict\[0\] must have lr_mult"),
    ({0: Param(lr_mult=-1.0)}, ValueError, r"param_dict\[0\]\.lr_mult"),
    ({0: Param(wd_mult="1")}, TypeError, r"param_dict\[0\]\.wd_mult"),
    ({True: Param()}, TypeError, "param_dict key"),
])
def test_bad_param_dict(bad, exc, word):
    with pytest.raises(exc, match=word):
        mxopt.SGD(param_dict=bad)


class Sym:  # the two methods of an MXNet Symbol that the optimizer reads
    def attr_dict(self):
        return {"fc_weight": {"__lr_mult__": "0.5", "__wd_mult__": "2"}, "fc_bias": {"__wd_mult__": "0"}}

    def list_arguments(self):
        return ["data", "fc_weight", "fc_bias"]


def test_sym_attributes_become_multipliers_by_name():
    opt = mxopt.SGD(learning_rate=1.0, wd=0.1, sym=Sym(), param_idx2name={0: "fc_weight", 1: "fc_bias"})
    assert opt.lr_mult == {"fc_weight": 0.5}
    assert opt.wd_mult == {"fc_bias": 0.0, "fc_weight": 2.0}
    opt.set_lr_mult({"fc_weight": 0.1})  # explicit values override the symbol's
    assert opt._get_lr(0) == pytest.approx(0.1) and opt._get_wd(0) == pytest.approx(0.2)
    with pytest.raises(TypeError, match="sym must be an MXNet Symbol"):
        mxopt.SGD(sym="net")


def test_create_state_is_none_where_mxnet_keeps_none():
    w = np.zeros(3, np.float32)
    assert mxopt.SGD().create_state(0, w) is None
    assert mxopt.NAG().create_state(0, w) is None
    assert mxopt.SGD(momentum=0.9).create_state(0, w).names == ("mom",)
    # a float16 weight still needs its float32 master copy
    assert mxopt.SGD(multi_precision=True).create_state(0, w.astype(np.float16)).names == ("weight32",)
    opt = mxopt.SGD(learning_rate=0.5)
    opt.update(0, w, np.ones(3, np.float32), None)
    np.testing.assert_array_equal(w, -0.5)
    upd = mxopt.get_updater(mxopt.SGD(learning_rate=0.5))
    upd(0, np.ones(3, np.float32), w)
    np.testing.assert_array_equal(w, -1.0)


def test_errors_say_what_mxnet_would_do():
    sched = mxopt.lr_scheduler.FactorScheduler(step=10, base_lr=0.1)
    with pytest.raises(ValueError, match="has been overwritten") as err:
        mxopt.SGD(learning_rate=0.5, lr_scheduler=sched)
    assert "print a note" in str(err.value) and "silently" not in str(err.value)
    assert sched.base_lr == 0.1  # the scheduler is not touched
    with pytest.raises(ValueError, match="MXNet 1.9.1 treats 0 and negative values as off"):
        mxopt.SGD(clip_gradient=0.0)
    opt = mxopt.SGD()
    with pytest.raises(TypeError, match="MXNet 1.9.1 would only warn"):
        opt.create_state(0, np.zeros(2, np.float16))


def test_learning_rate_with_a_scheduler_without_base_lr():
    with pytest.raises(ValueError, match="no base_lr"):
        mxopt.SGD(learning_rate=0.1, lr_scheduler=lambda n: 0.1)
    opt = mxopt.SGD(lr_scheduler=lambda n: 0.1 / (n + 1))  # a plain function is a scheduler
    w = np.zeros(2)
    opt.update(0, w, np.ones(2), None)
    np.testing.assert_allclose(w, -0.05)
    # the same value as base_lr is not a contradiction
    sched = mxopt.lr_scheduler.FactorScheduler(step=10, base_lr=0.1)
    assert mxopt.SGD(learning_rate=0.1, lr_scheduler=sched).learning_rate == 0.1
