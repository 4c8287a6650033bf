"""FTML (follow the moving leader).

* MXNet 1.9.1's recorded trajectories: 0 ULP (float32, CPU), every weight and state;
* the float32 kernel against a float32 transcription of MXNet's ``FTMLKernel`` at 0 ULP
  over hyperparameters and step counts the recordings do not cover (up to t = 508, where
  ``powf(β, t)`` and a rounded double ``pow`` part);
* the float64 kernel against Zheng & Kwok's Algorithm 1 in float64 (tests/reference.py),
  and the identity the chapter derives (``z_t = −d_t·w_t``, so each step is
  ``(1 − β₁)·g̃_t/d_{t+1}``);
* mxopt's limits where MXNet returns NaN, bad input, multi-precision, checkpoints and
  the CUDA kernel (simulator or GPU).
"""
import ctypes
import ctypes.util
import math

import numpy as np
import pytest

import mxopt
from mxopt.optimizers.ftml import FTML, ftml

from conftest import golden_index
from reference import ftml as ftml_reference
from reference import ftml_mxnet_f32
from test_golden import replay, ulp_difference

CASES = [c for c in golden_index()["optimizer_cases"] if c["optimizer"] == "ftml"]
STATE = ("d", "v", "z")


def run(kwargs, w0, grads, dtype=None, index=0):
    """mxopt's weights after every step, the optimizer and the state."""
    opt = mxopt.create("ftml", **kwargs)
    w = w0.copy() if dtype is None else w0.astype(dtype)
    state = opt.create_state(index, w)
    out = []
    for g in grads:
        opt.update(index, w, g.astype(w.dtype), state)
        out.append(w.copy())
    return out, opt, state


def _problem(seed, shape=(4, 5), steps=8, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(dtype),
            [(rng.standard_normal(shape) * 3).astype(dtype) for _ in range(steps)])


# -- MXNet's numbers --------------------------------------------------------------------------------
def test_every_case_is_here():
    assert [c["case"] for c in CASES] == ["ftml_default", "ftml_wd_rescale_clip"]
    assert all(c["state_names"] == list(STATE) and c["dtype"] == "float32" for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bit_for_bit_with_mxnet(case, record_property):
    """0 ULP in every weight and in d, v, z: MXNet's order of operations, float32 ``1 − β``,
    ``(1 − β₂)·(g̃·g̃)``, ``((1 − β₁ᵗ)/η)·(…)``, and the powers from ``powf``."""
    opt, state, pairs = replay(case)
    assert state.names == STATE
    worst = max(ulp_difference(got, want) for _, got, want in pairs)
    record_property("max_ulp", worst)
    for what, got, want in pairs:
        assert ulp_difference(got, want) == 0, f"{case['case']} {what}"


def powf(beta, t):
    """NumPy's float32 power: the C library's ``powf`` (checked below against libm itself)."""
    return float(np.float32(beta) ** np.float32(t))


def test_the_float32_powers_are_the_c_librarys_powf():
    """MXNet's kernel calls ``powf(β, (float)t)``. glibc's powf is not correctly rounded
    everywhere, so a double ``pow`` rounded to float32 is sometimes another number; at β₂ = 0.9999,
    t = 508 that changes ``1 − β₂ᵗ`` and so ``d`` (the recordings stop at t = 6). 508 steps there
    equal the float32 transcription of MXNet's kernel, powers from powf, at 0 ULP, d included."""
    b1, b2, t_apart = 0.95, 0.9999, 508
    assert powf(b2, t_apart) != float(np.float32(math.pow(float(np.float32(b2)), t_apart)))
    libm = ctypes.util.find_library("m")
    if libm is not None:
        c_powf = ctypes.CDLL(libm).powf
        c_powf.restype, c_powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
        for beta in (b1, b2):
            assert all(powf(beta, t) == c_powf(float(np.float32(beta)), float(t)) for t in range(1, t_apart + 1))
    rng = np.random.default_rng(4)
    w0 = rng.standard_normal(6).astype(np.float32)
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(t_apart)]
    ours, _, state = run({"learning_rate": 0.01, "beta1": b1, "beta2": b2}, w0, grads)
    w, ref = w0, {n: np.zeros_like(w0) for n in STATE}
    for t, (g, got) in enumerate(zip(grads, ours), start=1):
        w, ref = ftml_mxnet_f32(w, g, ref, t, 0.01, beta1=b1, beta2=b2)
        assert ulp_difference(got, w) == 0, f"step {t}"
    np.testing.assert_array_equal(state["d"], ref["d"])
    # the same d from a rounded double pow: another number in some element
    f32 = np.float32
    rounded = f32(math.pow(float(f32(b2)), t_apart))
    d_rounded = (f32(1) - f32(b1) ** f32(t_apart)) / f32(0.01) * (np.sqrt(ref["v"] / (f32(1) - rounded)) + f32(1e-8))
    assert not np.array_equal(d_rounded, ref["d"])


