"""Bad input raises a clear TypeError/ValueError naming the argument, and
leaves the weight, the state and the counters exactly as they were."""
import copy

import numpy as np
import pytest

import mxopt


def snapshot(opt, w, state):
    return (w.copy(), [a.copy() for a in state] if state is not None else None,
            dict(opt._index_update_count), opt.num_update)


def assert_unchanged(before, opt, w, state):
    w0, s0, counts, num = before
    np.testing.assert_array_equal(w, w0)
    if s0 is not None:
        for a, b in zip(state, s0):
            np.testing.assert_array_equal(a, b)
    assert opt._index_update_count == counts and opt.num_update == num


@pytest.fixture(params=["sgd_mom", "nag", "adam"])
def setup(request):
    opt = {"sgd_mom": lambda: mxopt.SGD(learning_rate=0.1, momentum=0.9),
           "nag": lambda: mxopt.NAG(learning_rate=0.1, momentum=0.9),
           "adam": lambda: mxopt.Adam(learning_rate=0.1)}[request.param]()
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    state = opt.create_state(0, w)
    opt.update(0, w, np.ones_like(w), state)  # one good step: counters and state are non-trivial
    return opt, w, state


def bad_updates(opt, w, state):
    g = np.ones_like(w)
    ro = w.copy()
    ro.flags.writeable = False
    other = mxopt.create("sgd", momentum=0.5) if not isinstance(opt, mxopt.SGD) else mxopt.Adam()
    yield "grad shape", ValueError, "grad", lambda: opt.update(0, w, np.ones((4, 3), np.float32), state)
    yield "grad dtype", TypeError, "grad", lambda: opt.update(0, w, g.astype(np.float64), state)
    yield "int grad", TypeError, "grad", lambda: opt.update(0, w, g.astype(np.int32), state)
    yield "list grad", TypeError, "grad", lambda: opt.update(0, w, g.tolist(), state)
    yield "int weight", TypeError, "weight", lambda: opt.update(0, w.astype(np.int64), g.astype(np.int64), state)
    yield "non-contiguous grad", ValueError, "grad", lambda: opt.update(
        0, w, np.ones((4, 3), np.float32).T, state)
    yield "non-contiguous weight", ValueError, "weight", lambda: opt.update(
        0, np.asfortranarray(w), np.asfortranarray(g), state)
    yield "read-only weight", ValueError, "weight", lambda: opt.update(0, ro, g, state)
    yield "wrong index", ValueError, "index", lambda: opt.update(1, w, g, state)
    yield "bad index type", TypeError, "index", lambda: opt.update(0.5, w, g, state)
    yield "other optimizer's state", ValueError, "state", lambda: opt.update(
        0, w, g, other.create_state(0, w))
    yield "no state", TypeError, "state", lambda: opt.update(0, w, g, None)
    yield "state of other shape", ValueError, "state", lambda: opt.update(
        0, w, g, opt.create_state(0, np.zeros(5, np.float32)))
    yield "float16 without multi_precision", TypeError, "multi_precision", lambda: opt.update(
        0, w.astype(np.float16), g.astype(np.float16), state)


def test_each_bad_update_raises_and_changes_nothing(setup):
    opt, w, state = setup
    for label, exc, word, call in bad_updates(opt, w, state):
        before = snapshot(opt, w, state)
        with pytest.raises(exc, match=word):
            call()
        assert_unchanged(before, opt, w, state), label


def test_state_from_changed_hyperparameter_is_rejected():
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    opt.momentum = 0.0  # the state holds a momentum array that plain SGD does not use
    before = snapshot(opt, w, state)
    with pytest.raises(ValueError, match="momentum changed"):
        opt.update(0, w, np.ones(3, np.float32), state)
    assert_unchanged(before, opt, w, state)
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.0)
    assert opt.create_state(0, w) is None  # as MXNet: no momentum, no state
    opt.momentum = 0.9
    before = snapshot(opt, w, None)
    with pytest.raises(TypeError, match="momentum changed"):
        opt.update(0, w, np.ones(3, np.float32), None)
    assert_unchanged(before, opt, w, None)


