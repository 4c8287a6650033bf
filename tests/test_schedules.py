"""Schedules beyond MXNet's: MXNet.jl's Fixed, the textbook decays, momentum schedules in SGD,
OptimizationState and normgrad.

Bit-exactness: a scheduled momentum is the same per-step float32 scalar as a
constant one, so ``Fixed(mu)`` must give ``momentum=mu``'s numbers exactly
(0 ULP), and ``normgrad`` must give NumPy's float32 ``clip(r*g) + wd*w``
exactly (0 ULP: the same three IEEE operations in the same order).
"""
import math

import numpy as np
import pytest

import mxopt
from mxopt import lr_scheduler as L
from mxopt.momentum_scheduler import Fixed, NadamScheduler, Null


# -- learning-rate schedules -------------------------------------------------------------------------
def test_fixed_is_mxnet_jl_fixed_and_sets_the_optimizers_rate():
    s = L.Fixed(0.25)
    assert [s(n) for n in (0, 1, 7, 2 ** 63 - 1)] == [0.25] * 4
    opt = mxopt.SGD(lr_scheduler=s)
    assert opt.learning_rate == 0.25
    with pytest.raises(TypeError, match="num_update"):
        s(1.5)
    with pytest.raises(ValueError, match="base_lr"):
        L.Fixed(-1.0)


def test_exponential_decay_is_exp_with_gamma_e_to_minus_d():
    eta0, d = 0.3, 0.05
    s = L.Exp(base_lr=eta0, gamma=math.exp(-d))
    for n in range(0, 400):
        assert s(n) == pytest.approx(eta0 * math.exp(-d * n), rel=1e-13)


def test_time_based_decay_is_inv_with_power_one():
    eta0, d = 0.3, 0.01
    s = L.Inv(base_lr=eta0, gamma=d, power=1.0)
    assert all(s(n) == pytest.approx(eta0 / (1 + d * n), rel=1e-15) for n in range(0, 10 ** 4, 7))