HYPER_F32 = [{"learning_rate": 0.01}, {"learning_rate": 0.1, "beta1": 0.9, "beta2": 0.95, "wd": 0.01},
             {"learning_rate": 0.003, "beta1": 0.5, "beta2": 0.99, "epsilon": 1e-6, "rescale_grad": 1 / 3,
              "clip_gradient": 1.0},
             {"learning_rate": 0.05, "beta1": 0.0, "beta2": 0.999, "epsilon": 0.0, "wd": 0.3, "rescale_grad": 7.0}]


@pytest.mark.parametrize("kwargs", HYPER_F32, ids=range(len(HYPER_F32)))
def test_float32_kernel_is_mxnets_bit_for_bit(kwargs):
    """0 ULP at every step up to t = 64 against ``FTMLKernel`` transcribed in float32."""
    w0, grads = _problem(3, steps=64, dtype=np.float32)
    ours, _, state = run(kwargs, w0, grads)
    lr = kwargs["learning_rate"]
    hyper = {k: v for k, v in kwargs.items() if k != "learning_rate"}
    w, ref = w0.copy(), {n: np.zeros_like(w0) for n in STATE}
    for t, (g, got) in enumerate(zip(grads, ours), start=1):
        w, ref = ftml_mxnet_f32(w, g, ref, t, lr, **hyper)
        assert ulp_difference(got, w) == 0, f"step {t}"
    for n in STATE:
        assert ulp_difference(np.asarray(state[n]), ref[n]) == 0, n


# -- the equations --------------------------------------------------------------------------------------
SETTINGS = [{"learning_rate": 0.01}, {"learning_rate": 0.2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-6},
            {"learning_rate": 0.05, "wd": 0.1, "rescale_grad": 0.5, "clip_gradient": 0.8}]


@pytest.mark.parametrize("kwargs", SETTINGS, ids=range(len(SETTINGS)))
def test_float64_kernel_matches_algorithm_1(kwargs):
    """The float64 kernel is Zheng & Kwok's Algorithm 1 (no projection) to 1e-12."""
    w0, grads = _problem(5)
    ours, _, state = run(kwargs, w0, grads)
    lr = kwargs["learning_rate"]
    hyper = {k: v for k, v in kwargs.items() if k != "learning_rate"}
    w, ref = w0, {n: np.zeros_like(w0) for n in STATE}
    for t, (g, got) in enumerate(zip(grads, ours), start=1):
        w, ref = ftml_reference(w, g, ref, t, lr, **hyper)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14, err_msg=f"step {t}")
    for n in STATE:
        np.testing.assert_allclose(state[n], ref[n], rtol=1e-12, atol=1e-14, err_msg=n)


def test_float32_kernel_is_close_to_the_float64_equation():
    w0, grads = _problem(6, dtype=np.float32)
    ours, _, _ = run({"learning_rate": 0.05, "wd": 0.01}, w0, grads)
    w, ref = w0.astype(np.float64), {n: np.zeros(w0.shape) for n in STATE}
    for t, (g, got) in enumerate(zip(grads, ours), start=1):
        w, ref = ftml_reference(w, g.astype(np.float64), ref, t, 0.05, wd=0.01, beta1=float(np.float32(0.6)),
                                beta2=float(np.float32(0.999)), epsilon=float(np.float32(1e-8)))
        np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-6, err_msg=f"step {t}")


