"""The engine refuses a rule it cannot run as written, before anything changes.

A rule's argument names must not clash with the kernel's own (``_RESERVED``),
and its results must be what the kernel stores: ``w`` and then the state, each
in the dtype of its array. The second check catches the untyped literal
(``1 - beta1``, ``0.5 * x``), which Numba types as float64 and so turns float32
arithmetic into float64 whose result the store would round without a word.
"""
import numpy as np
import pytest

import mxopt
from mxopt import UpdateRule
from mxopt._scalar import ONE


# -- rules: a small EWA step (as Lion's and Adam's moments), written right and wrong ----------------
def ewa(w, g, m, lr, beta1):
    m = beta1 * m + (ONE - beta1) * g
    return w - lr * m, m


def ewa_int_literal(w, g, m, lr, beta1):
    m = beta1 * m + (1 - beta1) * g          # int 1 - float32 beta1: float64, and m with it
    return w - lr * m, m


def halve(w, g, lr):
    return w - 0.5 * lr * g                  # 0.5 is a float64 literal


def halve_cast(w, g, lr):
    return w - type(w)(0.5) * lr * g         # the weight's type: float32 stays float32


def ewa_weight_only(w, g, m, lr, beta1):
    m = beta1 * m + (ONE - beta1) * g
    return w - lr * m                        # the new m is lost: the kernel stores (w, m)


def step_as_tuple(w, g, lr):
    return (w - lr * g,)                     # a rule without state returns w itself


def optimizer(fn, n_state, **hyper):
    """An optimizer (not registered) that runs ``fn`` with ``hyper`` as extra step scalars."""
    class Custom(mxopt.Optimizer):
        rule = UpdateRule(fn, n_state=n_state)

        def step_scalars(self, index, t, lr, wd):
            return {**super().step_scalars(index, t, lr, wd), **hyper}

    return Custom(learning_rate=0.1)


def ewa_numpy(w, g, m, lr, beta1):
    """The EWA step in NumPy, in the arrays' dtype."""
    t = w.dtype.type
    m = t(beta1) * m + (t(1) - t(beta1)) * g
    return w - t(lr) * m, m


def data(dtype, n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)


def test_reserved_argument_name():
    def uses_i(w, g, i, lr):
        return w - lr * g * i

    with pytest.raises(TypeError, match=r"rule uses_i uses reserved argument names \['i'\]"):
        UpdateRule(uses_i, n_state=1)


def test_too_few_arguments_for_the_state():
    with pytest.raises(TypeError, match=r"rule halve needs \(w, g, 2 state values, scalars...\)"):
        UpdateRule(halve, n_state=2)


@pytest.mark.parametrize("fn, n_state, hyper, returned", [
    (ewa_int_literal, 1, {"beta1": 0.9}, r"\(float64, float64\) for \(w, m\) of dtypes \(float32, float32\)"),
    (halve, 0, {}, r"\(float64\) for \(w\) of dtypes \(float32\)"),
])
def test_untyped_literal_in_a_float32_rule_is_refused_and_nothing_changes(fn, n_state, hyper, returned):
    opt = optimizer(fn, n_state, **hyper)
    w, g = data(np.float32)
    w0 = w.copy()
    state = opt.create_state(0, w)
    with pytest.raises(TypeError, match=f"rule {fn.__name__} returns {returned}: an untyped literal") as err:
        opt.update(0, w, g, state)
    assert "type(w)(0.5)" in str(err.value) and "ONE - beta1" in str(err.value)
    np.testing.assert_array_equal(w, w0)
    if state is not None:
        assert not np.any(state.arrays[0])
    assert opt.num_update == 0 and opt._index_update_count == {}


def test_the_literal_is_harmless_in_float64_and_the_rule_runs_there():
    opt = optimizer(ewa_int_literal, 1, beta1=0.9)
    w, g = data(np.float64)
    want_w, want_m = ewa_numpy(w, g, np.zeros_like(w), 0.1, 0.9)
    state = opt.create_state(0, w)
    opt.update(0, w, g, state)
    np.testing.assert_array_equal(w, want_w)              # 0 ULP: the same float64 operations
    np.testing.assert_array_equal(state.arrays[0], want_m)


def test_typed_rules_run_in_float32_bit_for_bit():
    opt = optimizer(ewa, 1, beta1=0.9)
    w, g = data(np.float32, seed=1)
    want_w, want_m = w.copy(), np.zeros_like(w)
    state = opt.create_state(0, w)
    for _ in range(2):   # the second update finds the types checked already
        want_w, want_m = ewa_numpy(want_w, g, want_m, 0.1, 0.9)
        opt.update(0, w, g, state)
        np.testing.assert_array_equal(w, want_w)          # 0 ULP: float32 operations in the same order
        np.testing.assert_array_equal(state.arrays[0], want_m)
    opt = optimizer(halve_cast, 0)
    w0 = w.copy()
    opt.update(0, w, g, None)
    np.testing.assert_array_equal(w, w0 - np.float32(0.5) * np.float32(0.1) * g)


def test_multi_precision_runs_the_check_on_the_float32_master():
    opt = optimizer(ewa_int_literal, 1, beta1=0.9)
    opt.multi_precision = True
    w = np.ones(5, np.float16)
    state = opt.create_state(0, w)
    with pytest.raises(TypeError, match=r"\(float64, float64\) for \(w, m\) of dtypes \(float32, float32\)"):
        opt.update(0, w, np.ones(5, np.float16), state)
    np.testing.assert_array_equal(w, 1)


@pytest.mark.parametrize("fn, n_state, hyper, stores", [
    (ewa_weight_only, 1, {"beta1": 0.9}, r"returns float32, but the kernel stores 2 values \(w, m\)"),
    (step_as_tuple, 0, {}, r"returns UniTuple\(float32 x 1\), but the kernel stores 1 value \(w\)"),
])
def test_wrong_number_of_results_is_refused(fn, n_state, hyper, stores):
    opt = optimizer(fn, n_state, **hyper)
    w, g = data(np.float32)
    w0 = w.copy()
    with pytest.raises(TypeError, match=f"rule {fn.__name__} {stores}: return w first"):
        opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_array_equal(w, w0)


@pytest.mark.cuda
def test_the_check_runs_before_a_cuda_launch():
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    opt = optimizer(ewa_int_literal, 1, beta1=0.9)
    w = cuda.to_device(np.ones(4, np.float32))
    state = opt.create_state(0, w)
    with pytest.raises(TypeError, match=r"rule ewa_int_literal returns \(float64, float64\)"):
        opt.update(0, w, cuda.to_device(np.ones(4, np.float32)), state)
    np.testing.assert_array_equal(w.copy_to_host(), 1)


def test_a_refused_rule_in_a_list_update_changes_no_parameter():
    """An aggregated update whose later parameter's rule is refused (a float64
    result for float32 weights) updates none of the parameters, the earlier
    float64 one included."""
    def halfstep(w, g, lr):
        return w - 0.5 * lr * g  # 0.5 is a float64 literal: float32 in, float64 out

    opt = optimizer(halfstep, 0)
    (w64, g64), (w32, g32) = data(np.float64), data(np.float32, seed=1)
    before = w64.copy(), w32.copy()
    with pytest.raises(TypeError, match="halfstep"):
        opt.update([0, 1], [w64, w32], [g64, g32], [opt.create_state(0, w64), opt.create_state(1, w32)])
    assert np.array_equal(w64, before[0]) and np.array_equal(w32, before[1])
    assert opt.num_update == 0
