"""The compiled CPU kernels against float64 transcriptions of the equations,
and bit for bit against float32 transcriptions of MXNet's kernels, over random
shapes, values and hyperparameters."""
import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxopt
from mxopt import _engine

from reference import MXNET_FLOAT32, REFERENCES

# 0, or a value that float32 can hold (a beta of 1e-137 rounds to 0 there, which
# mxopt rejects as a ValueError rather than silently computing with another number).
unit = st.one_of(st.just(0.0), st.floats(1e-6, 0.99))
common = dict(
    lr=st.floats(1e-4, 1.0),
    wd=st.sampled_from([0.0, 1e-4, 0.01, 0.1]),
    rescale_grad=st.sampled_from([1.0, 0.5, 2.0, 1 / 32]),
    clip_gradient=st.sampled_from([None, 0.1, 1.0, 10.0]),
)
HYPER = {
    "sgd": dict(common, momentum=st.sampled_from([0.0, 0.5, 0.9])),
    "nag": dict(common, momentum=st.sampled_from([0.0, 0.5, 0.9])),
    "adam": dict(common, beta1=unit, beta2=st.floats(0.5, 0.9999), epsilon=st.sampled_from([1e-8, 1e-6, 1e-3])),
}
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


def run_both(name, hyper, shape, dtype, seed, steps=4):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) * 3 for _ in range(steps)]
    kwargs = dict(hyper)
    lr = kwargs.pop("lr")
    opt = mxopt.create(name, learning_rate=lr, **kwargs)
    w = w0.astype(dtype)
    state = opt.create_state(0, w)
    # The kernel sees the hyperparameters rounded to the weight's dtype (as MXNet's
    # float32 kernels do); the float64 reference gets the same rounded values.
    rounded = {k: (v if v is None else float(dtype(v))) for k, v in kwargs.items()}
    if name == "adam":  # Adam's bias correction is computed on the host, from the float64 betas
        rounded["host_betas"] = (kwargs["beta1"], kwargs["beta2"])
    names = state.names if state is not None else ()       # no state without momentum
    ref_w, ref_state = w0.astype(dtype).astype(np.float64), {n: np.zeros(shape) for n in names}
    for t, g in enumerate(grads, start=1):
        opt.update(0, w, g.astype(dtype), state)
        ref_w, ref_state = REFERENCES[name](ref_w, g.astype(dtype).astype(np.float64), ref_state, t, lr, **rounded)
    return w, state, ref_w, ref_state


@pytest.mark.parametrize("name", sorted(HYPER))
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 2e-5, 2e-6)])
def test_kernel_matches_float64_equation(name, dtype, rtol, atol):
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(hyper=st.fixed_dictionaries(HYPER[name]), shape=shapes, seed=st.integers(0, 2**32 - 1))
    def check(hyper, shape, seed):
        w, state, ref_w, ref_state = run_both(name, hyper, shape, dtype, seed)
        assert w.dtype == dtype and w.shape == shape
        np.testing.assert_allclose(w, ref_w, rtol=rtol, atol=atol)
        for n in ref_state:
            np.testing.assert_allclose(state[n], ref_state[n], rtol=rtol, atol=atol)

    check()


#: Hyperparameters for the bit-exact test: rescaling factors that are not powers of
#: two (there ``(η·r)·g`` and ``η·(r·g)`` round differently), clipping on and off,
#: weight decay on and off, momentum 0 (NAG's other kernel) and not.
HYPER_F32 = {name: dict(h, rescale_grad=st.sampled_from([1.0, 0.5, 1 / 100, 1 / 3, 7.0]),
                        wd=st.sampled_from([0.0, 1e-4, 0.01, 0.3]))
             for name, h in HYPER.items()}


@pytest.mark.parametrize("name", sorted(MXNET_FLOAT32))
def test_float32_kernel_is_mxnets_bit_for_bit(name):
    """0 ULP, every step: the rules keep the order of MXNet's float32 operations
    (tests/test_golden.py checks the same on MXNet's recorded trajectories)."""
    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(hyper=st.fixed_dictionaries(HYPER_F32[name]), shape=shapes, seed=st.integers(0, 2**32 - 1))
    def check(hyper, shape, seed):
        rng = np.random.default_rng(seed)
        kwargs = dict(hyper)
        lr = kwargs.pop("lr")
        opt = mxopt.create(name, learning_rate=lr, **kwargs)
        w = rng.standard_normal(shape).astype(np.float32)
        state = opt.create_state(0, w)
        names = state.names if state is not None else ()
        ref_w, ref_state = w.copy(), {n: np.zeros(shape, np.float32) for n in names}
        for t in range(1, 5):
            g = (rng.standard_normal(shape) * 3).astype(np.float32)
            opt.update(0, w, g, state)
            ref_w, ref_state = MXNET_FLOAT32[name](ref_w, g, ref_state, t, lr, **kwargs)
            np.testing.assert_array_equal(w, ref_w, err_msg=f"step {t}")
        for n in names:
            np.testing.assert_array_equal(state[n], ref_state[n], err_msg=n)

    check()