def test_z_is_minus_d_times_w_so_the_step_is_one_gradient_over_d():
    """After every update ``z_t = −d_t·w_t``; so ``w_{t+1} = w_t − (1 − β₁)·g̃_t/d_{t+1}``
    (float64, 1e-12), with a schedule and weight decay."""
    sched = mxopt.lr_scheduler.FactorScheduler(step=3, factor=0.5, base_lr=0.1)
    opt = mxopt.FTML(lr_scheduler=sched, wd=0.01, beta1=0.7)
    w0, grads = _problem(8, steps=10)
    w = w0.copy()
    state = opt.create_state(0, w)
    for g in grads:
        before = w.copy()
        g_tilde = g + 0.01 * before
        opt.update(0, w, g, state)
        np.testing.assert_allclose(state["z"], -state["d"] * w, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(w, before - (1 - 0.7) * g_tilde / state["d"], rtol=1e-12, atol=1e-13)


def test_rule_is_plain_python_on_floats():
    """The guide calls the rule on Python floats: one step from zero state is −η·g̃/(|g̃| + ε·…)."""
    w, d, v, z = ftml(0.5, 2.0, 0.0, 0.0, 0.0, 0.1, 0.6, 0.999, 1e-8, 1.0, 0.0, 1.0, math.inf)
    assert all(isinstance(x, float) for x in (w, d, v, z))
    assert v == pytest.approx(0.004) and d == pytest.approx(0.4 / 0.1 * (2.0 + 1e-8))
    assert w == pytest.approx(0.5 - 0.4 * 2.0 / d) and z == pytest.approx(-d * w)


# -- where MXNet returns NaN --------------------------------------------------------------------------
def test_no_step_where_the_learning_rate_is_zero():
    """η = 0 (here by ``lr_mult``) makes MXNet's d infinite and its weight ∞/∞ = NaN; the limit
    of the step (1 − β₁)·g̃/d is 0: mxopt leaves w, d, z as they are and still updates v, so
    the parameter resumes exactly where it would (z = −d·w still holds)."""
    opt = mxopt.FTML(learning_rate=0.1)
    opt.set_lr_mult({0: 0.0})
    w0, grads = _problem(9, steps=3)
    w = w0.copy()
    state = opt.create_state(0, w)
    opt.update(0, w, grads[0], state)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(state["d"], 0)
    np.testing.assert_allclose(state["v"], 0.001 * grads[0] ** 2)
    opt.set_lr_mult({0: 1.0})
    opt.update(0, w, grads[1], state)
    assert np.isfinite(w).all()
    np.testing.assert_allclose(state["z"], -state["d"] * w, rtol=1e-12)
    np.testing.assert_allclose(w, w0 - 0.4 * grads[1] / state["d"], rtol=1e-12)


def test_no_step_for_a_coordinate_without_gradient_when_epsilon_is_zero():
    """ε = 0 and a coordinate whose gradient has been 0: d = 0 and MXNet's step 0/0 = NaN."""
    opt = mxopt.FTML(learning_rate=0.1, epsilon=0.0)
    w = np.array([1.0, 2.0], np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([0.0, 0.5], np.float32), state)
    assert w[0] == 1.0 and np.isfinite(w).all() and w[1] == pytest.approx(1.9)


def test_an_infinite_gradient_is_not_hidden():
    """The limit is taken only where v is finite: an infinite gradient still gives NaN, as in MXNet,
    instead of freezing the weight."""
    opt = mxopt.FTML(learning_rate=0.1)
    w = np.ones(2, np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.array([np.inf, 1.0], np.float32), state)
    assert np.isnan(w[0]) and np.isfinite(w[1])


# -- API, bad input --------------------------------------------------------------------------------------
def test_created_by_name_with_mxnets_defaults_and_order():
    opt = mxopt.create("ftml")
    assert isinstance(opt, FTML) and mxopt.FTML is FTML
    assert (opt.learning_rate, opt.beta1, opt.beta2, opt.epsilon, opt.wd) == (0.01, 0.6, 0.999, 1e-8, 0.0)
    assert FTML(0.5, 0.9, 1e-6).beta1 == 0.5 and FTML(0.5, 0.9, 1e-6).epsilon == 1e-6  # MXNet's positional order
    assert opt.create_state(0, np.zeros(3, np.float32)).names == STATE


@pytest.mark.parametrize("kwargs, error, match", [
    ({"beta1": 1.0}, ValueError, "beta1"), ({"beta1": -0.1}, ValueError, "beta1"),
    ({"beta2": 1.5}, ValueError, "beta2"), ({"beta2": "0.9"}, TypeError, "beta2"),
    ({"epsilon": -1e-8}, ValueError, "epsilon"), ({"epsilon": float("nan")}, ValueError, "epsilon"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"), ({"wd": -1.0}, ValueError, "wd"),
    ({"clip_gradient": 0.0}, ValueError, "clip_gradient")])
def test_bad_hyperparameters_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        FTML(**kwargs)


def test_a_failed_update_changes_nothing():
    opt = FTML(learning_rate=0.1)
    w = np.ones((2, 3), np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.full((2, 3), 0.5, np.float32), state)
    other = np.ones(4, np.float32)
    other_state = opt.create_state(1, other)

    def frozen():
        return ([w.copy(), other.copy()] + [np.asarray(a).copy() for a in (*state, *other_state)],
                opt.num_update, dict(opt._index_update_count))

    before = frozen()
    calls = [lambda: opt.update(0, w, np.ones(5, np.float32), state),                   # grad shape
             lambda: opt.update(0, w, np.ones((2, 3), np.float64), state),              # grad dtype
             lambda: opt.update(0, w, np.ones((2, 3), np.float32), other_state),        # another index's state
             lambda: opt.update(0, w, np.ones((2, 3), np.float32), mxopt.Adam().create_state(0, w)),
             lambda: opt.update([0, 1], [w, other], [np.ones((2, 3), np.float32), np.ones(3, np.float32)],
                                [state, other_state])]                                 # second parameter bad
    for call in calls:
        with pytest.raises((TypeError, ValueError)):
            call()
        after = frozen()
        for a, b in zip(before[0], after[0]):
            np.testing.assert_array_equal(a, b)
        assert before[1:] == after[1:]
    with pytest.raises(ValueError, match="rounds to 0 in float32"):
        FTML(learning_rate=1e-50).update(0, w, np.ones((2, 3), np.float32), FTML().create_state(0, w))
    np.testing.assert_array_equal(w, before[0][0])


def test_multi_precision_updates_the_float32_master():
    rng = np.random.default_rng(7)
    w16 = rng.standard_normal(40).astype(np.float16)
    grads16 = [rng.standard_normal(40).astype(np.float16) for _ in range(6)]
    ours, _, state = run({"learning_rate": 0.05, "multi_precision": True, "wd": 0.01}, w16, grads16)
    f32, _, _ = run({"learning_rate": 0.05, "wd": 0.01}, w16.astype(np.float32), [g.astype(np.float32) for g in grads16])
    assert state.names == STATE + ("weight32",)
    np.testing.assert_array_equal(state["weight32"], f32[-1])
    for a, b in zip(ours, f32):
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b.astype(np.float16))
    with pytest.raises(TypeError, match="multi_precision"):
        FTML().create_state(0, np.zeros(3, np.float16))


def test_checkpoint_resumes_bit_for_bit():
    w0, grads = _problem(10, dtype=np.float32)
    whole = mxopt.get_updater(FTML(learning_rate=0.05))
    w = w0.copy()
    for g in grads:
        whole(0, g, w)
    first = mxopt.get_updater(FTML(learning_rate=0.05))
    v = w0.copy()
    for g in grads[:3]:
        first(0, g, v)
    second = mxopt.get_updater(FTML(learning_rate=0.05))
    second.set_states(first.get_states())
    for g in grads[3:]:
        second(0, g, v)
    np.testing.assert_array_equal(v, w)


# -- CUDA (simulator or GPU) ---------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("kwargs", [{"learning_rate": 0.05},
                                    {"learning_rate": 0.05, "beta1": 0.9, "wd": 0.01, "clip_gradient": 0.5,
                                     "rescale_grad": 2.0},
                                    {"learning_rate": 0.05, "epsilon": 0.0}], ids=range(3))
def test_cuda_matches_cpu(kwargs):
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    w0, grads = _problem(11, shape=(3, 5), steps=4, dtype=np.float32)
    grads[0][0, 0] = 0.0   # with ε = 0: the no-step branch on both targets
    cpu, _, cpu_state = run(kwargs, w0, grads)
    opt = mxopt.create("ftml", **kwargs)
    w = cuda.to_device(w0)
    state = opt.create_state(0, w)
    for g in grads:
        opt.update(0, w, cuda.to_device(g), state)
    np.testing.assert_allclose(w.copy_to_host(), cpu[-1], rtol=1e-6, atol=1e-7)
    for a, b in zip(state, cpu_state):
        np.testing.assert_allclose(a.copy_to_host(), b, rtol=1e-6, atol=1e-7)