@pytest.mark.parametrize("name, kwargs, word", [
    ("sgd", {"learning_rate": -0.1}, "learning_rate"),
    ("sgd", {"learning_rate": float("nan")}, "learning_rate"),
    ("sgd", {"learning_rate": "0.1"}, "learning_rate"),
    ("sgd", {"learning_rate": 10**400}, "learning_rate"),
    ("sgd", {"multi_precision": "no"}, "multi_precision"),
    ("sgd", {"momentum": 1.0}, "momentum"),
    ("sgd", {"momentum": -0.1}, "momentum"),
    ("nag", {"momentum": 1.5}, "momentum"),
    ("adam", {"beta1": 1.0}, "beta1"),
    ("adam", {"beta2": -0.5}, "beta2"),
    ("adam", {"epsilon": -1e-8}, "epsilon"),
    ("adam", {"clip_gradient": 0}, "clip_gradient"),
    ("sgd", {"clip_gradient": -1.0}, "clip_gradient"),
    ("sgd", {"wd": -0.1}, "wd"),
    ("sgd", {"rescale_grad": 0.0}, "rescale_grad"),
    ("sgd", {"begin_num_update": -1}, "begin_num_update"),
])
def test_out_of_range_hyperparameters(name, kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        mxopt.create(name, **kwargs)


def test_bad_assignment_after_construction_keeps_old_value():
    opt = mxopt.Adam(learning_rate=0.01, beta1=0.8)
    with pytest.raises(ValueError, match="beta1"):
        opt.beta1 = 1.2
    assert opt.beta1 == 0.8
    with pytest.raises(ValueError, match="lr"):
        opt.learning_rate = -1
    assert opt.learning_rate == 0.01


def test_unknown_optimizer_and_unknown_argument():
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'"):
        mxopt.create("sgdd")
    with pytest.raises(TypeError):
        mxopt.create("sgd", momentun=0.9)


def test_learning_rate_contradicting_scheduler():
    sched = mxopt.lr_scheduler.FactorScheduler(step=10, factor=0.5, base_lr=0.1)
    with pytest.raises(ValueError, match="base_lr"):
        mxopt.Adam(learning_rate=0.01, lr_scheduler=sched)
    opt = mxopt.Adam(lr_scheduler=sched)  # no overwrite: the scheduler's base_lr is used
    assert opt.learning_rate == 0.1
    with pytest.raises(ValueError, match="lr_scheduler"):
        opt.set_learning_rate(0.5)


def test_cpu_weight_with_gpu_gradient_is_rejected():
    class FakeGpuArray:  # anything exposing the CUDA array interface counts as a GPU array
        def __init__(self, a):
            self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str,
                                             "data": (0, False), "strides": None, "version": 3}

    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
    w = np.ones(4, np.float32)
    state = opt.create_state(0, w)
    before = snapshot(opt, w, state)
    with pytest.raises(ValueError, match="same device"):
        opt.update(0, w, FakeGpuArray(w), state)
    assert_unchanged(before, opt, w, state)


@pytest.mark.parametrize("kwargs", [{"step": 0}, {"step": 10, "factor": 1.5},
                                    {"step": 10, "warmup_mode": "cubic"},
                                    {"step": 10, "base_lr": 0.1, "warmup_begin_lr": 0.2}])
def test_bad_scheduler_arguments(kwargs):
    with pytest.raises((ValueError, TypeError)):
        mxopt.lr_scheduler.FactorScheduler(**kwargs)


def test_bad_scheduler_argument_types():
    with pytest.raises(ValueError, match="strictly increasing"):
        mxopt.lr_scheduler.MultiFactorScheduler([10, 5])
    with pytest.raises(ValueError, match="max_update"):
        mxopt.lr_scheduler.CosineScheduler(max_update=10, warmup_steps=10)
    with pytest.raises(TypeError, match="num_update"):
        mxopt.lr_scheduler.PolyScheduler(max_update=10)(1.5)


