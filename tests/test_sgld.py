"""SGLD: MXNet 1.9.1's deterministic part bit for bit (with MXNet's recorded noise), mxopt's noise
equal to its generator's, the stationary moments of MXNet's long chains, reproducible and
distinct noise streams, the Trainer's flat buffer, checkpoints, and the CUDA kernel's bits."""
import copy
import math

import numpy as np
import pytest
from numba import cuda
from scipy import stats

import mxopt
from mxopt import _random
from mxopt.optimizers.sgld import SGLD, SGLD_RULE, sgld

from conftest import golden_index, load_case

INDEX = golden_index()
CASES = [c for c in INDEX["optimizer_cases"] if c["optimizer"] == "sgld"]
STATS = INDEX["sgld_stats_cases"]


def kernel_arguments(opt, index, t, dtype=np.float32):
    """What the kernel receives at update ``t`` of ``index``: [(start, stop, (key, t))], scalars."""
    parts = opt._rule_scalars(SGLD_RULE, np.dtype(dtype), index, t, opt._get_lr(index, t), opt._get_wd(index),
                              None, t)
    return parts.parts, dict(zip(SGLD_RULE.scalar_names, parts.scalars))


def rule_on(w, g, z, scalars):
    """The rule, run by the interpreter element by element, with the deviates ``z``."""
    return np.array([sgld(w[e], g[e], np.float32(z[e]), **scalars) for e in range(w.size)], w.dtype)


def noise(opt, name, t, n, lr, dtype=np.float32):
    """ξ = √η·z in the weight's dtype: what mxopt adds, from the generator's own array of deviates."""
    return dtype(math.sqrt(lr)) * _random.normals(opt.stream_key(name), t, n).astype(dtype)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_deterministic_part_is_mxnets_and_the_noise_is_the_generators(case):
    data = load_case(case)
    opt = mxopt.create("sgld", **case["kwargs"])
    w_prev = data["w0"].reshape(-1)
    for k in range(case["n_steps"]):
        t = k + 1
        g = data["grads"][k].reshape(-1)
        (part,), scalars = kernel_arguments(opt, 0, t)
        assert part[:2] == (0, None)
        key, t_arg = part[2]
        assert (key, t_arg) == (opt.stream_key("0"), t)
        z = _random.normals(key, t_arg, w_prev.size)
        # The rule with √η = 0 adds nothing: its deterministic part. With MXNet's noise added in
        # float32 it gives MXNet's weights exactly: the order of MXNet's NDArray operations is kept.
        det = rule_on(w_prev, g, z, {**scalars, "sqrt_lr": np.float32(0.0)})
        np.testing.assert_array_equal(det + data["noise"][k].reshape(-1), data["weights"][k].reshape(-1),
                                      err_msg=f"step {t}: 0 ULP allowed")
        # mxopt's compiled update from the same weights adds exactly the generator's noise.
        w = w_prev.copy()
        opt.update(0, w, g.copy(), None)
        xi = noise(opt, "0", t, w.size, data["lr"][k])
        np.testing.assert_array_equal(w, det + xi)
        np.testing.assert_array_equal(w, rule_on(w_prev, g, z, scalars))  # the interpreted rule too
        w_prev = data["weights"][k].reshape(-1)
        opt._index_update_count[0] = t  # the next step starts from MXNet's weights, as MXNet's did


