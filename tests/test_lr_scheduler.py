"""Schedules: closed forms (constant time at any num_update), checked arguments."""
import time

import pytest

from mxopt import lr_scheduler as L


def test_factor_is_constant_time_and_agrees_with_mxnets_loop():
    s = L.FactorScheduler(step=1, factor=0.999999, stop_factor_lr=0.0, base_lr=1.0)
    start = time.perf_counter()
    for _ in range(100):
        s(10 ** 7)
    assert (time.perf_counter() - start) / 100 < 1e-3  # the loop took 0.8 s per call
    lr = 1.0
    for n in range(2, 20001):  # MXNet's sequential product
        lr *= 0.999999
        assert s(n) == pytest.approx(lr, rel=1e-12)


def test_factor_clamps_at_stop_factor_lr_and_refuses_it_above_base_lr():
    s = L.FactorScheduler(step=2, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    assert [s(n) for n in (1, 2, 3, 5, 7, 9, 10 ** 18)] == pytest.approx([1.0, 1.0, 0.1, 0.01, 1e-3, 1e-3, 1e-3], rel=1e-15)
    with pytest.raises(ValueError, match="stop_factor_lr"):
        L.FactorScheduler(step=2, factor=0.5, stop_factor_lr=0.1, base_lr=0.01)


def test_multifactor_bisects_its_milestones():
    s = L.MultiFactorScheduler(step=[3, 5, 9], factor=0.5, base_lr=1.0)
    assert [s(n) for n in range(1, 12)] == [1, 1, 1, .5, .5, .25, .25, .25, .25, .125, .125]


@pytest.mark.parametrize("step, exc", [(10, TypeError), ("10", TypeError), ([], ValueError),
                                       ([5, 5], ValueError), ([0, 5], ValueError), ([1.5], TypeError)])
def test_multifactor_step_must_be_a_list_of_increasing_integers(step, exc):
    with pytest.raises(exc, match="step"):
        L.MultiFactorScheduler(step=step)


@pytest.mark.parametrize("sched", [
    L.FactorScheduler(step=3, factor=0.5), L.MultiFactorScheduler([5, 9], 0.5), L.PolyScheduler(100),
    L.CosineScheduler(100, warmup_steps=10), L.Exp(0.1, 0.9), L.Inv(0.1, 0.9, 0.5), L.Fixed(0.1)],
    ids=lambda s: type(s).__name__)
def test_huge_num_update(sched):
    biggest = 2 ** 63 - 1
    value = sched(biggest)  # MXNet.jl's Exp and Inv included: a float, no OverflowError
    assert value >= 0.0 and value == value
    for bad in (biggest + 1, 10 ** 400):
        with pytest.raises(ValueError, match="num_update"):
            sched(bad)
    with pytest.raises(TypeError, match="num_update"):
        sched(1.0)


@pytest.mark.parametrize("make, word", [
    (lambda: L.FactorScheduler(step=10 ** 400), "step"),
    (lambda: L.FactorScheduler(step=10, base_lr=10 ** 400), "base_lr"),
    (lambda: L.PolyScheduler(max_update=10, pwr=10 ** 400), "pwr"),
    (lambda: L.CosineScheduler(max_update=10 ** 400), "max_update"),
    (lambda: L.Exp(base_lr=0.1, gamma=10 ** 400), "gamma"),
    (lambda: L.Inv(power=-(10 ** 400)), "power"),
    (lambda: L.Fixed(base_lr=10 ** 400), "base_lr"),
    (lambda: L.FactorScheduler(step=10, warmup_steps=10 ** 400), "warmup_steps"),
])
def test_huge_integers_are_value_errors(make, word):
    with pytest.raises(ValueError, match=word):
        make()
