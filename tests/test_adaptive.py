"""The adaptive family: AdaGrad, RMSProp (plain and centered), AdaDelta, Adamax,
Nadam, AMSGrad and AdamW.

* MXNet 1.9.1's recorded trajectories at 0 ULP (float32, CPU), and the
  ``adamw_update`` op cases;
* each compiled rule against an independent float64 NumPy transcription of its
  equation (written here from the papers and the semantics file, whole-array,
  not from mxopt's rules);
* the places where mxopt departs from MXNet on purpose, multi-precision, the
  CUDA path (simulator or GPU), bad hyperparameters and creation by name.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxopt
from mxopt import _checks, _engine, momentum_scheduler
from mxopt.optimizers import AdaDelta, AdaGrad, Adamax, AdamW, AMSGrad, Nadam, RMSProp
from mxopt.optimizers.adamw import ADAMW_RULE

from conftest import golden_index, load_case
from test_golden import replay, ulp_difference

INDEX = golden_index()
MXNET_NAMES = ("adagrad", "rmsprop", "adadelta", "adamax", "nadam")
GOLDEN = [c for c in INDEX["optimizer_cases"] if c["optimizer"] in MXNET_NAMES]
ADAMW_OPS = [c for c in INDEX["op_cases"] if c["case"].startswith("adamw")]
CLASSES = {"adagrad": AdaGrad, "rmsprop": RMSProp, "adadelta": AdaDelta, "adamax": Adamax,
           "nadam": Nadam, "amsgrad": AMSGrad, "adamw": AdamW}


# -- MXNet's numbers ---------------------------------------------------------------
def test_every_adaptive_mxnet_optimizer_has_cases():
    assert {c["optimizer"] for c in GOLDEN} == set(MXNET_NAMES) and len(GOLDEN) == 15
    assert {c["case"] for c in ADAMW_OPS} == {"adamw_basic", "adamw_eta_clip", "adamw_skip_nonfinite",
                                             "adamw_mp_fp16"}


@pytest.mark.parametrize("case", GOLDEN, ids=[c["case"] for c in GOLDEN])
def test_bit_for_bit_with_mxnet(case):
    """0 ULP: the rules keep MXNet's association order, MXNet's Python-side scalars
    ((1 − ρ), (1 − β₁), Adamax's η/(1 − β₁ᵗ), Nadam's schedule terms) are computed in
    float64 on the host and rounded once, and C++'s ``1.f − γ`` stays float32."""
    _, _, pairs = replay(case)
    for what, got, want in pairs:
        assert ulp_difference(got, want) == 0, f"{case['case']} {what}"


def _op_scalars(params, rescale_grad):
    """The adamw_update op's arguments as the rule's per-step scalars (eta = η_t, lr = α)."""
    return {"eta": params["eta"], "alpha": params["lr"], "wd": params.get("wd", 0.0),
            "beta1": params.get("beta1", 0.9), "beta2": params.get("beta2", 0.999),
            "epsilon": params.get("epsilon", 1e-8), "rescale_grad": rescale_grad,
            "clip_gradient": params.get("clip_gradient", math.inf)}


def _skipped(rescale_grad):
    """MXNet's op skips the whole update when rescale_grad is 0 or not finite."""
    return not math.isfinite(rescale_grad) or rescale_grad == 0


@pytest.mark.parametrize("case", ADAMW_OPS, ids=[c["case"] for c in ADAMW_OPS])
def test_adamw_kernel_is_mxnets_adamw_update_op(case):
    """The AdamW rule is the op: run with the op's own (eta, lr, wd), 0 ULP, float16
    multi-precision (the rule updates the float32 master) included."""
    data, params = load_case(case), case["params"]
    w = data["w0"].copy()
    mean, var = np.zeros(w.shape, np.float32), np.zeros(w.shape, np.float32)
    master = w.astype(np.float32) if w.dtype == np.float16 else None
    for k, rs in enumerate(case["rescale_grad_per_step"]):
        if not _skipped(rs):
            args = _checks.step_scalars(_op_scalars(params, rs), ADAMW_RULE.scalar_names, np.float32,
                                        {"clip_gradient"})
            _engine.launch(ADAMW_RULE, w, data["grads"][k].copy(), (mean, var), args, master=master)
        assert ulp_difference(w, data["weights"][k]) == 0, f"weight after step {k + 1}"
    assert ulp_difference(mean, data["state__mean"]) == 0
    assert ulp_difference(var, data["state__var"]) == 0
    if master is not None:
        assert ulp_difference(master, data["state__weight32"]) == 0


