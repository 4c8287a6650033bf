"""FTRL-Proximal (mxopt.Ftrl).

* MXNet 1.9.1's three recorded float32 trajectories: bit for bit, signed zeros included;
* the compiled CPU kernel against an independent float64 transcription of McMahan et
  al.'s Algorithm 1 and, bit for bit, against a float32 transcription of MXNet's
  ``FtrlKernel`` (tests/reference.py), over random hyperparameters;
* exact zeros where |z| <= lamda1; online gradient descent with AdaGrad's rates when
  lamda1 = wd = 0 (McMahan 2011);
* where mxopt departs from MXNet on purpose (eta = 0, the 0/0 corner, the learning rate
  given with a scheduler), bad input (nothing changes), float16 with a master copy, and
  the CUDA kernel (simulator or GPU) against the CPU.
"""
import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxopt
from mxopt import lr_scheduler
from mxopt.optimizers import ftrl as ftrl_module

from conftest import golden_index, load_case
from reference import ftrl as ftrl_reference
from reference import ftrl_mxnet_f32
from test_golden import replay, ulp_difference

CASES = [c for c in golden_index()["optimizer_cases"] if c["optimizer"] == "ftrl"]
HYPER = dict(
    lr=st.sampled_from([1e-3, 0.05, 0.1, 0.5, 2.0]),
    lamda1=st.sampled_from([0.0, 0.01, 0.3, 1.0]),
    beta=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    wd=st.sampled_from([0.0, 1e-4, 0.01, 0.3]),
    rescale_grad=st.sampled_from([1.0, 0.5, 1 / 100, 1 / 3, 7.0]),
    clip_gradient=st.sampled_from([None, 0.1, 1.0, 10.0]),
)
SHAPES = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


def bits(a):
    a = np.asarray(a)
    return a.view({4: np.uint32, 8: np.uint64, 2: np.uint16}[a.dtype.itemsize])


def trajectory(opt, w, grads, index=0):
    state = opt.create_state(index, w)
    out = []
    for g in grads:
        opt.update(index, w, g, state)
        out.append(w.copy())
    return out, state


def snapshot(opt, w, state):
    return (opt.num_update, dict(opt._index_update_count), w.copy(), [a.copy() for a in state.arrays])


def assert_unchanged(before, opt, w, state):
    num_update, counts, w0, arrays = before
    assert opt.num_update == num_update and opt._index_update_count == counts
    assert np.array_equal(bits(w), bits(w0))
    for a, b in zip(state.arrays, arrays):
        assert np.array_equal(bits(a), bits(b))