def test_step_decay_is_factor_two_updates_later():
    """``η₀·d^⌊(n+1)/r⌋`` at iteration n = FactorScheduler(step=r, factor=d) at num_update n + 2."""
    eta0, d, r = 0.5, 0.5, 10
    s = L.FactorScheduler(step=r, factor=d, stop_factor_lr=0.0, base_lr=eta0)
    for n in range(0, 200):
        assert s(n + 2) == pytest.approx(eta0 * d ** ((1 + n) // r), rel=1e-15)


# -- momentum schedules in SGD -------------------------------------------------------------------------
def _run(opt, steps=6, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(33).astype(dtype)
    state = opt.create_state(0, w)
    for _ in range(steps):
        opt.update(0, w, rng.standard_normal(33).astype(dtype), state)
    return w, state


@pytest.mark.parametrize("kwargs", [{}, {"wd": 1e-2, "rescale_grad": 0.5}, {"clip_gradient": 0.3, "wd": 1e-3}])
def test_fixed_momentum_schedule_is_momentum_bit_for_bit(kwargs):
    w_const, s_const = _run(mxopt.SGD(learning_rate=0.1, momentum=0.9, **kwargs))
    w_sched, s_sched = _run(mxopt.SGD(learning_rate=0.1, momentum_scheduler=Fixed(0.9), **kwargs))
    np.testing.assert_array_equal(w_sched, w_const)  # 0 ULP
    np.testing.assert_array_equal(s_sched["mom"], s_const["mom"])


def test_null_momentum_schedule_is_plain_sgd_without_state():
    opt = mxopt.SGD(learning_rate=0.1, wd=1e-2, momentum_scheduler=Null())
    w_null, state = _run(opt)
    assert state is None
    w_plain, _ = _run(mxopt.SGD(learning_rate=0.1, wd=1e-2))
    np.testing.assert_array_equal(w_null, w_plain)


def test_nadam_schedule_in_sgd_follows_the_heavy_ball_with_mu_t():
    """Δ_t = μ_t·Δ_{t−1} − η·g_{t−1}, μ_t = NadamScheduler(t), in float64 against a NumPy transcription."""
    mu = NadamScheduler(mu=0.9, delta=0.5)
    opt = mxopt.SGD(learning_rate=0.05, momentum_scheduler=mu)
    rng = np.random.default_rng(1)
    w = rng.standard_normal(8)
    ref_w, ref_mom = w.copy(), np.zeros(8)
    state = opt.create_state(0, w)
    for t in range(1, 21):
        g = rng.standard_normal(8)
        opt.update(0, w, g, state)
        ref_mom = mu(t) * ref_mom - 0.05 * g
        ref_w = ref_w + ref_mom
    np.testing.assert_allclose(w, ref_w, rtol=1e-14, atol=1e-15)
    assert mu(1) < 0.5 < mu(20)  # the coefficient really moved


def test_momentum_schedule_with_a_trainer():
    params = {"w": np.ones(4, np.float32)}
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum_scheduler": Fixed(0.5)})
    ref = mxopt.SGD(learning_rate=0.1, momentum=0.5)
    w_ref = np.ones(4, np.float32)
    s_ref = ref.create_state(0, w_ref)
    for step in range(3):
        tr.grads["w"][...] = np.float32(step + 1)
        tr.step(batch_size=1)
        ref.update(0, w_ref, np.full(4, step + 1, np.float32), s_ref)
    np.testing.assert_array_equal(tr.params["w"], w_ref)


@pytest.mark.parametrize("value, exc", [(1.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                                        (True, TypeError), ("0.9", TypeError)])
def test_a_bad_scheduled_momentum_changes_nothing(value, exc):
    opt = mxopt.SGD(learning_rate=0.1, momentum_scheduler=lambda t: 0.9 if t < 3 else value)
    w = np.ones(5, np.float32)
    state = opt.create_state(0, w)
    for _ in range(2):
        opt.update(0, w, np.ones(5, np.float32), state)
    w_before, mom_before = w.copy(), state["mom"].copy()
    with pytest.raises(exc, match=r"momentum_scheduler\(3\)"):
        opt.update(0, w, np.ones(5, np.float32), state)
    np.testing.assert_array_equal(w, w_before)
    np.testing.assert_array_equal(state["mom"], mom_before)
    assert opt._index_update_count[0] == 2 and opt.num_update == 2


def test_momentum_scheduler_arguments_are_checked():
    with pytest.raises(TypeError, match="momentum_scheduler"):
        mxopt.SGD(momentum_scheduler=0.9)
    with pytest.raises(ValueError, match="only one"):
        mxopt.SGD(momentum=0.9, momentum_scheduler=Fixed(0.9))
    opt = mxopt.SGD(momentum_scheduler=Fixed(0.9))
    with pytest.raises(TypeError, match="momentum_scheduler"):
        opt.momentum_scheduler = "fast"
    assert mxopt.create("sgd", momentum_scheduler=NadamScheduler()).rule is mxopt.SGD(momentum=0.9).rule


@pytest.mark.cuda
def test_scheduled_momentum_on_the_cuda_simulator():
    from numba import cuda

    mu = NadamScheduler(mu=0.9, delta=0.5)
    host = np.linspace(-1, 1, 12).astype(np.float32)
    grads = [np.full(12, k, np.float32) for k in (1, -2, 3)]
    cpu = mxopt.SGD(learning_rate=0.1, momentum_scheduler=mu)
    gpu = mxopt.SGD(learning_rate=0.1, momentum_scheduler=mu)
    w_cpu, w_gpu = host.copy(), cuda.to_device(host)
    s_cpu, s_gpu = cpu.create_state(0, w_cpu), gpu.create_state(0, w_gpu)
    for g in grads:
        cpu.update(0, w_cpu, g, s_cpu)
        gpu.update(0, w_gpu, cuda.to_device(g), s_gpu)
    np.testing.assert_array_equal(w_gpu.copy_to_host(), w_cpu)


# -- OptimizationState ---------------------------------------------------------------------------------
def test_optimization_state_counts_like_mxnet_jl():
    s = mxopt.OptimizationState(batch_size=8)
    assert (s.epoch, s.batch, s.iteration) == (0, 0, 0)
    seen = []
    for _ in range(3):
        s.next_epoch()
        assert s.batch == 0
        for _ in range(4):
            s.next_batch()
            seen.append((s.epoch, s.batch, s.iteration))
    assert seen[0] == (1, 1, 1) and seen[4] == (2, 1, 5) and seen[-1] == (3, 4, 12)
    assert s == mxopt.OptimizationState(8, epoch=3, batch=4, iteration=12)
    assert repr(s) == "OptimizationState(batch_size=8, epoch=3, batch=4, iteration=12)"
    assert L.Exp(1.0, 0.5)(s.epoch) == 0.125  # a schedule of epochs


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"batch_size": 0}, ValueError, "batch_size"), ({"batch_size": 2.0}, TypeError, "batch_size"),
    ({"batch_size": 2, "epoch": -1}, ValueError, "epoch"),
    ({"batch_size": 2, "epoch": 1, "batch": 3, "iteration": 2}, ValueError, "batch"),
    ({"batch_size": 2, "iteration": 5}, ValueError, "epoch 0")])