@pytest.mark.parametrize("case", ADAMW_OPS, ids=[c["case"] for c in ADAMW_OPS])
def test_adamw_op_cases_through_the_class(case):
    """The op with (eta, lr=α, wd) is AdamW(correct_bias=False) with learning_rate = eta·α
    and wd = wd/α. 1 ULP is allowed in the weights: the op rounds eta·(α·d + wd·w), the
    class (α = 1, as MXNet 2.0's AdamW calls the op) rounds (eta·α)·(d + (wd/α)·w), the
    same number in exact arithmetic but another sequence of roundings. The moments do
    not depend on that split: 0 ULP.

    A step the op skips (rescale_grad 0, inf or NaN) is one mxopt refuses: setting such
    a rescale_grad raises and changes nothing, the caller skips the step, and the
    trajectory is MXNet's."""
    data, p = load_case(case), case["params"]
    w = data["w0"].copy()
    opt = AdamW(learning_rate=p["eta"] * p["lr"], wd=p["wd"] / p["lr"], beta1=p.get("beta1", 0.9),
                beta2=p.get("beta2", 0.999), epsilon=p.get("epsilon", 1e-8),
                clip_gradient=p.get("clip_gradient"), correct_bias=False,
                multi_precision=w.dtype == np.float16)
    state = opt.create_state(0, w)
    worst = 0
    for k, rs in enumerate(case["rescale_grad_per_step"]):
        if _skipped(rs):
            before = opt.rescale_grad
            with pytest.raises(ValueError, match="rescale_grad"):
                opt.rescale_grad = rs
            assert opt.rescale_grad == before
        else:
            opt.rescale_grad = rs
            opt.update(0, w, data["grads"][k].copy(), state)
        worst = max(worst, ulp_difference(w, data["weights"][k]))
    assert worst <= 1
    assert ulp_difference(state.mean, data["state__mean"]) == 0
    assert ulp_difference(state.var, data["state__var"]) == 0


# -- float64 transcriptions of the equations ------------------------------------------
def _clip(x, c):
    return x if c is None else np.clip(x, -c, c)


def ref_adagrad(w, g, s, t, lr, wd, rescale_grad, clip_gradient, eps):
    """Duchi et al. (2011), diagonal form; MXNet's ε inside the root and decay outside."""
    gt = _clip(rescale_grad * g, clip_gradient)
    h = s["history"] + gt ** 2
    return w - lr * (gt / np.sqrt(h + eps) + wd * w), {"history": h}


def ref_rmsprop(w, g, s, t, lr, wd, rescale_grad, clip_gradient, gamma1, gamma2, epsilon,
                clip_weights, centered):
    """Hinton's RMSProp, or Graves (2013) eqs. 38-45 when centered."""
    gt = _clip(rescale_grad * g + wd * w, clip_gradient)
    n = gamma1 * s["n"] + (1 - gamma1) * gt ** 2
    if not centered:
        return _clip(w - lr * gt / np.sqrt(n + epsilon), clip_weights), {"n": n}
    gbar = gamma1 * s["g"] + (1 - gamma1) * gt
    delta = gamma2 * s["delta"] - lr * gt / np.sqrt(n - gbar ** 2 + epsilon)
    return _clip(w + delta, clip_weights), {"n": n, "g": gbar, "delta": delta}


def ref_adadelta(w, g, s, t, lr, wd, rescale_grad, clip_gradient, rho, epsilon):
    """Zeiler (2012), Algorithm 1, with MXNet's decoupled decay; no learning rate."""
    gt = _clip(rescale_grad * g, clip_gradient)
    eg2 = rho * s["acc_g"] + (1 - rho) * gt ** 2
    dx = np.sqrt(s["acc_delta"] + epsilon) / np.sqrt(eg2 + epsilon) * gt
    edx2 = rho * s["acc_delta"] + (1 - rho) * dx ** 2
    return w - dx - wd * w, {"acc_g": eg2, "acc_delta": edx2}


def ref_adamax(w, g, s, t, lr, wd, rescale_grad, clip_gradient, beta1, beta2):
    """Kingma & Ba (2015), Algorithm 2; a coordinate with u = 0 does not move."""
    gt = _clip(rescale_grad * g + wd * w, clip_gradient)
    m = beta1 * s["m"] + (1 - beta1) * gt
    u = np.maximum(beta2 * s["u"], np.abs(gt))
    step = np.divide(lr / (1 - beta1 ** t) * m, u, out=np.zeros_like(u), where=u != 0)
    return w - step, {"m": m, "u": u}


