"""The layer-wise engine (mxopt._reduce) and LARS, LAMB, GroupAdaGrad.

Golden MXNet cases are replayed by test_golden.py: LARS and GroupAdaGrad at
0 ULP (their sums are MXNet's sequential float32 loops: ``multi_sum_sq``, and
the Kahan ``sum`` of ``mean``), LAMB within 1 ULP (lamb_wd,
lamb_nobias_rescale_clip: MXNet's ``norm()`` rescales as it sums, LAPACK
``snrm2`` style, where mxopt sums squares; the norm's last bit moves the
trust ratio by an ULP). Here: per-parameter results of a Trainer, the fixed
number of launches, float64 transcriptions, float16 master copies, names and
bad input.
"""
import numpy as np
import pytest

import mxopt
from mxopt import _reduce

RNG = np.random.default_rng(8)


# -- float64 transcriptions of the rules (NumPy, whole arrays) --------------------------------------
def lars_ref(w, g, mom, lr, eta, eps, wd, rs, momentum, skip):
    wn, gn = np.linalg.norm(w), np.linalg.norm(g)
    rate = lr * eta * wn / (gn * rs + wd * wn + eps) if (not skip and wn > 0 and gn > 0) else lr
    mom = momentum * mom - rate * (rs * g + wd * w)
    return w + mom, mom


def lamb_ref(w, g, m, v, t, lr, b1, b2, eps, wd, rs, lower=None, upper=None):
    gt = rs * g
    m = b1 * m + (1 - b1) * gt
    v = b2 * v + (1 - b2) * gt * gt
    # β₁ᵗ and β₂ᵗ as MXNet's kernel computes them for every dtype: its β is a float32 parameter,
    # raised to t in double and stored in float32 (so float64 weights see float32(0.9)ᵗ too).
    b1t, b2t = (float(np.float32(float(np.float32(b)) ** t)) for b in (b1, b2))
    r = (m / (1 - b1t)) / (np.sqrt(v / (1 - b2t)) + eps) + wd * w
    phi = np.linalg.norm(w)
    phi = max(phi, lower) if lower else phi
    phi = min(phi, upper) if upper else phi
    rn = np.linalg.norm(r)
    rate = lr if phi == 0 or rn == 0 else lr * phi / rn
    return w - rate * r, m, v


def group_adagrad_ref(w, g, h, lr, eps, rs):
    gt = rs * g
    h = h + np.mean(gt * gt, axis=1, keepdims=True)
    return w - lr * gt / np.sqrt(h + eps), h


def test_lars_is_its_float64_transcription():
    w, mom = RNG.standard_normal((6, 5)), np.zeros((6, 5))
    opt = mxopt.LARS(learning_rate=0.1, momentum=0.9, eta=0.01, eps=1e-8, wd=1e-3, rescale_grad=0.5)
    x, state = w.copy(), opt.create_state(0, w)
    for _ in range(4):
        g = RNG.standard_normal(w.shape)
        opt.update(0, x, g, state)
        w, mom = lars_ref(w, g, mom, 0.1, 0.01, 1e-8, 1e-3, 0.5, 0.9, skip=False)
    np.testing.assert_allclose(x, w, rtol=1e-13)
    np.testing.assert_allclose(state.mom, mom, rtol=1e-12)


@pytest.mark.parametrize("bounds", [(None, None), (0.5, 2.0)])
def test_lamb_is_its_float64_transcription(bounds):
    w = RNG.standard_normal(40)
    m, v = np.zeros(40), np.zeros(40)
    opt = mxopt.LAMB(learning_rate=0.01, wd=0.01, rescale_grad=2.0, lower_bound=bounds[0], upper_bound=bounds[1])
    x, state = w.copy(), opt.create_state(0, w)
    for t in range(1, 5):
        g = RNG.standard_normal(40)
        opt.update(0, x, g, state)
        w, m, v = lamb_ref(w, g, m, v, t, 0.01, 0.9, 0.999, 1e-6, 0.01, 2.0, *bounds)
    np.testing.assert_allclose(x, w, rtol=1e-13)
    np.testing.assert_allclose(state.mean, m, rtol=1e-13)
    np.testing.assert_allclose(state.var, v, rtol=1e-13)