@pytest.mark.parametrize("case", STATS, ids=[c["case"] for c in STATS])
def test_long_chains_have_the_stationary_moments_as_mxnets_did(case):
    """2048 chains of 6000 steps on f(w) = a/2·(w − μ)²: the pooled mean and variance after
    the burn-in against the exact moments of the discretised dynamics, within 4 standard errors
    (estimated from the spread between the independent chains); MXNet's recorded chains pass too."""
    data = load_case(case)
    a, mu = np.float32(case["quadratic"]["a"]), np.float32(case["quadratic"]["mu"])
    n, steps, burn = case["nchains"], case["nsteps"], case["burnin"]
    opt = mxopt.create("sgld", seed=case["mx_random_seed"], **case["kwargs"])
    w = np.full(n, mu, np.float32)
    s1, s2 = np.zeros(n), np.zeros(n)
    for k in range(steps):
        opt.update(0, w, a * (w - mu), None)
        if k >= burn:
            s1 += w
            s2 += np.square(w, dtype=np.float64)
    m = steps - burn
    chain_mean, chain_var = s1 / m, s2 / m - (s1 / m) ** 2
    want_mean, want_var = case["expected_mean_discrete"], case["expected_var_discrete"]
    lr, h = case["kwargs"]["learning_rate"], case["quadratic"]["a"] + case["kwargs"]["wd"]
    assert want_var == pytest.approx(lr / (1 - (1 - lr * h / 2) ** 2), rel=1e-12)  # η/(1 − ρ²), ρ = 1 − ηh/2
    for means, variances, who in [(chain_mean, chain_var, "mxopt"), (data["chain_mean"], data["chain_var"], "MXNet")]:
        pooled_mean = means.mean()
        second = variances + (means - pooled_mean) ** 2  # each chain's share of the pooled variance
        pooled_var = second.mean()
        assert abs(pooled_mean - want_mean) < 4 * means.std() / math.sqrt(n), who
        assert abs(pooled_var - want_var) < 4 * second.std() / math.sqrt(n), who
    assert pooled_mean == pytest.approx(case["pooled_mean"], abs=1e-12)


def test_noise_has_variance_eta():
    opt = SGLD(learning_rate=0.04, seed=5)
    w = np.zeros(200_000, np.float64)
    opt.update(0, w, np.zeros_like(w), None)
    assert stats.kstest(w / 0.2, "norm").pvalue > 1e-3


def test_same_arguments_same_noise_other_seed_or_parameter_other_noise():
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal(50).astype(np.float32), rng.standard_normal(50).astype(np.float32)

    def run(index=0, **kwargs):
        opt, w = SGLD(learning_rate=0.1, wd=0.01, **kwargs), w0.copy()
        for _ in range(3):
            opt.update(index, w, g, None)
        return w

    np.testing.assert_array_equal(run(seed=3), run(seed=3))
    assert not np.any(run(seed=3) == run(seed=4))
    # one update of two equal parameters: different noise
    opt, a, b = SGLD(learning_rate=0.1), w0.copy(), w0.copy()
    opt.update([0, 1], [a, b], [g, g], [None, None])
    assert not np.any(a == b)
    # the same name (index 0 is named "0") draws the same stream; idx2name renames it
    np.testing.assert_array_equal(run(index=0, seed=3), run(index="0", seed=3))
    named = run(index=0, seed=3, param_idx2name={0: "fc_weight"})
    np.testing.assert_array_equal(named, run(index="fc_weight", seed=3))
    assert not np.any(named == run(index=0, seed=3))
    # reassigning the seed switches the stream
    opt, w = SGLD(learning_rate=0.1, seed=3), w0.copy()
    opt.update(0, w, g, None)
    opt.seed = 4
    for _ in range(2):
        opt.update(0, w, g, None)
    other, w4 = SGLD(learning_rate=0.1, seed=3), w0.copy()
    other.update(0, w4, g, None)
    other.seed = 4
    for _ in range(2):
        other.update(0, w4, g, None)
    np.testing.assert_array_equal(w, w4)
    assert opt.stream_key("0") == _random.stream_key(4, "0")


def test_trainer_buffer_gives_per_parameter_updates():
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32),
              "v": rng.standard_normal((2, 2)).astype(np.float32)}
    grads = {n: rng.standard_normal(p.shape).astype(np.float32) for n, p in params.items()}
    tr = mxopt.Trainer(params, "sgld", {"learning_rate": 0.05, "wd": 0.1, "seed": 9}, lr_mult={"v": 0.5})
    alone = SGLD(learning_rate=0.05, wd=0.1, seed=9)
    alone.set_lr_mult({"v": 0.5})
    mine = {n: p.copy() for n, p in params.items()}
    for _ in range(3):
        for n in params:
            tr.grads[n][...] = grads[n]
            alone.update(n, mine[n], grads[n], None)
        tr.step()
    assert len(tr._groups) == 2  # v in a group of its own: one buffer, two launches, three parameters
    for n in params:
        np.testing.assert_array_equal(tr.params[n], mine[n])


