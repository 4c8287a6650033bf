"""Signum/signSGD, DCASGD and LBSGD.

* MXNet 1.9.1's recorded trajectories: 0 ULP (float32, CPU) for every case but
  LBSGD's 'lars', whose norms MXNet sums with NumPy's pairwise sum and mxopt
  sequentially (the difference is shown to be that order and nothing else);
* each rule against an independent float64 NumPy transcription, written here
  from the papers and the semantics file, whole-array;
* where mxopt departs from MXNet on purpose (signSGD with ``wd_lh``, DCASGD with
  momentum, LBSGD's copied gradient), multi-precision, the CUDA path (simulator
  or GPU), bad hyperparameters, LBSGD's checkpoint in the middle of an
  accumulation, and creation by name.
"""
import math

import numpy as np
import pytest

import mxopt
from mxopt.optimizers import DCASGD, LBSGD, Signum

from conftest import GOLDEN, golden_index, load_case
from test_golden import replay, ulp_difference

INDEX = golden_index()
NAMES = ("signum", "dcasgd", "lbsgd")
CASES = [c for c in INDEX["optimizer_cases"] if c["optimizer"] in NAMES]
EXPECTED_ERRORS = {c["case"]: c for c in INDEX["expected_errors"] if c["optimizer"] in NAMES}


def _inputs():
    with np.load(GOLDEN / "inputs.npz") as data:
        return data["w0"], data["grads"]


# -- independent float64 transcriptions ---------------------------------------------------------
def _clipped(g, rs, clip):
    g = rs * g
    return g if clip is None else np.clip(g, -clip, clip)


def signum_reference(w, grads, lr, momentum=0.9, wd=0.0, wd_lh=0.0, rescale_grad=1.0, clip_gradient=None):
    """Bernstein et al.'s Signum with MXNet's placement of λ (in the momentum) and λ_lh
    (decoupled); with μ = 0 signSGD, where both decays shrink the weight."""
    m, out = np.zeros_like(w), []
    for g in grads:
        if momentum > 0:
            m = momentum * m - (1 - momentum) * (wd * w + _clipped(g, rescale_grad, clip_gradient))
            w = (1 - lr * wd_lh) * w + lr * np.sign(m)
        else:
            w = (1 - lr * (wd + wd_lh)) * w - lr * np.sign(g)
        out.append(w)
    return out


def dcasgd_reference(w, grads, lr, momentum=0.0, lamda=0.04, wd=0.0, rescale_grad=1.0, clip_gradient=None):
    """Zheng et al.'s delay-compensated step, g + λ_dc·g²·(w − w_prev), with L2 decay and momentum."""
    previous, mom, out = w.copy(), np.zeros_like(w), []
    for g in grads:
        G = _clipped(g, rescale_grad, clip_gradient)
        mom = momentum * mom - lr * (G + wd * w + lamda * G ** 2 * (w - previous))
        previous, w = w, w + mom
        out.append(w)
    return out


def lbsgd_reference(w, grads, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=None,
                    warmup_strategy="linear", warmup_epochs=5, batch_scale=1, updates_per_epoch=32,
                    begin_epoch=0, lr_at=None):
    """Gradients summed over batch_scale calls; on every batch_scale-th call, SGD on their mean
    with the rate multiplied by the warmup (or MXNet's squared-norm LARS) multiplier.
    ``lr_at(n)``: the schedule, read at the update count before the call."""
    k, n, S, mom, out = batch_scale, begin_epoch * updates_per_epoch, np.zeros_like(w), np.zeros_like(w), []
    warm = warmup_epochs * updates_per_epoch
    for calls, g in enumerate(grads):
        eta = lr if lr_at is None else lr_at(calls)
        n, S = n + 1, S + g
        if n % k == 0:
            gbar = S / k
            if warmup_strategy == "lars":
                w2, g2 = np.sum(w ** 2), np.sum(gbar ** 2)
                mult = min(max(math.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01), 100.0)
            elif n >= warm:
                mult = k
            elif warm <= 1:
                mult = 1.0
            else:
                frac = n / warm
                mult = 1 + (k - 1) * {"linear": frac, "power2": frac ** 2, "sqrt": math.sqrt(frac)}[warmup_strategy]
            step = eta * mult * (wd * w + _clipped(gbar, rescale_grad, clip_gradient))
            if momentum > 0:
                mom = momentum * mom - step
                w = w + mom
            else:
                w = w - step
            S = np.zeros_like(w)
        out.append(w)
    return out


