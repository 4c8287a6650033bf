"""Replay MXNet 1.9.1's own trajectories (tests/data/mxnet-1.9.1, made by the real
mxnet==1.9.1 wheel on the CPU) through mxopt, step by step, and count how many
units in the last place (ULP) mxopt's weights and states are off."""
import numpy as np
import pytest

import mxopt
from mxopt import lr_scheduler

from conftest import golden_index, load_case

INDEX = golden_index()
#: The recorded cases of every optimizer mxopt has so far (the data holds MXNet's
#: whole catalogue; each optimizer's cases join here as it is added).
OPT_CASES = [c for c in INDEX["optimizer_cases"] if c["optimizer"] in mxopt.optimizer._REGISTRY]
#: SGLD adds noise from its own generator, not MXNet's: tests/test_sgld.py replays its cases with
#: MXNet's recorded noise (deterministic part: 0 ULP) and checks mxopt's noise against the generator.
OPT_CASES = [c for c in OPT_CASES if c["optimizer"] != "sgld"]
SCHED_CASES = INDEX["scheduler_cases"]

#: Optimizers whose every recorded case must equal MXNet's bit for bit: 0 ULP, in
#: every weight after every step and in every final state array. Why 0 can be asked
#: for: the rules keep the order of operations of MXNet's C++ kernels (e.g. SGD's
#: ``(η·λ)·w`` and ``(η·r)·g``, NAG(μ=0)'s ``(1 − η·λ)·w``, Adam's float32 ``1 − β``
#: and its float64 ``η·(√(1 − β₂ᵗ)/(1 − β₁ᵗ))``), the scalars reach the kernel
#: rounded to float32 as MXNet's do, and neither Numba nor the SSE3-only MXNet
#: wheel fuses ``a·b + c`` into an FMA, so every rounding is MXNet's. This holds
#: for the float16 multi-precision cases too: both update the float32 master copy
#: with the same float32 arithmetic (the float16 gradient converts to float32
#: exactly) and round it to float16, so they are tested at 0 ULP as well.
BIT_EXACT = {"sgd", "ccsgd", "nag", "adam", "signum", "dcasgd", "lars", "groupadagrad"}
BIT_EXACT |= {"ftrl"}  # signed zeros included (tests/test_ftrl.py)
BIT_EXACT |= {"ftml"}  # powers beta^t as float32 powf, as MXNet (tests/test_ftml.py)
BIT_EXACT |= {"lbsgd"}  # its LARS norms summed in NumPy's pairwise order, as MXNet (tests/test_signum_dcasgd_lbsgd.py)
#: Cases where mxopt fixes an MXNet bug on purpose: how many steps still equal MXNet's
#: (the weights after them are compared; later weights and the final states are not).
#: lamb_mp_fp16: MXNet 1.9.1 never writes LAMB's float32 master copy, so from step 2 on
#: it restarts from the first master weights; mxopt updates it (tests/test_layerwise.py).
DEPARTURES = {"lamb_mp_fp16": 1}
#: The tolerance of the other optimizers until they join BIT_EXACT.
RTOL, ATOL = 1e-5, 1e-6
#: State arrays mxopt keeps where MXNet keeps the values elsewhere: LBSGD's sum of the
#: gradients since its last update lives on MXNet's optimizer object (with batch_scale > 1).
MXOPT_ONLY_STATE = {"lbsgd": {"cum_grad"}}


def _flatten(names, layout):
    """Pairs (state name, npz key) from MXNet's nested state description."""
    if names is None:
        return []
    if isinstance(names, str):  # the index may note a shape after the name: "history (rows,1)"
        return [(names.split(" (")[0], layout["key"])]
    pairs = []
    for n, l in zip(names, layout):
        pairs += _flatten(n, l)
    return pairs


def ulp_difference(got, want):
    """The largest distance between ``got`` and ``want`` in units in the last place.

    Both are float arrays of one dtype. Each float maps to an integer that counts
    the representable numbers from 0 (negative numbers to negative integers, -0 and
    +0 to 0), so the difference of two such integers is the number of floats
    between them: 0 means bit-identical up to the sign of zero. NaN is never equal.
    """
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if got.size == 0:
        return 0
    if np.isnan(got).any() or np.isnan(want).any():
        return np.inf if not np.array_equal(got, want, equal_nan=True) else 0
    bits = {2: np.int16, 4: np.int32, 8: np.int64}[got.dtype.itemsize]

    def ordinal(a):
        i = a.view(bits).astype(np.int64)
        return np.where(i < 0, np.iinfo(bits).min - i, i)

    return int(np.max(np.abs(ordinal(got) - ordinal(want))))


def _build(case):
    kwargs = dict(case["kwargs"])
    sched = kwargs.pop("lr_scheduler", None)
    if sched is not None:
        kwargs["lr_scheduler"] = getattr(lr_scheduler, sched["class"])(**sched["kwargs"])
    if case["optimizer"] == "ccsgd":
        with pytest.warns(DeprecationWarning, match="ccSGD is deprecated"):
            return mxopt.create(case["optimizer"], **kwargs)
    return mxopt.create(case["optimizer"], **kwargs)