def _mu(beta1, decay, t):
    return beta1 * (1 - 0.5 * 0.96 ** (t * decay))


def ref_nadam(w, g, s, t, lr, wd, rescale_grad, clip_gradient, beta1, beta2, epsilon, schedule_decay):
    """Dozat (2016) in MXNet's (Keras) form: a constant β₁ in m, the product of the
    schedule over updates 1..t in the corrections."""
    gt = _clip(rescale_grad * g + wd * w, clip_gradient)
    prod = math.prod(_mu(beta1, schedule_decay, i) for i in range(1, t + 1))
    mu_t, mu_next = _mu(beta1, schedule_decay, t), _mu(beta1, schedule_decay, t + 1)
    m = beta1 * s["m"] + (1 - beta1) * gt
    v = beta2 * s["v"] + (1 - beta2) * gt ** 2
    m_bar = (1 - mu_t) * gt / (1 - prod) + mu_next * m / (1 - prod * mu_next)
    return w - lr * m_bar / (np.sqrt(v / (1 - beta2 ** t)) + epsilon), {"m": m, "v": v}


def ref_amsgrad(w, g, s, t, lr, wd, rescale_grad, clip_gradient, beta1, beta2, epsilon):
    """Reddi, Kale & Kumar (2018), Algorithm 2 (no bias correction), Adam's gradient."""
    gt = _clip(rescale_grad * g + wd * w, clip_gradient)
    m = beta1 * s["mean"] + (1 - beta1) * gt
    v = beta2 * s["var"] + (1 - beta2) * gt ** 2
    v_max = np.maximum(s["var_max"], v)
    return w - lr * m / (np.sqrt(v_max) + epsilon), {"mean": m, "var": v, "var_max": v_max}


def ref_adamw(w, g, s, t, lr, wd, rescale_grad, clip_gradient, beta1, beta2, epsilon, correct_bias):
    """MXNet 2.0's AdamW: decoupled decay scaled by the (bias-corrected) learning rate."""
    gt = _clip(rescale_grad * g, clip_gradient)
    m = beta1 * s["mean"] + (1 - beta1) * gt
    v = beta2 * s["var"] + (1 - beta2) * gt ** 2
    lr_t = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) if correct_bias else lr
    return w - lr_t * (m / (np.sqrt(v) + epsilon) + wd * w), {"mean": m, "var": v}


REFERENCES = {"adagrad": ref_adagrad, "rmsprop": ref_rmsprop, "adadelta": ref_adadelta,
              "adamax": ref_adamax, "nadam": ref_nadam, "amsgrad": ref_amsgrad, "adamw": ref_adamw}

unit = st.floats(0.0, 0.99)
COMMON = dict(lr=st.floats(1e-4, 1.0), wd=st.sampled_from([0.0, 1e-4, 0.01, 0.1]),
              rescale_grad=st.sampled_from([1.0, 0.5, 2.0, 1 / 32]),
              clip_gradient=st.sampled_from([None, 0.1, 1.0, 10.0]))
EPS = st.sampled_from([1e-8, 1e-6, 1e-3])
HYPER = {
    "adagrad": dict(COMMON, eps=st.sampled_from([1e-7, 1e-3, 0.0])),
    "rmsprop": dict(COMMON, gamma1=unit, gamma2=unit, epsilon=EPS, centered=st.booleans(),
                    clip_weights=st.sampled_from([None, 0.5, 2.0])),
    "adadelta": dict(COMMON, rho=unit, epsilon=st.sampled_from([1e-5, 1e-3])),
    "adamax": dict(COMMON, beta1=unit, beta2=st.floats(0.5, 0.9999)),
    "nadam": dict(COMMON, beta1=unit, beta2=st.floats(0.5, 0.9999), epsilon=EPS,
                  schedule_decay=st.sampled_from([0.0, 0.004, 0.1, 1.0])),
    "amsgrad": dict(COMMON, beta1=unit, beta2=st.floats(0.5, 0.9999), epsilon=EPS),
    "adamw": dict(COMMON, beta1=unit, beta2=st.floats(0.5, 0.9999), epsilon=EPS, correct_bias=st.booleans()),
}
SHAPES = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