REFERENCES = {"signum": signum_reference, "dcasgd": dcasgd_reference, "lbsgd": lbsgd_reference}


def run(name, kwargs, w, grads, index=0):
    """mxopt's trajectory (weights after every step), the optimizer and the state."""
    opt = mxopt.create(name, **kwargs)
    w = w.copy()
    state = opt.create_state(index, w)
    out = []
    for g in grads:
        opt.update(index, w, g.copy(), state)
        out.append(w.copy())
    return out, opt, state


# -- MXNet's numbers ------------------------------------------------------------------------------
def test_every_case_is_here():
    assert {c["optimizer"] for c in CASES} == set(NAMES) and len(CASES) == 12
    assert set(EXPECTED_ERRORS) == {"signsgd_wdlh", "dcasgd_mom"}


@pytest.mark.parametrize("case", [c for c in CASES if c["case"] != "lbsgd_lars"],
                         ids=[c["case"] for c in CASES if c["case"] != "lbsgd_lars"])
def test_bit_for_bit_with_mxnet(case):
    """0 ULP in every weight and final state: the rules keep the order of MXNet's kernels
    (``signum_update``/``signsgd_update``, ``sgd_update``/``sgd_mom_update``) and of DCASGD's
    NDArray expression; LBSGD's multipliers and its η·mult are float64 on the host, as in MXNet."""
    _, _, pairs = replay(case)
    for what, got, want in pairs:
        assert ulp_difference(got, want) == 0, f"{case['case']} {what}"


def _lars_float32(w, grads, total, lr=0.1, momentum=0.9, wd=0.001):
    """MXNet's LBSGD 'lars' step (batch_scale 1) in float32, the sums of squares by ``total``."""
    f32, mom, out = np.float32, np.zeros_like(w), []
    for g in grads:
        w2, g2 = float(total(w * w)), float(total(g * g))  # float32 sums, used in float64
        eta = f32(lr * min(max(math.sqrt(w2 / (g2 + wd * w2 + 1e-18)), 0.01), 100.0))
        mom = f32(momentum) * mom - (eta * f32(wd)) * w - eta * g
        w = w + mom
        out.append(w)
    return out


def _sequential(x):
    total = np.float32(0)
    for v in x.reshape(-1):
        total = np.float32(total + v)
    return total


def test_lars_sums_the_norms_in_mxnets_order():
    """MXNet sums ‖w‖² and ‖ḡ‖² with NumPy's pairwise sum, and so does mxopt for
    a parameter of up to one chunk: a float32 transcription with NumPy's sum gives
    MXNet's numbers and mxopt's at 0 ULP, while a sequential sum would differ in the
    last bit at step 1 (1 ULP in the rate η·mult, and through the momentum up to
    12 ULP in the weights over the six steps) -- so the order is what is tested."""
    case = next(c for c in CASES if c["case"] == "lbsgd_lars")
    data = load_case(case)
    w0, grads = data["w0"], list(data["grads"])
    mxnet_order = _lars_float32(w0, grads, np.sum)
    sequential = _lars_float32(w0, grads, _sequential)
    ours, _, state = run("lbsgd", case["kwargs"], w0, grads)
    for k in range(len(grads)):
        assert ulp_difference(mxnet_order[k], data["weights"][k]) == 0
        assert ulp_difference(ours[k], data["weights"][k]) == 0
    assert 0 < max(ulp_difference(sequential[k], data["weights"][k]) for k in range(len(grads))) <= 12
    assert ulp_difference(np.asarray(state["mom"]), data["state"]) == 0


