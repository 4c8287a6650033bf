"""Replay MXNet 1.9.1's own trajectories (tests/data/mxnet-1.9.1, made by the real
mxnet==1.9.1 wheel) through mxopt, step by step."""
import numpy as np
import pytest

import mxopt
from mxopt import lr_scheduler

from conftest import golden_index, load_case

INDEX = golden_index()
#: The recorded cases of every optimizer mxopt has so far (the data holds MXNet's
#: whole catalogue; each optimizer's cases join here as it is added).
OPT_CASES = [c for c in INDEX["optimizer_cases"] if c["optimizer"] in mxopt.optimizer._REGISTRY]
SCHED_CASES = INDEX["scheduler_cases"]


def _flatten(names, layout):
    """Pairs (state name, npz key) from MXNet's nested state description."""
    if names is None:
        return []
    if isinstance(names, str):
        return [(names, layout["key"])]
    pairs = []
    for n, l in zip(names, layout):
        pairs += _flatten(n, l)
    return pairs


def _build(case):
    kwargs = dict(case["kwargs"])
    sched = kwargs.pop("lr_scheduler", None)
    if sched is not None:
        kwargs["lr_scheduler"] = getattr(lr_scheduler, sched["class"])(**sched["kwargs"])
    return mxopt.create(case["optimizer"], **kwargs)


def test_every_sgd_nag_adam_case_is_covered():
    names = {c["optimizer"] for c in OPT_CASES}
    assert {"sgd", "nag", "adam"} <= names and len(OPT_CASES) >= 15


@pytest.mark.parametrize("case", OPT_CASES, ids=[c["case"] for c in OPT_CASES])
def test_optimizer_matches_mxnet(case):
    data = load_case(case)
    opt = _build(case)
    w = data["w0"].copy()
    assert w.dtype == np.dtype(case["dtype"])
    state = opt.create_state_multi_precision(0, w)
    for k in range(case["n_steps"]):
        opt.update_multi_precision(0, w, data["grads"][k].copy(), state)
        np.testing.assert_allclose(w, data["weights"][k], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{case['case']} weight after step {k + 1}")
        assert opt.learning_rate == pytest.approx(data["lr"][k], rel=1e-12)
    assert opt.num_update == case["num_update"]
    for name, key in _flatten(case["state_names"], case["state_layout"]):
        np.testing.assert_allclose(state[name], data[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f"{case['case']} state {name}")
    expected = {n for n, _ in _flatten(case["state_names"], case["state_layout"])}
    assert set(state.names) == expected


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