def test_cuda_array_interface_contiguity():
    from mxopt import _arrays

    def fake(shape, strides):
        class A:
            __cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (0, False),
                                        "strides": strides, "version": 3}
        return A()

    assert _arrays.info(fake((3, 4), None)).contiguous
    assert _arrays.info(fake((3, 4), (16, 4))).contiguous
    assert _arrays.info(fake((1, 4), (64, 4))).contiguous  # a size-1 dimension may have any stride
    assert not _arrays.info(fake((3, 4), (4, 12))).contiguous  # Fortran order
    assert not _arrays.info(fake((3, 4), (32, 4))).contiguous  # a slice of a wider array


def _fresh_sgd(**kwargs):
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9, **kwargs)
    w = np.linspace(-1, 1, 6, dtype=np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.ones_like(w), state)
    return opt, w, state


@pytest.mark.parametrize("value, exc", [(float("nan"), ValueError), (float("inf"), ValueError),
                                        (-0.5, ValueError), ("0.5", TypeError), (True, TypeError),
                                        (None, TypeError), (10 ** 400, ValueError)])
@pytest.mark.parametrize("setter", ["set_lr_mult", "set_wd_mult"])
def test_bad_multiplier_values(setter, value, exc):
    opt, w, state = _fresh_sgd()
    old = dict(getattr(opt, setter[4:]))
    with pytest.raises(exc, match=setter[4:]):
        getattr(opt, setter)({0: value})
    assert getattr(opt, setter[4:]) == old  # the old table is kept whole


@pytest.mark.parametrize("key", [1.5, None, True, (0,)])
def test_bad_multiplier_keys(key):
    opt = mxopt.SGD()
    with pytest.raises(TypeError, match="key"):
        opt.set_lr_mult({key: 1.0})


def test_multiplier_written_into_the_table_directly_is_checked_at_update():
    opt, w, state = _fresh_sgd()
    opt.lr_mult[0] = float("nan")  # bypassing set_lr_mult, as code that pokes the dict does
    before = snapshot(opt, w, state)
    with pytest.raises(ValueError, match=r"lr_mult\[0\]"):
        opt.update(0, w, np.ones_like(w), state)
    assert_unchanged(before, opt, w, state)


@pytest.mark.parametrize("value, exc", [(float("nan"), ValueError), (float("inf"), ValueError),
                                        (-0.1, ValueError), (None, TypeError), ("0.1", TypeError),
                                        (np.float32(np.nan), ValueError)])
def test_bad_scheduler_values_change_nothing(value, exc):
    opt = mxopt.SGD(momentum=0.9, lr_scheduler=lambda n: 0.1 if n < 2 else value)
    w = np.ones(4, np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.ones_like(w), state)
    before = snapshot(opt, w, state)
    with pytest.raises(exc, match="lr_scheduler"):
        opt.update(0, w, np.ones_like(w), state)
    assert_unchanged(before, opt, w, state)


@pytest.mark.parametrize("kwargs, word", [
    ({"learning_rate": 1e300}, "lr"), ({"rescale_grad": 1e-300}, "rescale_grad"),
    ({"rescale_grad": 1e300}, "rescale_grad"), ({"wd": 1e-60}, "wd"),
    ({"clip_gradient": 1e-50}, "clip_gradient"), ({"learning_rate": 1e-50}, "lr")])
def test_hyperparameters_not_representable_in_the_compute_dtype(kwargs, word):
    opt = mxopt.SGD(momentum=0.9, **kwargs)
    w = np.ones(4, np.float32)
    state = opt.create_state(0, w)
    before = snapshot(opt, w, state)
    with pytest.raises(ValueError, match=rf"{word}=.*(overflows|rounds to 0) float32|{word}=.*rounds to 0 in float32"):
        opt.update(0, w, np.ones_like(w), state)
    assert_unchanged(before, opt, w, state)
    w64 = np.ones(4)  # the same values are fine for float64 weights
    opt.update(1, w64, np.ones(4), opt.create_state(1, w64))
    # float16 weights compute in float32 (multi_precision): checked against float32
    mp = mxopt.SGD(momentum=0.9, multi_precision=True, **kwargs)
    w16 = np.ones(4, np.float16)
    with pytest.raises(ValueError, match="float32"):
        mp.update(0, w16, np.ones(4, np.float16), mp.create_state(0, w16))