# -- each rule against its float64 transcription ---------------------------------------------------
SETTINGS = [
    ("signum", {"learning_rate": 0.05}),
    ("signum", {"learning_rate": 0.05, "momentum": 0.7, "wd": 0.1, "wd_lh": 0.2, "rescale_grad": 0.5,
                "clip_gradient": 0.3}),
    ("signum", {"learning_rate": 0.05, "momentum": 0.0, "wd": 0.1}),
    ("signum", {"learning_rate": 0.05, "momentum": 0.0, "wd": 0.1, "wd_lh": 0.3}),
    ("dcasgd", {"learning_rate": 0.1}),
    ("dcasgd", {"learning_rate": 0.1, "lamda": 0.5, "wd": 0.01, "rescale_grad": 2.0, "clip_gradient": 0.5}),
    ("dcasgd", {"learning_rate": 0.1, "momentum": 0.9, "lamda": 0.5, "wd": 0.01}),
    ("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}),
    ("lbsgd", {"learning_rate": 0.1, "batch_scale": 4, "warmup_epochs": 2, "updates_per_epoch": 5}),
    ("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "batch_scale": 4, "warmup_strategy": "power2",
               "warmup_epochs": 2, "updates_per_epoch": 5, "rescale_grad": 0.5, "clip_gradient": 0.2}),
    ("lbsgd", {"learning_rate": 0.1, "batch_scale": 3, "warmup_strategy": "sqrt", "warmup_epochs": 3,
               "updates_per_epoch": 4, "begin_epoch": 1}),
    ("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "warmup_strategy": "lars"}),
    ("lbsgd", {"learning_rate": 0.1, "momentum": 0.5, "wd": 0.01, "batch_scale": 3, "warmup_strategy": "lars"}),
    ("lbsgd", {"learning_rate": 0.1, "batch_scale": 2, "warmup_strategy": "lars", "clip_gradient": 0.1}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(SETTINGS)]


def _float64_problem(seed=5, shape=(6, 7), steps=12):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), [rng.standard_normal(shape) for _ in range(steps)]


@pytest.mark.parametrize("name, kwargs", SETTINGS, ids=IDS)
def test_float64_kernel_matches_the_equation(name, kwargs):
    w0, grads = _float64_problem()
    ours, _, _ = run(name, kwargs, w0, grads)
    want = REFERENCES[name](w0, grads, lr=kwargs["learning_rate"],
                            **{k: v for k, v in kwargs.items() if k != "learning_rate"})
    for k, (a, b) in enumerate(zip(ours, want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"{name} {kwargs} step {k + 1}")


@pytest.mark.parametrize("rule", [Signum(momentum=0.9).rule, Signum(momentum=0.0).rule, DCASGD().rule,
                                  DCASGD(momentum=0.5).rule, LBSGD(batch_scale=2).rule,
                                  LBSGD(batch_scale=2, momentum=0.9).rule], ids=lambda r: r.fn.__name__)
def test_rule_is_plain_python_on_floats(rule):
    """The scalar rules run as Python on floats (the guide calls them directly)."""
    args = [0.5, -0.25, *([0.125] * len(rule.state_names))]
    scalars = {"lr": 0.1, "momentum": 0.9, "wd": 0.01, "wd_lh": 0.02, "lamda": 0.5, "rescale_grad": 1.0,
               "clip_gradient": math.inf, "batch_scale": 2.0, "apply": 1.0}
    out = rule.fn(*args, *(scalars[n] for n in rule.scalar_names))
    assert all(isinstance(v, float) and math.isfinite(v) for v in (out if isinstance(out, tuple) else (out,)))


def test_warmup_multipliers_are_mxnets_formulas():
    opt = LBSGD(batch_scale=8, warmup_epochs=2, updates_per_epoch=5)
    for strategy, f in (("linear", lambda r: r), ("power2", lambda r: r * r), ("sqrt", math.sqrt)):
        opt.warmup_strategy = strategy
        assert [opt.warmup_multiplier(n) for n in (0, 5, 9, 10, 11)] == pytest.approx(
            [1.0, 1 + 7 * f(0.5), 1 + 7 * f(0.9), 8.0, 8.0], rel=1e-15)
    opt.warmup_strategy = "lars"
    with pytest.raises(ValueError, match="'lars' strategy has no warmup schedule"):
        opt.warmup_multiplier(3)
    assert LBSGD(batch_scale=8, warmup_epochs=1, updates_per_epoch=1).warmup_multiplier(0) == 1.0  # N_w <= 1


# -- where mxopt departs from MXNet on purpose -----------------------------------------------------
def test_signsgd_with_wd_lh_runs_as_the_decoupled_decay():
    """MXNet 1.9.1 raises ('Cannot find argument wd_lh'); mxopt shrinks the weight by η·λ_lh
    as Signum does: with wd = 0 the result equals signSGD with wd = wd_lh."""
    case = EXPECTED_ERRORS["signsgd_wdlh"]
    assert "wd_lh" in case["error"]
    w0, grads = _inputs()
    ours, _, state = run("signum", case["kwargs"], w0, list(grads))
    assert state is None
    want = signum_reference(w0.astype(np.float64), list(grads.astype(np.float64)), lr=0.01, momentum=0.0, wd_lh=0.1)
    np.testing.assert_allclose(ours[-1], want[-1], rtol=1e-6, atol=1e-7)
    as_wd, _, _ = run("signum", {"learning_rate": 0.01, "momentum": 0.0, "wd": 0.1}, w0, list(grads))
    for a, b in zip(ours, as_wd):
        np.testing.assert_array_equal(a, b)


def test_dcasgd_with_momentum_runs():
    """MXNet 1.9.1 raises (`if mom:` on an NDArray); mxopt runs MXNet's intended update."""
    case = EXPECTED_ERRORS["dcasgd_mom"]
    w0, grads = _inputs()
    ours, _, state = run("dcasgd", case["kwargs"], w0, list(grads))
    assert state.names == ("mom", "previous_weight")
    want = dcasgd_reference(w0.astype(np.float64), list(grads.astype(np.float64)), lr=0.1, momentum=0.9)
    for a, b in zip(ours, want):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(state["previous_weight"]), ours[-2])


def test_dcasgd_first_step_has_no_correction():
    w0, grads = _float64_problem()
    state = DCASGD().create_state(0, w0)
    np.testing.assert_array_equal(state["previous_weight"], w0)
    with_dc, _, _ = run("dcasgd", {"lamda": 10.0}, w0, grads[:1])
    without, _, _ = run("dcasgd", {"lamda": 0.0}, w0, grads[:1])
    np.testing.assert_array_equal(with_dc[0], without[0])


def test_sign_of_zero_is_zero():
    w = np.array([1.0, 2.0, 3.0], np.float32)
    for momentum in (0.0, 0.9):
        v = w.copy()
        opt = Signum(learning_rate=0.1, momentum=momentum)
        opt.update(0, v, np.zeros(3, np.float32), opt.create_state(0, v))
        np.testing.assert_array_equal(v, w)


def test_lbsgd_sums_copies_of_a_reused_gradient_buffer():
    """MXNet keeps the caller's first gradient array as the running sum, so a caller that
    reuses its buffer (Gluon) gets 2·g₂ instead of g₁ + g₂; mxopt sums the values."""
    w = np.ones(4, np.float32)
    opt = LBSGD(learning_rate=0.1, batch_scale=2, warmup_epochs=0)
    state = opt.create_state(0, w)
    buf = np.empty(4, np.float32)
    for value in (1.0, 3.0):
        buf[...] = value
        opt.update(0, w, buf, state)
        assert (buf == value).all()  # the caller's gradient is only read
    np.testing.assert_array_equal(w, np.float32(1) - np.float32(0.2) * np.float32(2.0))  # η·k·(1 + 3)/2
    assert (np.asarray(state["cum_grad"]) == 0).all() and state.scalars == {"num_cums": 2.0}


def test_lbsgd_reads_its_rate_before_counting():
    """MXNet's LBSGD asks the schedule for num_update before this call (0 at the first),
    every other optimizer after it (1 at the first)."""
    asked = {"lbsgd": [], "sgd": []}

    def schedule(name):
        def lr(n):
            asked[name].append(n)
            return 0.1
        return lr

    for name in asked:
        opt = mxopt.create(name, lr_scheduler=schedule(name))
        w = np.zeros(2, np.float32)
        state = opt.create_state(0, w)
        for _ in range(3):
            opt.update(0, w, np.ones(2, np.float32), state)
    assert asked == {"lbsgd": [0, 1, 2], "sgd": [1, 2, 3]}


def test_lbsgd_with_batch_scale_one_is_sgd():
    """batch_scale = 1: every multiplier is exactly 1, so LBSGD is MXNet's SGD kernels bit for bit
    (sgd_mom_update = mxopt's SGD with momentum; sgd_update = NAG with μ = 0)."""
    w0, grads = _inputs()
    for strategy in ("linear", "power2", "sqrt"):
        a, _, _ = run("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01, "warmup_strategy": strategy},
                      w0, list(grads))
        b, _, _ = run("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.01}, w0, list(grads))
        c, _, _ = run("lbsgd", {"learning_rate": 0.1, "wd": 0.01, "warmup_strategy": strategy}, w0, list(grads))
        d, _, _ = run("nag", {"learning_rate": 0.1, "wd": 0.01}, w0, list(grads))
        for x, y in [*zip(a, b), *zip(c, d)]:
            np.testing.assert_array_equal(x, y)


def test_list_update_counts_each_index():
    opt = LBSGD(learning_rate=0.1, batch_scale=2, momentum=0.9)
    ws = [np.ones(3, np.float32), np.ones(5, np.float32)]
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    for _ in range(3):
        opt.update([0, 1], ws, [np.ones(3, np.float32), np.ones(5, np.float32)], states)
    assert [s.scalars["num_cums"] for s in states] == [3.0, 3.0]
    np.testing.assert_array_equal(ws[0], ws[1][:3])


# -- multi-precision -----------------------------------------------------------------------------------
MP_SETTINGS = [("signum", {"wd": 0.01, "wd_lh": 0.1}), ("signum", {"momentum": 0.0, "wd": 0.01}),
               ("dcasgd", {"lamda": 0.5, "momentum": 0.9}),
               ("lbsgd", {"momentum": 0.9, "batch_scale": 2, "warmup_epochs": 1, "updates_per_epoch": 3}),
               ("lbsgd", {"momentum": 0.9, "batch_scale": 2, "warmup_strategy": "lars", "wd": 0.01})]


@pytest.mark.parametrize("name, kwargs", MP_SETTINGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MP_SETTINGS)])
def test_multi_precision_updates_the_float32_master(name, kwargs):
    """float16 weights: the update runs on the float32 master copy with float32 gradients,
    exactly the float32 run (LBSGD's sum and DCASGD's previous weight are float32 too), and the
    float16 weight is the master rounded."""
    rng = np.random.default_rng(7)
    w16 = rng.standard_normal(40).astype(np.float16)
    grads16 = [rng.standard_normal(40).astype(np.float16) for _ in range(6)]
    ours, _, state = run(name, {"learning_rate": 0.1, "multi_precision": True, **kwargs}, w16, grads16)
    f32, _, _ = run(name, {"learning_rate": 0.1, **kwargs}, w16.astype(np.float32),
                    [g.astype(np.float32) for g in grads16])
    assert state.names[-1] == "weight32" and all(np.asarray(a).dtype == np.float32 for a in state)
    np.testing.assert_array_equal(state["weight32"], f32[-1])
    for a, b in zip(ours, f32):
        assert a.dtype == np.float16
        np.testing.assert_array_equal(a, b.astype(np.float16))