def test_checkpoint_restores_the_stream():
    rng = np.random.default_rng(2)
    params = {"w": rng.standard_normal((4, 4)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}
    tr = mxopt.Trainer(params, "sgld", {"learning_rate": 0.01, "seed": 1})
    for _ in range(4):
        for n, p in tr.params.items():
            tr.grads[n][...] = p
        tr.step()
    saved, weights = tr.save_states(), {n: p.copy() for n, p in tr.params.items()}
    tr.step()
    expected = {n: p.copy() for n, p in tr.params.items()}
    other = mxopt.Trainer(weights, "sgld", {"learning_rate": 0.01, "seed": 1})
    other.load_states(saved)
    for n in weights:
        other.grads[n][...] = tr.grads[n]
    other.step()
    for n in weights:
        np.testing.assert_array_equal(other.params[n], expected[n])
    # an Updater's states and a deep copy continue the same stream too
    opt = SGLD(learning_rate=0.01, seed=2)
    upd = mxopt.get_updater(opt)
    w, g = np.ones(6, np.float32), np.full(6, 0.5, np.float32)
    upd(0, g, w)
    twin_upd = mxopt.get_updater(SGLD(learning_rate=0.01, seed=2))
    twin_upd.set_states(upd.get_states())
    twin_w, clone = w.copy(), copy.deepcopy(opt)
    upd(0, g, w)
    twin_upd(0, g, twin_w)
    np.testing.assert_array_equal(w, twin_w)
    assert clone._index_update_count == {0: 1}


def test_multi_precision_updates_the_master_copy():
    rng = np.random.default_rng(3)
    w16, g16 = rng.standard_normal(30).astype(np.float16), rng.standard_normal(30).astype(np.float16)
    opt = SGLD(learning_rate=0.1, multi_precision=True, seed=4)
    state = opt.create_state(0, w16)
    assert state.names == ("weight32",)
    w32 = w16.astype(np.float32)
    ref = SGLD(learning_rate=0.1, seed=4)
    for _ in range(2):
        opt.update(0, w16, g16, state)
        ref.update(0, w32, g16.astype(np.float32), None)
    np.testing.assert_array_equal(state["weight32"], w32)
    np.testing.assert_array_equal(w16, w32.astype(np.float16))


def test_bad_input_changes_nothing():
    with pytest.raises(TypeError, match="seed must be an integer"):
        SGLD(seed=1.5)
    with pytest.raises(ValueError, match="seed must be an integer in"):
        SGLD(seed=-1)
    opt = SGLD(learning_rate=0.1)
    w = np.ones(6, np.float32)
    opt.set_layout(0, [("a", (2,)), ("b", (3,))])
    with pytest.raises(ValueError, match="layout of index 0 holds 5 elements"):
        opt.update(0, w, np.ones(6, np.float32), None)
    np.testing.assert_array_equal(w, 1)
    assert opt._index_update_count == {} and opt.num_update == 0


def test_parts_number_each_parameters_elements_from_zero():
    opt = SGLD(learning_rate=0.1, seed=3)
    opt.set_layout(7, [("a", (2, 3)), ("b", (4,))])
    parts, _ = kernel_arguments(opt, 7, 5)
    assert [(p[0], p[1]) for p in parts] == [(0, 6), (6, 10)]
    assert [p[2] for p in parts] == [(np.uint64(opt.stream_key("a")), 5), (np.uint64(opt.stream_key("b")), 5)]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_adds_the_cpu_noise(dtype):
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(4)
    w, g = rng.standard_normal(24).astype(dtype), rng.standard_normal(24).astype(dtype)
    cpu, gpu = SGLD(learning_rate=0.05, wd=0.1, seed=6), SGLD(learning_rate=0.05, wd=0.1, seed=6)
    w_cpu, w_gpu = w.copy(), cuda.to_device(w)
    for _ in range(2):
        cpu.update(0, w_cpu, g, None)
        gpu.update(0, w_gpu, cuda.to_device(g), None)
    # The same bits on both targets: every operation of the rule and of the deviate is one that
    # both round correctly, with no FMA (the compiled code: test_cuda_kernel_compiles_and_adds_the_
    # noise_unfused). The simulator runs the rule in Python; a GPU runs that compiled code.
    np.testing.assert_array_equal(w_gpu.copy_to_host(), w_cpu)


@pytest.mark.cuda
def test_cuda_trainer_buffer_and_multi_precision():
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(5)
    params = {"a": rng.standard_normal((2, 3)).astype(np.float16), "b": rng.standard_normal(4).astype(np.float16)}
    kwargs = {"learning_rate": 0.05, "seed": 8, "multi_precision": True}
    cpu = mxopt.Trainer(params, "sgld", kwargs)
    gpu = mxopt.Trainer({n: cuda.to_device(p) for n, p in params.items()}, "sgld", kwargs)
    for tr in (cpu, gpu):
        for n in params:
            tr.grads[n][...] = np.full(params[n].shape, 0.25, np.float16)
        tr.step()
    np.testing.assert_array_equal(gpu.data.copy_to_host(), cpu.data)


def test_cuda_kernel_compiles_and_adds_the_noise_unfused(monkeypatch):
    """The real CUDA kernel (not the simulator's Python) compiles for sm_90, plain and multi-precision.

    For float32 weights every floating-point operation of the kernel, the deviates
    (mxopt._random.normal4) included, is float32 and correctly rounded as on the CPU: ``mul.rn``
    (CUDA never fuses it), ``add``, ``sub``, ``div.rn``, ``sqrt.rn``, ``neg`` (exact), conversions of
    integers; no ``fma`` and no plain ``mul`` that could be fused. For float64 weights
    the rule's products are ``mul.rn.f64`` and the float32 deviate is widened exactly (``cvt.f64.f32``).
    So both targets compute the same bits.
    """
    from numba import config, types

    if config.ENABLE_CUDASIM:
        pytest.skip("the simulator compiles nothing")
    import numba.cuda.dispatcher as dispatcher
    from mxopt import _engine

    monkeypatch.setattr(dispatcher, "get_current_device",
                        lambda: type("Device", (), {"compute_capability": (9, 0)})())
    for dtype, multi_precision in [(types.float32, False), (types.float32, True), (types.float64, False)]:
        namespace = {"rule": _engine._compile(sgld, "cuda"), "normal4": _engine._compile(_random.normal4, "cuda"),
                     "cuda": cuda, "np": np}
        exec(SGLD_RULE.source("cuda", multi_precision), namespace)  # noqa: S102 - the engine's own template
        sig = (((types.float16[::1],) if multi_precision else ()) + (dtype[::1],) * 2
               + (types.int64, types.int64, types.uint64, types.uint64) + (dtype,) * 5)
        try:
            ptx, _ = cuda.compile_ptx(namespace["kernel"], sig, cc=(9, 0))
        except Exception as e:  # no NVRTC/NVVM in this environment (a compile error of ours is not skipped)
            if "TypingError" in type(e).__name__ or "LoweringError" in type(e).__name__:
                raise
            pytest.skip(f"cannot compile PTX here: {type(e).__name__}: {str(e)[:80]}")
        ops = [line.split()[0] for line in ptx.splitlines() if line.strip()]
        arithmetic = {op for op in ops if op.endswith((".f32", ".f64"))
                      and not op.startswith(("ld", "st", "mov", "cvt", "setp", "selp"))}
        assert not [op for op in ops if op.startswith("fma")]
        if dtype == types.float32:
            assert arithmetic <= {"mul.rn.f32", "add.f32", "sub.f32", "div.rn.f32", "sqrt.rn.f32", "neg.f32"}, arithmetic
            assert {"mul.rn.f32", "add.f32", "div.rn.f32", "sqrt.rn.f32"} <= arithmetic
            assert not [op for op in ops if op.endswith(".f64")]
        else:
            assert arithmetic <= {"mul.rn.f32", "add.f32", "sub.f32", "div.rn.f32", "sqrt.rn.f32", "neg.f32",
                                  "mul.rn.f64", "add.f64", "neg.f64"}, arithmetic
            assert "cvt.f64.f32" in ops