def _trajectory(opt, w, grads, index=0):
    state = opt.create_state(index, w)
    for g in grads:
        opt.update(index, w, g, state)
    return w, state


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_float64_kernel_matches_the_equation(name):
    @settings(max_examples=30, deadline=None, derandomize=True)
    @given(hyper=st.fixed_dictionaries(HYPER[name]), shape=SHAPES, seed=st.integers(0, 2**32 - 1))
    def check(hyper, shape, seed):
        rng = np.random.default_rng(seed)
        w0 = rng.standard_normal(shape)
        grads = [rng.standard_normal(shape) * 3 for _ in range(5)]
        if name == "adamax":
            grads = [g * (rng.random(shape) < 0.7) for g in grads]  # some coordinates stay at u = 0
        kwargs = dict(hyper)
        lr = kwargs.pop("lr")
        w, state = _trajectory(mxopt.create(name, learning_rate=lr, **kwargs), w0.copy(), grads)
        ref_w, ref_s = w0.copy(), {n: np.zeros(shape) for n in state.names}
        for t, g in enumerate(grads, start=1):
            ref_w, ref_s = REFERENCES[name](ref_w, g, ref_s, t, lr, **kwargs)
        np.testing.assert_allclose(w, ref_w, rtol=1e-10, atol=1e-12)
        for n, value in ref_s.items():
            np.testing.assert_allclose(state[n], value, rtol=1e-10, atol=1e-12, err_msg=n)

    check()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_rule_is_plain_python_on_floats(name):
    """The function the guide shows is the one compiled; called on Python floats it is
    the float64 equation, one element at a time."""
    opt = mxopt.create(name, learning_rate=0.1, wd=0.01)
    rule = opt.rule
    w0, g = 0.7, -1.3
    state = {n: 0.0 for n in rule.state_names}
    kw = {"carried": opt.advance(dict(opt.carried), 1)} if opt.carried else {}
    scalars = {k: float(v) for k, v in opt.step_scalars(index=0, t=1, lr=0.1, wd=0.01, **kw).items()}
    out = rule.fn(w0, g, *state.values(), *(scalars[n] for n in rule.scalar_names))
    extra = {"centered": False, "clip_weights": None} if name == "rmsprop" else {}
    extra = {"correct_bias": True} if name == "adamw" else extra
    hyper = {k: getattr(opt, k) for k in HYPER[name] if k not in ("lr", *extra)}
    ref_w, ref_s = REFERENCES[name](np.array(w0), np.array(g), {n: np.zeros(()) for n in state}, 1, 0.1,
                                    **{**hyper, **extra})
    assert out[0] == pytest.approx(float(ref_w), rel=1e-14)
    for got, n in zip(out[1:], rule.state_names):
        assert got == pytest.approx(float(ref_s[n]), rel=1e-14)


# -- where mxopt departs from MXNet on purpose ------------------------------------------
def test_adadelta_leaves_the_gradient_alone():
    """MXNet 1.9.1 runs ``grad *= rescale_grad`` on the caller's array."""
    opt = AdaDelta(rescale_grad=0.5, wd=0.01)
    w = np.linspace(-1, 1, 6, dtype=np.float32)
    g = np.linspace(2, -3, 6, dtype=np.float32)
    g_before = g.copy()
    _trajectory(opt, w, [g, g])
    np.testing.assert_array_equal(g, g_before)


def test_adadelta_has_no_learning_rate():
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(8), [rng.standard_normal(8) for _ in range(3)]
    a, _ = _trajectory(AdaDelta(learning_rate=123.0), w0.copy(), grads)
    sched = mxopt.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.01)
    b, _ = _trajectory(AdaDelta(lr_scheduler=sched), w0.copy(), grads)
    c, _ = _trajectory(AdaDelta(), w0.copy(), grads)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, c)