def test_group_adagrad_is_its_float64_transcription():
    w, h = RNG.standard_normal((7, 3)), np.zeros((7, 1))
    opt = mxopt.GroupAdaGrad(learning_rate=0.1, rescale_grad=0.5)
    x, state = w.copy(), opt.create_state(0, w)
    assert state.history.shape == (7, 1)  # MXNet's state shape
    for _ in range(3):
        g = RNG.standard_normal(w.shape)
        opt.update(0, x, g, state)
        w, h = group_adagrad_ref(w, g, h, 0.1, 1e-5, 0.5)
    np.testing.assert_allclose(x, w, rtol=1e-13)
    np.testing.assert_allclose(state.history, h, rtol=1e-13)


# -- a Trainer of many parameters: per-parameter results, a fixed number of launches -----------------
CONFIGS = [("lars", {"learning_rate": 0.1, "momentum": 0.9, "eta": 0.01, "wd": 1e-3}),
           ("lars", {"learning_rate": 0.1, "eta": 0.01}),
           ("lamb", {"learning_rate": 0.01, "wd": 0.01, "lower_bound": 0.1}),
           ("groupadagrad", {"learning_rate": 0.1})]


def _params(n, two_d, rng):
    params = {}
    for i in range(n):
        name = f"l{i}_bias" if i % 7 == 3 else f"l{i}_weight"
        rows, cols = int(rng.integers(1, 5)), int(rng.integers(1, 40))
        params[name] = rng.standard_normal((rows, cols) if two_d or i % 2 else rows * cols).astype(np.float32)
    return params


class LaunchCounter:
    """Counts the kernels the layer-wise engine runs (wraps LayerwiseRule.kernel)."""

    def __init__(self, monkeypatch):
        self.n = 0
        original = _reduce.LayerwiseRule.kernel

        def counted(rule, *args, **kwargs):
            kernel = original(rule, *args, **kwargs)

            def run(*a):
                self.n += 1
                return kernel(*a)
            return run

        monkeypatch.setattr(_reduce.LayerwiseRule, "kernel", counted)


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_trainer_of_1000_parameters_equals_each_parameter_alone(name, kwargs, monkeypatch):
    rng = np.random.default_rng(1000)
    params = _params(1000, name == "groupadagrad", rng)
    tr = mxopt.Trainer(params, name, dict(kwargs))
    alone = mxopt.create(name, **kwargs)
    alone.idx2name = {i: n for i, n in enumerate(params)}
    weights = {n: p.copy() for n, p in params.items()}
    states = {n: alone.create_state(i, weights[n]) for i, n in enumerate(params)}
    counter = LaunchCounter(monkeypatch)
    for _ in range(3):
        grads = {n: rng.standard_normal(p.shape).astype(np.float32) for n, p in params.items()}
        for n, g in grads.items():
            tr.grads[n][...] = g
        before = counter.n
        tr.step()
        assert counter.n - before == 3  # reduce, segment, update: for 1000 parameters as for one
        for i, n in enumerate(params):
            alone.update(i, weights[n], grads[n], states[n])
    for n in params:
        np.testing.assert_allclose(tr.params[n], weights[n], rtol=1e-5, atol=1e-7, err_msg=n)


def test_launches_do_not_grow_with_the_number_of_parameters(monkeypatch):
    counter = LaunchCounter(monkeypatch)
    counts = []
    for n in (1, 10, 1000):
        tr = mxopt.Trainer(_params(n, False, np.random.default_rng(n)), "lamb", {"learning_rate": 0.01})
        tr.grad_data[...] = 1
        before = counter.n
        tr.step()
        counts.append(counter.n - before)
    assert counts == [3, 3, 3]