def replay(case):
    """Run ``case`` through mxopt as MXNet ran it (see the index's notes).

    Returns the optimizer, its state, and pairs (what, mxopt's array, MXNet's array):
    the weight after every step, then every final state array.
    """
    data = load_case(case)
    opt = _build(case)
    w = data["w0"].copy()
    assert w.dtype == np.dtype(case["dtype"])
    state = opt.create_state_multi_precision(0, w)
    pairs = []
    for k in range(case["n_steps"]):
        opt.update_multi_precision(0, w, data["grads"][k].copy(), state)
        pairs.append((f"weight after step {k + 1}", w.copy(), data["weights"][k]))
        assert opt.learning_rate == pytest.approx(data["lr"][k], rel=1e-12)
    names = _flatten(case["state_names"], case["state_layout"])
    pairs += [(f"state {name}", np.asarray(state[name]), data[key]) for name, key in names]
    return opt, state, pairs


@pytest.mark.parametrize("case", OPT_CASES, ids=[c["case"] for c in OPT_CASES])
def test_optimizer_matches_mxnet(case, record_property):
    opt, state, pairs = replay(case)
    assert opt.num_update == case["num_update"]
    expected = {n for n, _ in _flatten(case["state_names"], case["state_layout"])}
    names = set(state.names if state is not None else ())
    assert expected <= names and names - expected <= MXOPT_ONLY_STATE.get(case["optimizer"], set())
    if case["case"] in DEPARTURES:
        pairs = pairs[: DEPARTURES[case["case"]]]
    worst = max(ulp_difference(got, want) for _, got, want in pairs)
    record_property("max_ulp", worst)
    print(f"{case['case']}: {worst} ULP at most")
    for what, got, want in pairs:
        if case["optimizer"] in BIT_EXACT:
            np.testing.assert_array_equal(got, want, err_msg=f"{case['case']} {what}: "
                                          f"{ulp_difference(got, want)} ULP from MXNet, 0 allowed")
        else:
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{case['case']} {what}")


def test_sgd_nag_adam_are_bit_exact_over_every_case(record_property):
    """One number for the whole set: the largest ULP difference over every weight and
    state of every SGD, ccSGD, NAG and Adam case, float32 and float16 alike. It is 0."""
    cases = [c for c in OPT_CASES if c["optimizer"] in BIT_EXACT]
    assert {c["optimizer"] for c in cases} == BIT_EXACT
    assert {"float32", "float16"} <= {c["dtype"] for c in cases}
    per_case = {c["case"]: max(ulp_difference(got, want) for _, got, want in replay(c)[2]) for c in cases}
    worst = max(per_case.values())
    record_property("max_ulp", worst)
    print(f"max ULP difference from MXNet 1.9.1 over {len(cases)} SGD/ccSGD/NAG/Adam cases: {worst}")
    assert worst == 0, {name: ulp for name, ulp in per_case.items() if ulp}


def test_ulp_difference_counts_floats_between():
    one = np.float32(1.0)
    assert ulp_difference(np.array([one]), np.array([one])) == 0
    assert ulp_difference(np.array([np.nextafter(one, np.float32(2))]), np.array([one])) == 1
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    assert ulp_difference(np.array([tiny]), np.array([-tiny], np.float32)) == 2   # across zero
    assert ulp_difference(np.array([0.0], np.float32), np.array([-0.0], np.float32)) == 0
    half = np.float16(0.5)
    assert ulp_difference(np.array([half]), np.array([np.nextafter(half, np.float16(0))])) == 1
    assert ulp_difference(np.array([np.nan], np.float32), np.array([1.0], np.float32)) == np.inf


def test_every_sgd_nag_adam_case_is_covered():
    names = {c["optimizer"] for c in OPT_CASES}
    assert BIT_EXACT <= names and len(OPT_CASES) >= 15


def test_ccsgd_is_mxnets_deprecated_alias_of_sgd():
    with pytest.warns(DeprecationWarning, match="ccSGD is deprecated"):
        opt = mxopt.create("ccsgd", learning_rate=0.1, momentum=0.9, wd=1e-3)
    assert isinstance(opt, mxopt.SGD) and opt.rule is mxopt.SGD(momentum=0.9).rule
    assert (opt.learning_rate, opt.momentum, opt.wd) == (0.1, 0.9, 1e-3)


def test_lazy_update_does_not_change_dense_results():
    by_name = {c["case"]: load_case(c) for c in OPT_CASES}
    np.testing.assert_array_equal(by_name["sgd_mom"]["weights"], by_name["sgd_mom_nolazy"]["weights"])


@pytest.mark.parametrize("case", SCHED_CASES, ids=[c["case"] for c in SCHED_CASES])
def test_scheduler_matches_mxnet_sequential_values(case):
    data = load_case(case)
    sched = getattr(lr_scheduler, case["class"])(**case["kwargs"])
    ours = np.array([sched(int(n)) for n in data["num_update"]])
    np.testing.assert_allclose(ours, data["lr"], rtol=1e-12, atol=0)
    # Pure: calling out of order (backwards) gives the same values.
    backwards = np.array([sched(int(n)) for n in data["num_update"][::-1]])[::-1]
    np.testing.assert_array_equal(backwards, ours)
    if case["seq_equals_fresh"]:
        np.testing.assert_allclose(ours, data["lr_fresh"], rtol=1e-12, atol=0)