def test_adamax_does_not_make_nan_where_the_gradient_was_always_zero():
    """MXNet divides 0 by u = 0 there; mxopt leaves the coordinate where it is and
    updates every other coordinate exactly as MXNet's formula does."""
    opt = Adamax(learning_rate=0.01, wd=0.0)
    w0 = np.array([0.5, -0.25, 1.0], np.float32)
    grads = [np.array([1.0, 0.0, -2.0], np.float32), np.array([0.5, 0.0, 0.0], np.float32)]
    w, state = _trajectory(opt, w0.copy(), grads)
    assert w[1] == w0[1] and state.u[1] == 0 and state.m[1] == 0
    assert np.isfinite(w).all()
    # MXNet's arithmetic, float32, for the other coordinates (coordinate 2 has u > 0 after
    # its one gradient, so its zero second gradient is a normal step)
    m = np.zeros(3, np.float32)
    u = np.zeros(3, np.float32)
    mx_w = w0.copy()
    for t, g in enumerate(grads, start=1):
        m = m * np.float32(0.9) + np.float32(1 - 0.9) * g
        u = np.maximum(np.float32(0.999) * u, np.abs(g))
        with np.errstate(invalid="ignore"):
            mx_w = mx_w - np.float32(0.01 / (1 - 0.9 ** t)) * m / u
    assert np.isnan(mx_w[1])
    np.testing.assert_array_equal(w[[0, 2]], mx_w[[0, 2]])


def test_adamax_zero_gradient_with_weight_decay_moves():
    """With wd > 0 the decay term is a gradient, so u > 0 and the coordinate moves."""
    opt = Adamax(learning_rate=0.01, wd=0.1)
    w, _ = _trajectory(opt, np.array([1.0, 0.0]), [np.zeros(2)])
    assert w[0] < 1.0 and w[1] == 0.0


def test_nadam_keeps_its_schedule_product_per_parameter():
    """MXNet shares one product S across parameters, so a second parameter changes the
    first one's steps. Here interleaving does not matter, and a single parameter gives
    MXNet's numbers (the golden cases)."""
    rng = np.random.default_rng(5)
    grads_a = [rng.standard_normal(4).astype(np.float32) for _ in range(4)]
    grads_b = [rng.standard_normal(3).astype(np.float32) for _ in range(2)]
    alone, _ = _trajectory(Nadam(learning_rate=0.01), np.ones(4, np.float32), grads_a)
    opt = Nadam(learning_rate=0.01)
    a, b = np.ones(4, np.float32), np.ones(3, np.float32)
    sa, sb = opt.create_state(0, a), opt.create_state(1, b)
    assert sa.scalars == {"m_schedule": 1.0}
    for k, g in enumerate(grads_a):
        opt.update(0, a, g, sa)
        if k < len(grads_b):
            opt.update(1, b, grads_b[k], sb)
    np.testing.assert_array_equal(a, alone)
    mu = opt.momentum_schedule
    assert sa.scalars["m_schedule"] == mu(1) * mu(2) * mu(3) * mu(4)
    assert sb.scalars["m_schedule"] == mu(1) * mu(2)


def test_nadam_schedule_is_checkpointed_and_restored():
    rng = np.random.default_rng(6)
    grads = [rng.standard_normal(5).astype(np.float32) for _ in range(5)]
    up = mxopt.get_updater(Nadam(learning_rate=0.01))
    w = np.ones(5, np.float32)
    for g in grads[:3]:
        up(0, g, w)
    fresh = mxopt.get_updater(Nadam(learning_rate=0.01))
    fresh.set_states(up.get_states())
    assert fresh.states[0].scalars == up.states[0].scalars != {"m_schedule": 1.0}
    w2 = w.copy()
    for g in grads[3:]:
        up(0, g, w)
        fresh(0, g, w2)
    np.testing.assert_array_equal(w, w2)


def test_a_failed_nadam_update_leaves_the_schedule_alone():
    opt = Nadam()
    w = np.ones(3, np.float32)
    state = opt.create_state(0, w)
    with pytest.raises(ValueError):
        opt.update(0, w, np.ones(4, np.float32), state)
    assert state.scalars == {"m_schedule": 1.0} and opt.num_update == 0
    np.testing.assert_array_equal(w, 1)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_clip_gradient_none_means_no_clipping(name):
    rng = np.random.default_rng(7)
    w0, grads = rng.standard_normal(6), [rng.standard_normal(6) * 1e3 for _ in range(3)]
    off, _ = _trajectory(mxopt.create(name), w0.copy(), grads)
    wide, _ = _trajectory(mxopt.create(name, clip_gradient=1e9), w0.copy(), grads)
    tight, _ = _trajectory(mxopt.create(name, clip_gradient=1e-3), w0.copy(), grads)
    np.testing.assert_array_equal(off, wide)
    assert not np.array_equal(off, tight)
    with pytest.raises(ValueError, match="clip_gradient"):
        mxopt.create(name, clip_gradient=0)