# -- MXNet's numbers -------------------------------------------------------------------------------
def test_every_golden_case_is_here():
    assert sorted(c["case"] for c in CASES) == ["ftrl_default", "ftrl_l1_wd_beta", "ftrl_rescale_clip"]
    assert all(c["dtype"] == "float32" for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_golden_case_is_mxnets_bit_for_bit_signed_zeros_included(case):
    """0 ULP in every weight and in z and n; and every bit equal, so the zeros carry MXNet's signs."""
    opt, state, pairs = replay(case)
    assert state.names == ("z", "n")
    assert max(ulp_difference(got, want) for _, got, want in pairs) == 0
    for what, got, want in pairs:
        assert np.array_equal(bits(got), bits(want)), what
    if case["case"] == "ftrl_l1_wd_beta":  # lamda1 = 0.5: some weights are exact zeros, of both signs
        weights = np.stack([want for what, _, want in pairs if what.startswith("weight")])
        zeros = weights[weights == 0]
        assert zeros.size >= 5 and np.signbit(zeros).any() and not np.signbit(zeros).all()


def test_defaults_and_arguments_are_mxnets():
    opt = mxopt.create("ftrl")
    assert type(opt) is mxopt.Ftrl and mxopt.opt_registry["ftrl"] is mxopt.Ftrl
    assert (opt.lamda1, opt.learning_rate, opt.beta, opt.wd) == (0.01, 0.1, 1.0, 0.0)
    positional = mxopt.Ftrl(0.2, 0.3, 0.4)  # MXNet's order: lamda1, learning_rate, beta
    assert (positional.lamda1, positional.learning_rate, positional.beta) == (0.2, 0.3, 0.4)
    assert opt.create_state(0, np.zeros(3, np.float32)).names == ("z", "n")


# -- the kernel against transcriptions ---------------------------------------------------------------
def _run_both(reference, hyper, shape, seed, dtype, steps=5):
    rng = np.random.default_rng(seed)
    kwargs = dict(hyper)
    lr = kwargs.pop("lr")
    w0 = rng.standard_normal(shape).astype(dtype)
    grads = [(rng.standard_normal(shape) * 3 * (rng.random(shape) < 0.8)).astype(dtype) for _ in range(steps)]
    opt = mxopt.Ftrl(learning_rate=lr, **kwargs)
    w = w0.copy()
    state = opt.create_state(0, w)
    ref_w, ref_s = w0.copy(), {"z": np.zeros(shape, dtype), "n": np.zeros(shape, dtype)}
    for t, g in enumerate(grads, start=1):
        opt.update(0, w, g, state)
        ref_w, ref_s = reference(ref_w, g, ref_s, t, lr, **kwargs)
        yield t, w, state, ref_w, ref_s


@settings(max_examples=40, deadline=None, derandomize=True)
@given(hyper=st.fixed_dictionaries(HYPER), shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_float64_kernel_is_the_equation(hyper, shape, seed):
    for t, w, state, ref_w, ref_s in _run_both(ftrl_reference, hyper, shape, seed, np.float64):
        np.testing.assert_allclose(w, ref_w, rtol=1e-11, atol=1e-13, err_msg=f"step {t}")
        np.testing.assert_array_equal(w == 0, ref_w == 0)
        for name in ("z", "n"):
            np.testing.assert_allclose(state[name], ref_s[name], rtol=1e-11, atol=1e-12, err_msg=name)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(hyper=st.fixed_dictionaries(HYPER), shape=SHAPES, seed=st.integers(0, 2**32 - 1))
def test_float32_kernel_is_mxnets_bit_for_bit(hyper, shape, seed):
    if hyper["beta"] == 0 and hyper["wd"] == 0:
        hyper = dict(hyper, beta=0.5)  # MXNet's 0/0 corner, where mxopt departs (tested below)
    for t, w, state, ref_w, ref_s in _run_both(ftrl_mxnet_f32, hyper, shape, seed, np.float32):
        assert np.array_equal(bits(w), bits(ref_w)), f"step {t}: {ulp_difference(w, ref_w)} ULP"
        for name in ("z", "n"):
            assert np.array_equal(bits(state[name]), bits(ref_s[name])), name


def test_rule_is_plain_python_on_floats():
    rng = np.random.default_rng(5)
    for _ in range(200):
        w, g, z = rng.standard_normal(3)
        n = abs(rng.standard_normal()) * 3
        lr, lamda1, beta, wd = 0.2, 0.3, 1.0, 0.01
        got = ftrl_module.ftrl(w, g, z, n, lr, lamda1, beta, wd, 1.0, math.inf)
        ref_w, ref_s = ftrl_reference(np.array(w), np.array(g), {"z": np.array(z), "n": np.array(n)}, 1, lr,
                                      wd=wd, lamda1=lamda1, beta=beta)
        assert got == pytest.approx((float(ref_w), float(ref_s["z"]), float(ref_s["n"])), rel=1e-13, abs=1e-15)


def test_exact_zeros_exactly_where_z_is_within_lamda1():
    rng = np.random.default_rng(11)
    opt = mxopt.Ftrl(learning_rate=0.5, lamda1=0.4, wd=0.01)
    w = np.zeros(5000, np.float32)
    state = opt.create_state(0, w)
    for _ in range(10):
        opt.update(0, w, (rng.standard_normal(5000) * (rng.random(5000) < 0.3)).astype(np.float32), state)
        inside = np.abs(state.z) <= opt.lamda1
        assert np.array_equal(w == 0, inside) and 0.05 < inside.mean() < 0.95
        # the zero's sign is that of sgn(z)·lamda1 − z, as MXNet's product with 0 gives it
        assert np.array_equal(np.signbit(w[inside]), (np.sign(state.z) * np.float32(0.4) - state.z)[inside] < 0)


def test_online_gradient_descent_when_lamda1_is_zero():
    """McMahan (2011): with lamda1 = wd = 0, z_t = −w_t·(β + √n_t)/η holds after every update when it holds
    at the start (w₀ = 0, or β = 0), so w_{t+1} = w_t − η·g̃_t/(β + √n_{t+1})."""
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(50) * 10.0 ** rng.uniform(-2, 1, 50) for _ in range(200)]
    w_ftrl, _ = trajectory(mxopt.Ftrl(learning_rate=0.3, lamda1=0.0, beta=1.0), np.zeros(50), grads)
    w, n = np.zeros(50), np.zeros(50)
    for g, got in zip(grads, w_ftrl):
        n = n + g * g
        w = w - 0.3 * g / (1.0 + np.sqrt(n))
        np.testing.assert_allclose(got, w, rtol=1e-11, atol=1e-14)
    # beta = 0: AdaGrad with eps = 0, from any start
    w0 = rng.standard_normal(50)
    w_ftrl, _ = trajectory(mxopt.Ftrl(learning_rate=0.3, lamda1=0.0, beta=0.0), w0.copy(), grads)
    w_ada, _ = trajectory(mxopt.AdaGrad(learning_rate=0.3, eps=0.0), w0.copy(), grads)
    np.testing.assert_allclose(w_ftrl, w_ada, rtol=1e-11, atol=1e-14)
    # beta > 0 and w0 != 0: the β/η term pulls towards 0, not towards w0: the first step differs
    w_beta, _ = trajectory(mxopt.Ftrl(learning_rate=0.3, lamda1=0.0, beta=1.0), w0.copy(), grads[:1])
    expected = w0 * np.abs(grads[0]) / (1 + np.abs(grads[0])) - 0.3 * grads[0] / (1 + np.abs(grads[0]))
    np.testing.assert_allclose(w_beta[0], expected, rtol=1e-12)


# -- where mxopt departs from MXNet on purpose ---------------------------------------------------------
def test_zero_learning_rate_is_no_step_where_mxnet_writes_nan():
    rng = np.random.default_rng(4)
    w = rng.standard_normal(20).astype(np.float32)
    g = rng.standard_normal(20).astype(np.float32)
    opt = mxopt.Ftrl(learning_rate=0.1)
    opt.set_lr_mult({0: 0.0})
    state = opt.create_state(0, w)
    for _ in range(2):  # η = lr · lr_mult = 0: counted, but w, z and n stay as they were
        before = snapshot(opt, w, state)
        opt.update(0, w, g, state)
        assert opt.num_update == before[0] + 1
        assert np.array_equal(w, before[2]) and all(np.array_equal(a, b) for a, b in zip(state.arrays, before[3]))
    moved = w.copy()
    opt.update(1, moved, g, opt.create_state(1, moved))  # index 1 has no multiplier: it moves
    assert not np.array_equal(moved, w)
    mx_w, _ = ftrl_mxnet_f32(w, g, {"z": state.z, "n": state.n}, 1, 0.0)
    assert np.isnan(mx_w).all()


def test_beta_zero_without_gradient_is_zero_not_nan():
    opt = mxopt.Ftrl(learning_rate=0.1, beta=0.0)
    w = np.array([0.5, 0.5], np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([0.0, 1.0], np.float32), state)
    assert w[0] == 0 and np.isfinite(w).all()
    mx_w, _ = ftrl_mxnet_f32(np.array([0.5, 0.5], np.float32), np.array([0.0, 1.0], np.float32),
                             {"z": np.zeros(2, np.float32), "n": np.zeros(2, np.float32)}, 1, 0.1, beta=0.0)
    assert np.isnan(mx_w[0]) and mx_w[1] == w[1]


def test_a_learning_rate_that_contradicts_the_scheduler_is_refused():
    """MXNet 1.9.1's Ftrl would use the scheduler and ignore learning_rate (no note); its other optimizers
    overwrite the scheduler's base_lr. mxopt refuses both readings and leaves the scheduler alone."""
    sched = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.2)
    with pytest.raises(ValueError, match="base_lr"):
        mxopt.Ftrl(learning_rate=0.5, lr_scheduler=sched)
    assert sched.base_lr == 0.2
    opt = mxopt.Ftrl(lr_scheduler=sched)  # without learning_rate, the scheduler's rates: MXNet's too
    w = np.zeros(3, np.float32)
    state = opt.create_state(0, w)
    rates = []
    for _ in range(5):
        opt.update(0, w, np.ones(3, np.float32), state)
        rates.append(opt.learning_rate)
    assert rates == [0.2, 0.2, 0.1, 0.1, 0.05]
    assert mxopt.Ftrl(learning_rate=0.2, lr_scheduler=sched).learning_rate == 0.2  # agreeing: fine