def test_nag_without_momentum_is_mxnets_sgd_update_not_sgd():
    """MXNet runs NAG(μ=0) through sgd_update, ``(1 − η·λ)·w − …``, and SGD through
    multi_sgd_update, ``w + (−(η·λ)·w − …)``: with weight decay they can differ in the
    last bit, and mxopt reproduces each."""
    rng = np.random.default_rng(7)
    w0, g = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    out = {}
    for name in ("sgd", "nag"):
        w = w0.copy()
        mxopt.create(name, learning_rate=0.1, wd=0.01).update(0, w, g, None)
        ref, _ = MXNET_FLOAT32[name](w0, g, {}, 1, 0.1, wd=0.01)
        np.testing.assert_array_equal(w, ref)
        out[name] = w
    assert not np.array_equal(out["sgd"], out["nag"])
    np.testing.assert_allclose(out["sgd"], out["nag"], rtol=2e-7, atol=1e-7)


def test_rules_are_plain_scalar_python():
    """The rule the guide shows is the function that runs, and it works on floats."""
    w, m, v = mxopt.optimizers.adam.adam(1.0, 0.5, 0.0, 0.0, 0.1, 0.9, 0.999, 1e-8, 0.0, 1.0, math.inf)
    assert m == pytest.approx(0.05) and v == pytest.approx(0.00025)
    assert w == pytest.approx(1.0 - 0.1 * 0.05 / (math.sqrt(0.00025) + 1e-8))
    assert mxopt.optimizers.sgd.sgd(1.0, 2.0, 0.1, 0.0, 1.0, 0.5) == pytest.approx(0.95)  # gradient clipped to 0.5
    assert mxopt.optimizers.sgd.sgd(1.0, 0.5, 0.1, 0.0, 1.0, math.inf) == 1.0 - 0.1 * 0.5   # no clipping
    assert mxopt.optimizers.nag.nag_without_momentum(2.0, 1.0, 0.1, 0.5, 1.0, math.inf) == pytest.approx(0.95 * 2.0 - 0.1)


@pytest.mark.parametrize("rule", [mxopt.optimizers.sgd.SGD_RULE, mxopt.optimizers.sgd.SGD_MOMENTUM_RULE, mxopt.optimizers.nag.NAG_RULE,
                                  mxopt.optimizers.nag.NAG_WITHOUT_MOMENTUM_RULE, mxopt.optimizers.adam.ADAM_RULE])
def test_float32_kernels_do_float32_arithmetic(rule):
    """No float64 creeps into a float32 kernel (an untyped 1 - beta would)."""
    kernel = rule.kernel("cpu")
    n = 1 + len(rule.state_names)
    arrays = [np.zeros(8, np.float32) for _ in range(n + 1)]
    kernel(*arrays, *(np.float32(0.5) for _ in rule.scalar_names))
    (sig,) = [s for s in kernel.signatures if s[-1] == numba.float32]
    llvm = kernel.inspect_llvm(sig)
    body = llvm[llvm.index("define"):]
    assert "fpext float" not in body and " double " not in body.split("NRT_")[0], \
        f"{rule}: float64 arithmetic found in the float32 kernel"


def test_cpu_kernel_is_vectorised():
    kernel = mxopt.optimizers.adam.ADAM_RULE.kernel("cpu")
    arrays = [np.zeros(64, np.float32) for _ in range(4)]
    kernel(*arrays, *(np.float32(0.5) for _ in mxopt.optimizers.adam.ADAM_RULE.scalar_names))
    (sig,) = [s for s in kernel.signatures if s[-1] == numba.float32]
    asm = kernel.inspect_asm(sig)
    assert "sqrtps" in asm, "the Adam loop did not vectorise (no packed sqrt)"


def test_one_source_for_both_targets():
    rule = mxopt.optimizers.adam.ADAM_RULE
    cpu, gpu = rule.source("cpu"), rule.source("cuda")
    assert "prange" in cpu and "cuda.grid(1)" in gpu
    assert cpu.splitlines()[3] == gpu.splitlines()[3]  # the same rule call
    with pytest.raises(TypeError, match="reserved"):
        _engine.UpdateRule(lambda w, g, i: w, n_state=0)


def test_small_arrays_run_on_one_core_large_on_all():
    rule = mxopt.optimizers.sgd.SGD_RULE
    opt = mxopt.SGD(learning_rate=0.1)
    for n in (10, _engine.CPU_PARALLEL_THRESHOLD):
        w = np.ones(n, np.float32)
        opt.update(0, w, np.ones(n, np.float32), None)
        np.testing.assert_allclose(w, 0.9)
    assert ("cpu", False, False) in rule._kernels and ("cpu", False, True) in rule._kernels
    serial = rule._kernels[("cpu", False, False)]
    assert not serial.targetoptions.get("parallel")