# -- the optimizers' own properties ----------------------------------------------------
def test_amsgrad_denominator_never_shrinks():
    rng = np.random.default_rng(8)
    opt = AMSGrad(learning_rate=0.01, beta2=0.9)
    w = np.zeros(10)
    state = opt.create_state(0, w)
    previous = np.zeros(10)
    for k in range(60):
        g = rng.standard_normal(10) * (10.0 if k == 3 else 0.1)  # one rare large gradient
        opt.update(0, w, g, state)
        assert (state.var_max >= previous).all() and (state.var_max >= state.var).all()
        previous = state.var_max.copy()
    assert (state.var_max > 10 * state.var).all()  # v (Adam's) has forgotten the large one


def test_amsgrad_is_adam_without_bias_correction_while_v_grows():
    """With gradients of growing size v^max = v, and AMSGrad is MXNet's Adam with
    η_t = η: compare with Adam's rule on the same scalars."""
    from mxopt.optimizers.adam import ADAM_RULE

    opt = AMSGrad(learning_rate=0.01, wd=0.01)
    w = np.linspace(-1, 1, 7, dtype=np.float32)
    w_adam = w.copy()
    state = opt.create_state(0, w)
    mean, var = np.zeros(7, np.float32), np.zeros(7, np.float32)
    for t in range(1, 5):
        g = np.full(7, 2.0 ** t, np.float32)
        opt.update(0, w, g, state)
        scalars = {**opt.step_scalars(0, t, 0.01, 0.01), "lr_t": 0.01}
        args = _checks.step_scalars(scalars, ADAM_RULE.scalar_names, np.float32, {"clip_gradient"})
        _engine.launch(ADAM_RULE, w_adam, g, (mean, var), args)
    np.testing.assert_array_equal(state.var_max, state.var)
    np.testing.assert_array_equal(w, w_adam)


def test_adamw_decay_is_decoupled_and_scaled_by_the_learning_rate():
    opt = AdamW(learning_rate=0.1, wd=0.5, correct_bias=False)
    w = np.array([2.0, -4.0])
    _trajectory(opt, w, [np.zeros(2)])  # m = v = 0: only the decay acts
    np.testing.assert_array_equal(w, [2.0 * (1 - 0.05), -4.0 * (1 - 0.05)])
    scale = AdamW(learning_rate=0.1)  # decay is not divided by √v: scale-invariant step
    a, _ = _trajectory(scale, np.ones(3), [np.array([1.0, 10.0, 1000.0])])
    np.testing.assert_allclose(a, 1 - 0.1, rtol=1e-5)


def test_adamw_bias_correction_in_double_as_mxnet_2():
    opt = AdamW(learning_rate=0.001)
    for t in (1, 2, 10, 1000):
        eta = opt.step_scalars(0, t, 0.001, 0.0)["eta"]
        assert eta == 0.001 * (math.sqrt(1.0 - 0.999 ** t) / (1.0 - 0.9 ** t))
    assert AdamW(correct_bias=False).step_scalars(0, 7, 0.001, 0.0)["eta"] == 0.001


def test_rmsprop_clip_weights():
    opt = RMSProp(learning_rate=1.0, clip_weights=0.3)
    w, _ = _trajectory(opt, np.array([0.0, 0.0, 0.1]), [np.array([-5.0, 5.0, 0.0])])
    np.testing.assert_array_equal(w, [0.3, -0.3, 0.1])
    centered = RMSProp(learning_rate=1.0, clip_weights=0.3, centered=True)
    w, state = _trajectory(centered, np.zeros(2), [np.array([-5.0, 5.0])])
    np.testing.assert_array_equal(np.abs(w), 0.3)
    assert state.names == ("n", "g", "delta")


def test_centered_changed_after_create_state_is_refused():
    opt = RMSProp()
    w = np.ones(3)
    state = opt.create_state(0, w)
    opt.centered = True
    with pytest.raises(ValueError, match="state holds"):
        opt.update(0, w, np.ones(3), state)
    np.testing.assert_array_equal(w, 1)