# -- bad input changes nothing -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc", [
    ({"lamda1": -0.1}, ValueError), ({"lamda1": float("nan")}, ValueError), ({"lamda1": float("inf")}, ValueError),
    ({"lamda1": "0.1"}, TypeError), ({"beta": -1.0}, ValueError), ({"beta": None}, TypeError),
    ({"beta": 10 ** 400}, ValueError), ({"learning_rate": -0.1}, ValueError), ({"wd": -1e-3}, ValueError),
    ({"clip_gradient": 0}, ValueError),
])
def test_out_of_range_hyperparameters_are_named(kwargs, exc):
    name = next(iter(kwargs))
    with pytest.raises(exc, match=name):
        mxopt.Ftrl(**kwargs)


def test_bad_assignment_keeps_the_old_value():
    opt = mxopt.Ftrl(lamda1=0.2, beta=0.5)
    for attr, value in (("lamda1", -1.0), ("beta", float("nan"))):
        with pytest.raises(ValueError, match=attr):
            setattr(opt, attr, value)
    assert (opt.lamda1, opt.beta) == (0.2, 0.5)


def _forged_states(state, w):
    z, n = state.arrays
    yield "wrong optimizer", mxopt.Adam().create_state(0, w), (ValueError, "created by Adam")
    yield "wrong index", mxopt.Ftrl().create_state(1, w), (ValueError, "index 1")
    yield "short z", mxopt.State("Ftrl", 0, ("z", "n"), (z[:-1].copy(), n), {}), (ValueError, "shape")
    yield "float64 n", mxopt.State("Ftrl", 0, ("z", "n"), (z, n.astype(np.float64)), {}), (TypeError, "dtype")
    yield "n is the weight", mxopt.State("Ftrl", 0, ("z", "n"), (z, w), {}), (ValueError, "shares memory")
    yield "None", None, (TypeError, "State")