def test_lars_skips_biases_and_norm_parameters_by_name_through_the_trainer():
    rng = np.random.default_rng(5)
    params = {"fc_weight": rng.standard_normal((4, 3)).astype(np.float32), "fc_bias": np.ones(4, np.float32),
              "bn_gamma": np.ones(3, np.float32), "bn_beta": np.zeros(3, np.float32) + 0.5}
    tr = mxopt.Trainer(params, "lars", {"learning_rate": 0.1, "eta": 0.001})
    sgd = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1})
    g = rng.standard_normal(tr.grad_data.shape).astype(np.float32)
    tr.grad_data[...] = g
    sgd.grad_data[...] = g
    tr.step()
    sgd.step()
    for n in ("fc_bias", "bn_gamma", "bn_beta"):  # the global rate: SGD's step, bit for bit
        np.testing.assert_array_equal(tr.params[n], sgd.params[n])
    # the weight's step is SGD's scaled by the trust ratio eta·‖w‖/‖g‖
    w, gw = params["fc_weight"], tr.grads["fc_weight"]
    ratio = 0.001 * np.linalg.norm(w) / np.linalg.norm(gw)
    np.testing.assert_allclose(tr.params["fc_weight"], w - 0.1 * ratio * gw, rtol=1e-6)


def test_lars_single_update_skips_by_idx2name():
    opt = mxopt.LARS(learning_rate=0.1, eta=0.001, param_idx2name={0: "fc_bias"})
    w = np.ones(3, np.float32)
    opt.update(0, w, np.ones(3, np.float32), None)
    np.testing.assert_array_equal(w, np.float32(1) - np.float32(0.1))


def test_lars_momentum_correction_follows_the_schedule():
    sched = mxopt.lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.1)
    opt = mxopt.LARS(momentum=0.9, eta=1.0, lr_scheduler=sched, param_idx2name={0: "b_bias"})
    w = np.zeros(1)
    state = opt.create_state(0, w)
    mom = 0.0
    lrs = [sched(n) for n in range(1, 5)]
    for t, lr in enumerate(lrs):
        opt.update(0, w, np.ones(1), state)
        mu = 0.9 * (lr / lrs[t - 1]) if t else 0.9
        mom = mu * mom - lr
    np.testing.assert_allclose(state.mom, [mom], rtol=1e-14)


def test_trainer_checkpoint_of_group_adagrad_keeps_rows_per_parameter():
    rng = np.random.default_rng(9)
    params = {"emb_a": rng.standard_normal((5, 4)).astype(np.float32),
              "emb_b": rng.standard_normal((3, 2)).astype(np.float32)}
    tr = mxopt.Trainer(params, "groupadagrad", {"learning_rate": 0.1})
    tr.grad_data[...] = rng.standard_normal(tr.grad_data.shape).astype(np.float32)
    tr.step()
    data = tr.save_states()
    again = mxopt.Trainer(params, "groupadagrad", {"learning_rate": 0.1})
    again.load_states(data)
    again.data[...] = tr.data
    assert again._updater.states[0].history.shape == (8, 1)
    np.testing.assert_array_equal(again._updater.states[0].history, tr._updater.states[0].history)
    for t in (tr, again):
        t.grad_data[...] = 1
        t.step()
    np.testing.assert_array_equal(again.data, tr.data)


# -- float16 master copies: LAMB writes its master weights (MXNet 1.9.1 does not) -------------------
def test_lamb_multi_precision_updates_the_master_copy():
    rng = np.random.default_rng(16)
    w16 = rng.standard_normal(30).astype(np.float16)
    grads = [rng.standard_normal(30).astype(np.float16) for _ in range(4)]
    mp = mxopt.LAMB(learning_rate=0.01, wd=0.01, multi_precision=True)
    ref = mxopt.LAMB(learning_rate=0.01, wd=0.01)
    state = mp.create_state(0, w16)
    w32 = w16.astype(np.float32)
    ref_state = ref.create_state(0, w32)
    for g in grads:
        mp.update(0, w16, g, state)
        ref.update(0, w32, g.astype(np.float32), ref_state)
    # the master copy is the float32 trajectory, and the weight its rounding
    np.testing.assert_array_equal(state.weight32, w32)
    np.testing.assert_array_equal(w16, w32.astype(np.float16))
    assert not np.array_equal(state.weight32, mxopt.LAMB().create_state(0, w16.astype(np.float32))[0])


def test_mxnet_lamb_multi_precision_never_moves_its_master_copy():
    """What test_golden's DEPARTURES entry stands for: MXNet's recorded master copy is w0."""
    from conftest import golden_index, load_case

    case = next(c for c in golden_index()["optimizer_cases"] if c["case"] == "lamb_mp_fp16")
    data = load_case(case)
    np.testing.assert_array_equal(data["state__0"], data["w0"].astype(np.float32))