def test_momentum_schedules():
    nadam = momentum_scheduler.NadamScheduler()
    assert (nadam.mu, nadam.delta, nadam.gamma, nadam.alpha) == (0.99, 0.004, 0.5, 0.96)
    ts = [0, 1, 2, 50, 10_000]
    values = [nadam(t) for t in ts]
    assert values == [nadam(t) for t in reversed(ts)][::-1]  # pure: order does not matter
    assert values[0] == 0.99 * 0.5 and all(a < b < 0.99 for a, b in zip(values, values[1:]))
    # MXNet's Nadam: beta1 * (1 - 0.5 * pow(0.96, t * schedule_decay)), bit for bit
    opt = Nadam(beta1=0.8, schedule_decay=0.1)
    for t in (1, 2, 3, 100):
        assert opt.momentum_schedule(t) == 0.8 * (1. - 0.5 * (pow(0.96, t * 0.1)))
    assert momentum_scheduler.NadamScheduler(mu=0.9, delta=0.0)(123) == 0.45
    assert momentum_scheduler.Null()(3) == 0.0 and momentum_scheduler.Fixed(0.9)(3) == 0.9


# -- multi-precision and CUDA ------------------------------------------------------------
MIXED = [("adagrad", {}), ("rmsprop", {}), ("rmsprop", {"centered": True, "clip_weights": 2.0}),
         ("adadelta", {}), ("adamax", {}), ("nadam", {}), ("amsgrad", {}), ("adamw", {"wd": 0.01})]


@pytest.mark.parametrize("name, kwargs", MIXED)
def test_multi_precision_updates_a_float32_master(name, kwargs):
    """float16 weights: the float32 update of the master copy, rounded to float16."""
    rng = np.random.default_rng(9)
    w16 = rng.standard_normal(12).astype(np.float16)
    grads = [rng.standard_normal(12).astype(np.float16) for _ in range(4)]
    opt = mxopt.create(name, learning_rate=0.01, multi_precision=True, **kwargs)
    w16_out, state = _trajectory(opt, w16.copy(), grads)
    w32, state32 = _trajectory(mxopt.create(name, learning_rate=0.01, **kwargs), w16.astype(np.float32),
                               [g.astype(np.float32) for g in grads])
    np.testing.assert_array_equal(state.weight32, w32)
    np.testing.assert_array_equal(w16_out, w32.astype(np.float16))
    for n in state32.names:
        np.testing.assert_array_equal(state[n], state32[n])
    with pytest.raises(TypeError, match="multi_precision"):
        mxopt.create(name, **kwargs).create_state(0, w16)


cuda = pytest.importorskip("numba.cuda")
from test_cuda import run as _run  # noqa: E402  (one CPU-vs-CUDA replay for every optimizer)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
@pytest.mark.parametrize("name, kwargs", MIXED)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_matches_cpu(name, kwargs, dtype):
    """One rule, two targets. float16 runs the CUDA multi-precision kernel (float16
    gradient read, float32 master, float16 written in one pass). A real GPU may
    contract a·b + c into an FMA, so agreement is to a few float32 ULP there; the
    simulator runs the same Python arithmetic in float32."""
    rng = np.random.default_rng(10)
    w = rng.standard_normal((3, 5)).astype(dtype)
    grads = [rng.standard_normal((3, 5)).astype(dtype) for _ in range(3)]
    if name == "adamax":
        grads = [g * np.array([0, 1, 1, 1, 1], dtype) for g in grads]  # the u = 0 branch too
    kwargs = {**kwargs, "multi_precision": dtype == np.float16}
    w_cpu, s_cpu = _run(name, kwargs, w, grads, on_gpu=False)
    w_gpu, s_gpu = _run(name, kwargs, w, grads, on_gpu=True)
    assert w_gpu.dtype == dtype and np.isfinite(w_gpu).all()
    if dtype == np.float16:  # the float32 masters (in the states) agree; rounding may differ by one step
        assert ulp_difference(w_gpu, w_cpu) <= 1
    else:
        np.testing.assert_allclose(w_gpu, w_cpu, rtol=2e-6, atol=1e-7)
    for a, b in zip(s_gpu, s_cpu):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)