def test_float16_needs_multi_precision():
    for opt in (Signum(), DCASGD(), LBSGD(batch_scale=2)):
        with pytest.raises(TypeError, match="multi_precision"):
            opt.create_state(0, np.zeros(3, np.float16))


# -- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("klass, kwargs, error, match", [
    (Signum, {"momentum": 1.0}, ValueError, "momentum"),
    (Signum, {"momentum": -0.1}, ValueError, "momentum"),
    (Signum, {"wd_lh": -1.0}, ValueError, "wd_lh"),
    (Signum, {"wd_lh": "0.1"}, TypeError, "wd_lh"),
    (DCASGD, {"lamda": float("nan")}, ValueError, "lamda"),
    (DCASGD, {"lamda": -0.5}, ValueError, "lamda"),
    (DCASGD, {"momentum": float("inf")}, ValueError, "momentum"),
    (LBSGD, {"batch_scale": 0}, ValueError, "batch_scale"),
    (LBSGD, {"batch_scale": 1.5}, TypeError, "batch_scale"),
    (LBSGD, {"batch_scale": True}, TypeError, "batch_scale"),
    (LBSGD, {"warmup_strategy": "Linear"}, ValueError, "warmup_strategy"),
    (LBSGD, {"warmup_strategy": None}, ValueError, "warmup_strategy"),
    (LBSGD, {"warmup_epochs": -1}, ValueError, "warmup_epochs"),
    (LBSGD, {"updates_per_epoch": 0}, ValueError, "updates_per_epoch"),
    (LBSGD, {"begin_epoch": -2}, ValueError, "begin_epoch"),
    (LBSGD, {"num_epochs": 2.0}, TypeError, "num_epochs"),
    (LBSGD, {"momentum": 1.2}, ValueError, "momentum"),
])
def test_bad_hyperparameters_are_refused(klass, kwargs, error, match):
    with pytest.raises(error, match=match):
        klass(**kwargs)