# -- bad input ---------------------------------------------------------------------------------------
def test_group_adagrad_refuses_weight_decay_and_1d_weights():
    with pytest.raises(ValueError, match="wd must be 0 for GroupAdaGrad"):
        mxopt.GroupAdaGrad(wd=0.1)
    opt = mxopt.GroupAdaGrad()
    with pytest.raises(ValueError, match="wd must be 0"):
        opt.wd = 0.5
    assert opt.wd == 0
    with pytest.raises(ValueError, match="2-D weights.*'0'.*\\(4,\\)"):
        opt.create_state(0, np.ones(4, np.float32))
    w = np.ones((2, 2), np.float32)
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="2-D weights"):
        opt.update(0, np.ones(4, np.float32), np.ones(4, np.float32), state)
    with pytest.raises(ValueError, match="2-D weights.*'b'"):
        mxopt.Trainer({"a": np.ones((2, 2), np.float32), "b": np.ones(3, np.float32)}, "groupadagrad")
    bad = opt.create_state(1, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="shape \\(2, 1\\)"):
        opt.update(1, w, np.ones((2, 2), np.float32), mxopt.State("GroupAdaGrad", 1, ("history",), bad.arrays))
    np.testing.assert_array_equal(w, 1)
    assert opt.num_update == 0


def test_bad_layout_is_refused_before_anything_changes():
    opt = mxopt.LAMB()
    with pytest.raises(TypeError, match="layout entry"):
        opt.set_layout(0, ["w"])
    opt.set_layout(0, [("a", (2,)), ("b", (3,))])
    w = np.ones(4, np.float32)
    state = opt.create_state(1, w)
    opt.update(1, w, np.ones(4, np.float32), state)
    with pytest.raises(ValueError, match="layout of index 0 holds 5 elements"):
        opt.update(0, w.copy(), np.ones(4, np.float32),
                   mxopt.State("LAMB", 0, state.names, [a.copy() for a in state.arrays]))
    assert opt._index_update_count == {1: 1}


def test_lamb_float32_quotient_is_mxnets_double_quotient():
    """LAMB hands ``bias1 = 1 − β₁ᵗ`` to the kernel as float32 where ``m/bias1`` in float32 is MXNet's
    double quotient rounded to float32 (LAMB._wide says why): checked for every t on extreme and random m."""
    rng = np.random.default_rng(25)
    tiny = np.finfo(np.float32).tiny
    m = np.concatenate([rng.standard_normal(4000) * 10.0 ** rng.integers(-44, 38, 4000),
                        np.nextafter(np.float32(2.0) ** np.arange(-149, 128), np.float32(0)) * rng.choice([-1, 1], 277),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, tiny, np.finfo(np.float32).max]]).astype(np.float32)
    taken = {True: 0, False: 0}
    for beta1 in (0.5, 0.9, 0.99):
        opt = mxopt.LAMB(beta1=beta1)
        for t in range(1, 2000, 3):
            scalars = opt.step_scalars(0, t, 0.001, 0.0)
            (arg,) = opt._wide((np.float32(scalars["bias1"]),), scalars, ("bias1",))
            fast = isinstance(arg, np.float32)
            taken[fast] += 1
            if fast:
                with np.errstate(over="ignore"):
                    np.testing.assert_array_equal(m / arg, (m.astype(np.float64) / scalars["bias1"]).astype(np.float32),
                                                  err_msg=f"beta1={beta1}, t={t}")
    assert taken[True] > 100 and taken[False] > 100


@pytest.mark.parametrize("t0", [0, 168])
def test_lamb_steps_equal_with_the_float32_quotient_and_the_double_one(t0, monkeypatch):
    rng = np.random.default_rng(t0)
    w0 = rng.standard_normal(50).astype(np.float32)
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    results = []
    for wide in (mxopt.LAMB._wide, mxopt.Optimizer._wide):
        monkeypatch.setattr(mxopt.LAMB, "_wide", wide)
        opt = mxopt.LAMB(learning_rate=0.01, wd=0.01, begin_num_update=t0)
        w, state = w0.copy(), opt.create_state(0, w0)
        for g in grads:
            opt.update(0, w, g, state)
        results.append((w, state.mean, state.var))
    for fast, double in zip(*results):
        np.testing.assert_array_equal(fast, double)