# -- bad input and creation by name ----------------------------------------------------
BAD = [
    ("adagrad", {"eps": -1e-7}, ValueError), ("adagrad", {"eps": "small"}, TypeError),
    ("rmsprop", {"gamma1": 1.0}, ValueError), ("rmsprop", {"gamma2": -0.1}, ValueError),
    ("rmsprop", {"epsilon": -1.0}, ValueError), ("rmsprop", {"clip_weights": 0}, ValueError),
    ("rmsprop", {"clip_weights": -1.0}, ValueError), ("rmsprop", {"centered": "yes"}, TypeError),
    ("adadelta", {"rho": 1.0}, ValueError), ("adadelta", {"rho": -0.5}, ValueError),
    ("adadelta", {"epsilon": -1e-5}, ValueError), ("adadelta", {"epsilon": math.inf}, ValueError),
    ("adamax", {"beta1": 1.0}, ValueError), ("adamax", {"beta2": 1.5}, ValueError),
    ("nadam", {"schedule_decay": -0.004}, ValueError), ("nadam", {"epsilon": math.nan}, ValueError),
    ("nadam", {"beta1": 1.0}, ValueError),
    ("amsgrad", {"beta2": 1.0}, ValueError), ("amsgrad", {"epsilon": -1e-8}, ValueError),
    ("adamw", {"beta1": -0.1}, ValueError), ("adamw", {"epsilon": -1e-6}, ValueError),
    ("adamw", {"correct_bias": 1}, TypeError), ("adamw", {"rescale_grad": 0.0}, ValueError),
    ("adamw", {"rescale_grad": math.nan}, ValueError), ("adamw", {"rescale_grad": math.inf}, ValueError),
]


@pytest.mark.parametrize("name, kwargs, error", BAD, ids=[f"{n}-{next(iter(k))}={k[next(iter(k))]}" for n, k, _ in BAD])
def test_bad_hyperparameters_are_refused(name, kwargs, error):
    (arg,) = kwargs
    with pytest.raises(error, match=arg):
        mxopt.create(name, **kwargs)
    opt = mxopt.create(name)
    if hasattr(type(opt), arg) and isinstance(getattr(type(opt), arg), _checks.Hyper):
        before = getattr(opt, arg)
        with pytest.raises(error, match=arg):
            setattr(opt, arg, kwargs[arg])  # later assignments are checked too
        assert getattr(opt, arg) == before


@pytest.mark.parametrize("bad, error", [({"mu": 1.0}, ValueError), ({"delta": -1.0}, ValueError),
                                        ({"gamma": 1.5}, ValueError), ({"alpha": 0.0}, ValueError),
                                        ({"alpha": 1.01}, ValueError), ({"mu": "0.9"}, TypeError)])
def test_bad_nadam_schedule_is_refused(bad, error):
    with pytest.raises(error, match=next(iter(bad))):
        momentum_scheduler.NadamScheduler(**bad)


@pytest.mark.parametrize("t, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_schedule_takes_a_count(t, error):
    with pytest.raises(error, match="t must be"):
        momentum_scheduler.NadamScheduler()(t)


DEFAULTS = {
    "adagrad": dict(learning_rate=0.01, eps=1e-7),
    "rmsprop": dict(learning_rate=0.001, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False, clip_weights=None),
    "adadelta": dict(rho=0.9, epsilon=1e-5),
    "adamax": dict(learning_rate=0.002, beta1=0.9, beta2=0.999),
    "nadam": dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004),
    "amsgrad": dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8),
    "adamw": dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True),
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_create_by_name_with_mxnets_defaults(name):
    opt = mxopt.create(name)
    assert type(opt) is CLASSES[name] and mxopt.create(name.upper()).__class__ is CLASSES[name]
    for arg, value in DEFAULTS[name].items():
        assert getattr(opt, arg) == value, arg
    assert (opt.wd, opt.rescale_grad, opt.clip_gradient) == (0.0, 1.0, None)
    assert mxopt.create(name, wd=0.1, lr_scheduler=None, multi_precision=True).wd == 0.1


RULES = sorted({mxopt.create(n, **k).rule for n, k in MIXED}, key=lambda r: r.fn.__name__)


@pytest.mark.parametrize("rule", RULES, ids=[r.fn.__name__ for r in RULES])
def test_float32_kernels_stay_float32_and_vectorise(rule):
    """No float64 in a float32 kernel (host scalars arrive as float32, ``1 − β`` in the
    kernel is ONE − β), and LLVM turns the loop into packed SSE instructions (Adamax's
    ``u = 0`` branch included)."""
    import numba

    kernel = rule.kernel("cpu")
    arrays = [np.zeros(64, np.float32) for _ in range(2 + len(rule.state_names))]
    kernel(*arrays, *(np.float32(0.5) for _ in rule.scalar_names))
    (sig,) = [s for s in kernel.signatures if s[-1] == numba.float32]
    body = kernel.inspect_llvm(sig)
    body = body[body.index("define"):]
    assert "fpext float" not in body and " double " not in body.split("NRT_")[0]
    assert "divps" in kernel.inspect_asm(sig)