def test_optimization_state_refuses_inconsistent_counts(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        mxopt.OptimizationState(**kwargs)


def test_next_batch_before_next_epoch_is_refused():
    s = mxopt.OptimizationState(4)
    with pytest.raises(ValueError, match="next_epoch"):
        s.next_batch()
    assert s.iteration == 0


# -- normgrad ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{}, {"rescale_grad": 0.25, "wd": 0.1}, {"clip_gradient": 0.5, "wd": 0.01},
                                    {"clip_gradient": 2.0, "rescale_grad": 3.0}])
def test_normgrad_is_rescale_clip_then_decay(dtype, kwargs):
    opt = mxopt.SGD(**kwargs)
    rng = np.random.default_rng(2)
    w, g = rng.standard_normal(50).astype(dtype), (3 * rng.standard_normal(50)).astype(dtype)
    r, lam = dtype(opt.rescale_grad), dtype(opt.wd)
    c = np.inf if opt.clip_gradient is None else dtype(opt.clip_gradient)
    want = np.clip(r * g, -c, c) + lam * w
    out = mxopt.normgrad(opt, w, g)
    assert out is g
    np.testing.assert_array_equal(g, want)  # 0 ULP


def test_normgrad_uses_the_parameters_wd_mult():
    opt = mxopt.SGD(wd=0.5, param_idx2name={0: "fc_weight", 1: "fc_bias"})
    w = np.ones(3, np.float32)
    assert mxopt.normgrad(opt, w, np.zeros(3, np.float32), index=0).tolist() == [0.5] * 3
    assert mxopt.normgrad(opt, w, np.zeros(3, np.float32), index=1).tolist() == [0.0] * 3  # a bias: wd_mult 0


@pytest.mark.parametrize("make, exc, word", [
    (lambda w, g: ("sgd", w, g), TypeError, "optimizer"),
    (lambda w, g: (None, w, g[:5]), ValueError, "shape"),
    (lambda w, g: (None, w.astype(np.float64), g), TypeError, "dtype"),
    (lambda w, g: (None, w.astype(np.float16), g.astype(np.float16)), TypeError, "float16"),
    (lambda w, g: (None, g, g), ValueError, "shares memory"),
    (lambda w, g: (None, w, g.tolist()), TypeError, "grad"),
])
def test_normgrad_refuses_bad_input_and_leaves_grad_alone(make, exc, word):
    w, g = np.ones(6, np.float32), np.arange(6, dtype=np.float32)
    before = g.copy()
    opt, weight, grad = make(w, g)
    with pytest.raises(exc, match=word):
        mxopt.normgrad(mxopt.SGD(wd=0.1) if opt is None else opt, weight, grad)
    np.testing.assert_array_equal(g, before)


def test_normgrad_refuses_a_read_only_gradient():
    g = np.ones(3, np.float32)
    g.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        mxopt.normgrad(mxopt.SGD(), np.ones(3, np.float32), g)


@pytest.mark.cuda
def test_normgrad_on_the_cuda_simulator():
    from numba import cuda

    opt = mxopt.SGD(rescale_grad=0.5, clip_gradient=0.75, wd=0.1)
    w = np.linspace(-2, 2, 10).astype(np.float32)
    g = np.linspace(3, -3, 10).astype(np.float32)
    d_g = cuda.to_device(g)
    mxopt.normgrad(opt, cuda.to_device(w), d_g)
    np.testing.assert_array_equal(d_g.copy_to_host(), mxopt.normgrad(opt, w, g.copy()))