def test_bad_updates_change_nothing():
    rng = np.random.default_rng(6)
    opt = mxopt.Ftrl(learning_rate=0.1, lamda1=0.05)
    w = rng.standard_normal(8).astype(np.float32)
    state = opt.create_state(0, w)
    g = rng.standard_normal(8).astype(np.float32)
    opt.update(0, w, g, state)  # non-trivial counters and state
    before = snapshot(opt, w, state)
    for label, bad_state, (exc, word) in _forged_states(state, w):
        with pytest.raises(exc, match=word):
            opt.update(0, w, g, bad_state)
        assert_unchanged(before, opt, w, state)
    for bad_grad, (exc, word) in ((g[:-1], (ValueError, "shape")), (g.astype(np.float64), (TypeError, "dtype")),
                                  (list(g), (TypeError, "grad")), (w, (ValueError, "shares memory"))):
        with pytest.raises(exc, match=word):
            opt.update(0, w, bad_grad, state)
        assert_unchanged(before, opt, w, state)
    # a schedule that returns a bad rate, checked before anything changes
    bad = mxopt.Ftrl(lr_scheduler=lambda t: -0.1 if t > 1 else 0.1)
    w2 = w.copy()
    s2 = bad.create_state(0, w2)
    bad.update(0, w2, g, s2)
    before = snapshot(bad, w2, s2)
    with pytest.raises(ValueError, match="lr_scheduler"):
        bad.update(0, w2, g, s2)
    assert_unchanged(before, bad, w2, s2)