def test_a_count_beyond_exact_floats_is_refused():
    with pytest.raises(ValueError, match="2\\*\\*53"):
        LBSGD(batch_scale=2, begin_epoch=2 ** 40, updates_per_epoch=2 ** 20).create_state(0, np.zeros(2))


def test_a_failed_lbsgd_update_changes_nothing():
    opt = LBSGD(learning_rate=0.1, batch_scale=3, momentum=0.9)
    w = np.ones(4, np.float32)
    state = opt.create_state(0, w)
    opt.update(0, w, np.full(4, 2.0, np.float32), state)
    before = (w.copy(), [np.asarray(a).copy() for a in state], dict(state.scalars), opt.num_update)
    with pytest.raises(ValueError):
        opt.update(0, w, np.ones(5, np.float32), state)
    with pytest.raises(ValueError):
        opt.update([0, 1], [w, np.ones(2, np.float32)], [np.ones(4, np.float32), np.ones(2, np.float32)],
                   [state, state])
    np.testing.assert_array_equal(w, before[0])
    for a, b in zip(state, before[1]):
        np.testing.assert_array_equal(a, b)
    assert (state.scalars, opt.num_update) == (before[2], before[3])


# -- checkpoints -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dump_optimizer", [False, True])
def test_lbsgd_checkpoint_in_the_middle_of_an_accumulation(dump_optimizer):
    """Saved after 2 of 3 calls: the sum, N and the counts come back, and the rest of the run
    equals the uninterrupted one bit for bit."""
    kwargs = {"learning_rate": 0.1, "momentum": 0.9, "batch_scale": 3, "warmup_epochs": 2,
              "updates_per_epoch": 3, "begin_epoch": 1}
    w0, grads = _inputs()
    whole = mxopt.get_updater(LBSGD(**kwargs))
    w = w0.copy()
    for g in grads:
        whole(0, g.copy(), w)
    first = mxopt.get_updater(LBSGD(**kwargs))
    v = w0.copy()
    for g in grads[:2]:
        first(0, g.copy(), v)
    saved = first.get_states(dump_optimizer=dump_optimizer)
    assert first.states[0].scalars == {"num_cums": 5.0} and np.abs(first.states[0]["cum_grad"]).sum() > 0
    second = mxopt.get_updater(LBSGD(**kwargs))
    second.set_states(saved)
    assert second.states[0].scalars == {"num_cums": 5.0}
    np.testing.assert_array_equal(second.states[0]["cum_grad"], first.states[0]["cum_grad"])
    for g in grads[2:]:
        second(0, g.copy(), v)
    np.testing.assert_array_equal(v, w)
    assert second.optimizer.num_update == whole.optimizer.num_update == 6