def test_lamb_and_lars_refuse_bad_hyperparameters():
    with pytest.raises(ValueError, match="lower_bound"):
        mxopt.LAMB(lower_bound=-1.0)
    with pytest.raises(TypeError, match="bias_correction"):
        mxopt.LAMB(bias_correction="yes")
    with pytest.raises(ValueError, match="eta"):
        mxopt.LARS(eta=float("nan"))


def test_sum_squares_is_a_sequential_float32_loop_for_small_arrays():
    x = RNG.standard_normal(1000).astype(np.float32)
    acc = np.float32(0)
    for v in x:
        acc = acc + v * v
    assert _reduce.sum_squares(x) == float(acc)
    big = RNG.standard_normal(3 * _reduce.CHUNK + 5)
    assert _reduce.sum_squares(big) == pytest.approx(float(np.sum(big * big)), rel=1e-13)
    assert _reduce.sum_squares(np.zeros(0, np.float32)) == 0.0


def test_pairwise_sums_as_numpy_does():
    """``pairwise=True`` (for rules whose MXNet original sums with NumPy): a segment of one chunk is
    summed in NumPy's pairwise order, bit for bit; longer ones in lanes (module doc)."""
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        for n in (*range(1, 140), 255, 256, 1000, 4095, 4096):
            x = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(dtype)
            assert _reduce.pairwise(x, n, dtype(0)) == x.sum(), (dtype, n)
    rule = _reduce.LayerwiseRule(_reduce._sum_squares_summand, _reduce._keep, _reduce._unchanged, 0, ("total",),
                                 values=("total_out",), pairwise=True)
    counts = np.array([3, 8, 129, 1000, 4096, 2 * _reduce.CHUNK + 3])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    x = rng.standard_normal(counts.sum()).astype(np.float32)
    plan = _reduce.Plan(starts, counts)
    _reduce.launch(rule, plan, x, x.copy(), (), (), (), ())
    totals = plan.workspace(rule, "cpu", np.float32)[1][0]
    for s, (a, n) in enumerate(zip(starts, counts)):
        want = np.sum(x[a:a + n] * x[a:a + n])
        if n <= _reduce.CHUNK:
            assert totals[s] == want, n
        else:
            assert totals[s] == pytest.approx(want, rel=1e-5)


def test_segments_longer_than_a_chunk_are_summed_per_parameter():
    n = 2 * _reduce.CHUNK + 17
    params = {"big_weight": RNG.standard_normal(n).astype(np.float32),
              "small_weight": RNG.standard_normal(10).astype(np.float32)}
    tr = mxopt.Trainer(params, "lars", {"learning_rate": 0.1, "eta": 0.01})
    alone = mxopt.LARS(learning_rate=0.1, eta=0.01)
    tr.grad_data[...] = 1
    tr.step()
    for i, (name, p) in enumerate(params.items()):
        w = p.copy()
        alone.update(i, w, np.ones_like(w), None)
        np.testing.assert_allclose(tr.params[name], w, rtol=1e-6)


# -- CUDA (simulator in CI) ------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("name, kwargs", CONFIGS + [("lamb", {"multi_precision": True, "learning_rate": 0.01})])
def test_cuda_matches_cpu(name, kwargs):
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(12)
    dtype = np.float16 if kwargs.get("multi_precision") else np.float32
    params = {f"p{i}_weight": rng.standard_normal((3, 5)).astype(dtype) for i in range(3)}
    params["p_bias"] = rng.standard_normal((2, 4)).astype(dtype)
    cpu = mxopt.Trainer(params, name, dict(kwargs))
    gpu = mxopt.Trainer({k: cuda.to_device(v) for k, v in params.items()}, name, dict(kwargs))
    for _ in range(2):
        g = rng.standard_normal(cpu.grad_data.shape).astype(dtype)
        cpu.grad_data[...] = g
        gpu.grad_data.copy_to_device(g)
        cpu.step()
        gpu.step()
    tol = 1e-3 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(gpu.data.copy_to_host().astype(np.float32), cpu.data.astype(np.float32),
                               rtol=tol, atol=tol)
    x = rng.standard_normal(50).astype(np.float32)
    assert _reduce.sum_squares(cuda.to_device(x)) == pytest.approx(_reduce.sum_squares(x), rel=1e-6)