def test_float16_needs_and_uses_a_float32_master_copy():
    rng = np.random.default_rng(8)
    w16 = rng.standard_normal(30).astype(np.float16)
    grads = [rng.standard_normal(30).astype(np.float16) for _ in range(4)]
    with pytest.raises(TypeError, match="multi_precision"):
        mxopt.Ftrl().create_state(0, w16)
    opt = mxopt.Ftrl(learning_rate=0.2, lamda1=0.3, multi_precision=True)
    state = opt.create_state(0, w16)
    assert state.names == ("z", "n", "weight32") and state.z.dtype == np.float32
    w32 = w16.astype(np.float32)
    ref = mxopt.Ftrl(learning_rate=0.2, lamda1=0.3)
    ref_state = ref.create_state(0, w32)
    for g in grads:
        opt.update(0, w16, g, state)
        ref.update(0, w32, g.astype(np.float32), ref_state)
        assert np.array_equal(bits(state.weight32), bits(w32))
        assert np.array_equal(w16, w32.astype(np.float16))
    assert (w16 == 0).any()


def test_state_survives_a_checkpoint_mid_run():
    rng = np.random.default_rng(9)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(6)]
    up = mxopt.get_updater(mxopt.Ftrl(learning_rate=0.3, lamda1=0.2, wd=0.01))
    w = np.zeros(6, np.float32)
    for g in grads[:3]:
        up(0, g, w)
    fresh = mxopt.get_updater(mxopt.Ftrl())
    fresh.set_states(up.get_states(dump_optimizer=True))
    w2 = w.copy()
    for g in grads[3:]:
        up(0, g, w)
        fresh(0, g, w2)
    assert np.array_equal(bits(w), bits(w2)) and fresh.optimizer.lamda1 == 0.2


# -- CUDA --------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_cuda_matches_cpu(dtype):
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(10)
    w0 = rng.standard_normal((3, 5)).astype(dtype)
    grads = [(rng.standard_normal((3, 5)) * (rng.random((3, 5)) < 0.7)).astype(dtype) for _ in range(3)]
    kwargs = dict(learning_rate=0.3, lamda1=0.2, beta=0.5, wd=0.01, rescale_grad=0.5, clip_gradient=1.0,
                  multi_precision=dtype == np.float16)
    cpu = mxopt.Ftrl(**kwargs)
    w_cpu = w0.copy()
    s_cpu = cpu.create_state(0, w_cpu)
    gpu = mxopt.Ftrl(**kwargs)
    w_gpu = cuda.to_device(w0)
    s_gpu = gpu.create_state(0, w_gpu)
    for g in grads:
        cpu.update(0, w_cpu, g, s_cpu)
        gpu.update(0, w_gpu, cuda.to_device(g), s_gpu)
    got = w_gpu.copy_to_host()
    # the simulator computes with Python floats, and a GPU may fuse a·b + c: a few ULP, the zeros the same
    rtol = {np.float32: 1e-5, np.float64: 1e-13, np.float16: 1e-3}[dtype]
    np.testing.assert_allclose(got, w_cpu, rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(got == 0, w_cpu == 0)
    assert (w_cpu == 0).any() and (w_cpu != 0).any()
    for name in s_cpu.names:
        np.testing.assert_allclose(s_gpu[name].copy_to_host(), s_cpu[name], rtol=1e-5, atol=1e-6, err_msg=name)