def test_adam_bias_corrected_rate_is_checked_too():
    # lr fits float32, but lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ) = 1e37·1/0.01 at t = 1 does not
    opt = mxopt.Adam(learning_rate=1e37, beta1=0.99, beta2=0.0)
    w = np.ones(2, np.float32)
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="lr_t"):
        opt.update(0, w, np.ones(2, np.float32), state)
    assert opt.num_update == 0


def test_clipping_off_is_infinite_and_allowed():
    opt = mxopt.SGD(learning_rate=0.5)
    assert opt.step_scalars(0, 1, 0.5, 0.0)["clip_gradient"] == float("inf")
    w = np.ones(2, np.float32)
    opt.update(0, w, np.full(2, 1e30, np.float32), None)
    np.testing.assert_array_equal(w, np.float32(1) - np.float32(0.5) * np.float32(1e30))


@pytest.mark.parametrize("name, kwargs, word", [
    ("sgd", {"learning_rate": 10 ** 400}, "learning_rate"), ("sgd", {"wd": 10 ** 400}, "wd"),
    ("sgd", {"rescale_grad": 10 ** 400}, "rescale_grad"), ("sgd", {"clip_gradient": 10 ** 400}, "clip_gradient"),
    ("sgd", {"begin_num_update": 10 ** 400}, "begin_num_update"),
    ("sgd", {"begin_num_update": 2 ** 63}, "begin_num_update"),
    ("adam", {"epsilon": 10 ** 400}, "epsilon"), ("adam", {"beta1": 10 ** 400}, "beta1"),
    ("nag", {"momentum": -(10 ** 400)}, "momentum")])
def test_huge_integers_are_value_errors(name, kwargs, word):
    with pytest.raises(ValueError, match=word):
        mxopt.create(name, **kwargs)


def test_update_count_capped_at_int64():
    opt = mxopt.SGD(begin_num_update=2 ** 63 - 1)
    w = np.ones(2)
    with pytest.raises(ValueError, match="update count"):
        opt.update(0, w, np.ones(2), None)
    np.testing.assert_array_equal(w, 1.0)
    assert opt._index_update_count == {}


@pytest.mark.parametrize("names, exc", [({0: 5}, TypeError), ({0: None}, TypeError), ({1.5: "a"}, TypeError),
                                        ([("a", "b")], TypeError)])
def test_param_idx2name_must_map_indices_to_strings(names, exc):
    with pytest.raises(exc, match="param_idx2name"):
        mxopt.SGD(param_idx2name=names)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own warning
@pytest.mark.parametrize("kind", ["matrix", "masked"])
@pytest.mark.parametrize("role", ["weight", "grad", "state"])
def test_matrix_and_masked_arrays_rejected_cold_and_warm(kind, role):
    opt, w, state = _fresh_sgd()  # the kernel is compiled and warm
    w2 = w.reshape(2, 3).copy()
    state2 = opt.create_state(1, w2)
    opt.update(1, w2, np.ones_like(w2), state2)
    wrap = (lambda a: np.asmatrix(a)) if kind == "matrix" else (lambda a: np.ma.masked_array(a, mask=a > 0))
    args = {"weight": w2, "grad": np.ones_like(w2), "state": state2}
    if role == "state":
        args["state"] = mxopt.State("SGD", 1, ("mom",), (wrap(state2.mom),))
    else:
        args[role] = wrap(args[role])
    before = snapshot(opt, w2, state2)
    with pytest.raises(TypeError, match=f"{role if role != 'state' else 'mom'}.*plain NumPy array"):
        opt.update(1, args["weight"], args["grad"], args["state"])
    assert_unchanged(before, opt, w2, state2)


def test_state_with_too_few_or_too_many_arrays():
    opt, w, state = _fresh_sgd()
    few = copy.copy(state)
    few.arrays = ()
    before = snapshot(opt, w, state)
    with pytest.raises(ValueError, match="state"):
        opt.update(0, w, np.ones_like(w), few)
    with pytest.raises(ValueError, match="State"):
        mxopt.State("SGD", 0, ("mom",), ())
    many = mxopt.State("SGD", 0, ("mom", "extra"), (state.mom, np.zeros_like(w)))
    with pytest.raises(ValueError, match="state"):
        opt.update(0, w, np.ones_like(w), many)
    assert_unchanged(before, opt, w, state)