def test_checkpoint_of_another_batch_scale_is_refused():
    first = mxopt.get_updater(LBSGD(batch_scale=2))
    first(0, np.ones(3, np.float32), np.ones(3, np.float32))
    second = mxopt.get_updater(LBSGD(batch_scale=1, momentum=0.9))
    with pytest.raises(ValueError, match="not a valid mxopt checkpoint"):
        second.set_states(first.get_states())


# -- by name -----------------------------------------------------------------------------------------------
def test_created_by_name_with_mxnets_defaults():
    s, d, lb = mxopt.create("signum"), mxopt.create("DCASGD"), mxopt.create("lbsgd")
    assert isinstance(s, Signum) and isinstance(d, DCASGD) and isinstance(lb, LBSGD)
    assert (s.learning_rate, s.momentum, s.wd_lh) == (0.01, 0.9, 0.0)
    assert (d.learning_rate, d.momentum, d.lamda) == (0.01, 0.0, 0.04)
    assert (lb.learning_rate, lb.momentum, lb.warmup_strategy, lb.warmup_epochs, lb.batch_scale,
            lb.updates_per_epoch, lb.begin_epoch, lb.num_epochs, lb.multi_precision) == \
        (0.01, 0.0, "linear", 5, 1, 32, 0, 60, False)
    assert mxopt.Signum is Signum and mxopt.DCASGD is DCASGD and mxopt.LBSGD is LBSGD
    # MXNet's positional order after rescale-free keywords: LBSGD(momentum, multi_precision, warmup_strategy, ...)
    assert LBSGD(0.9, True, "sqrt", 2, 4).warmup_strategy == "sqrt"


# -- CUDA (simulator or GPU) ---------------------------------------------------------------------------
CUDA_SETTINGS = [("signum", {"wd": 0.01, "wd_lh": 0.1, "clip_gradient": 0.5}), ("signum", {"momentum": 0.0}),
                 ("dcasgd", {"momentum": 0.9, "lamda": 0.5}), ("dcasgd", {"wd": 0.01}),
                 ("lbsgd", {"momentum": 0.9, "batch_scale": 2, "warmup_epochs": 1, "updates_per_epoch": 3}),
                 ("lbsgd", {"batch_scale": 2, "warmup_strategy": "lars", "wd": 0.01})]


@pytest.mark.cuda
@pytest.mark.parametrize("name, kwargs", CUDA_SETTINGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CUDA_SETTINGS)])
def test_cuda_matches_cpu(name, kwargs):
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(11)
    w0 = rng.standard_normal((3, 5)).astype(np.float32)
    grads = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(4)]
    cpu, _, cpu_state = run(name, {"learning_rate": 0.05, **kwargs}, w0, grads)
    opt = mxopt.create(name, learning_rate=0.05, **kwargs)
    w = cuda.to_device(w0)
    state = opt.create_state(0, w)
    for g in grads:
        opt.update(0, w, cuda.to_device(g), state)
    # The element-wise kernels compute what the CPU computes; a 'lars' norm is summed as a
    # tree on CUDA, so its last bit may differ.
    rtol = 1e-5 if kwargs.get("warmup_strategy") == "lars" else 1e-6
    np.testing.assert_allclose(w.copy_to_host(), cpu[-1], rtol=rtol, atol=1e-6)
    if cpu_state is None:  # signSGD keeps no state
        assert state is None
        return
    for a, b in zip(state, cpu_state):
        np.testing.assert_allclose(a.copy_to_host(), b, rtol=rtol, atol=1e-6)
    assert state.scalars == cpu_state.scalars
