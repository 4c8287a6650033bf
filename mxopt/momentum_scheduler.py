"""Momentum schedules: the momentum coefficient as a function of the update count.

MXNet.jl's ``Momentum`` module gives three, and mxopt has them under the
same names: :class:`Null` (no momentum), :class:`Fixed` (a constant) and
:class:`NadamScheduler`, the warming schedule of Dozat's Nadam,

    μ_t = μ₀·(1 − γ·α^(t·δ)),

which starts at ``μ₀·(1 − γ)`` and rises towards μ₀ (with the defaults,
0.99·(1 − 0.5·0.96^(0.004·t)): 0.495 at t = 0, half-way to 0.99 after about
4 250 updates). Every schedule is a pure function of ``t``: calling it
never changes it, and calls may come in any order.

>>> from mxopt.momentum_scheduler import NadamScheduler
>>> mu = NadamScheduler(mu=0.9, delta=0.004)     # MXNet's Nadam: μ₀ = β₁, δ = schedule_decay
>>> round(mu(1), 6), round(mu(10_000), 6)
(0.450073, 0.812085)

Reference: Dozat (2016), "Incorporating Nesterov momentum into Adam", ICLR
workshop; the schedule's form and defaults are MXNet.jl's
``Momentum.NadamScheduler(; μ=0.99, δ=0.004, γ=0.5, α=0.96)``.
"""
from __future__ import annotations

from . import _checks


def _closed_unit(name, value):
    value = _checks.finite(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def _half_open_unit(name, value):
    value = _checks.finite(name, value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return value


class MomentumScheduler:
    """Base class: ``scheduler(t)`` is the momentum coefficient at update ``t`` (an int >= 0)."""

    def __call__(self, t):
        return self.momentum(_checks.integer(0)("t", t))

    def momentum(self, t):
        raise NotImplementedError


class Null(MomentumScheduler):
    """No momentum: 0 at every update (MXNet.jl's ``Momentum.Null``).

    >>> Null()(5)
    0.0
    """

    def momentum(self, t):
        return 0.0

    def __repr__(self):
        return "Null()"


class Fixed(MomentumScheduler):
    """The same momentum ``mu`` at every update (MXNet.jl's ``Momentum.Fixed``).

    >>> Fixed(0.9)(1), Fixed(0.9)(1000)
    (0.9, 0.9)
    """

    mu = _checks.Hyper(_checks.unit_interval, "the momentum coefficient")

    def __init__(self, mu):
        self.mu = mu

    def momentum(self, t):
        return self.mu

    def __repr__(self):
        return f"Fixed({self.mu!r})"


class NadamScheduler(MomentumScheduler):
    """Dozat's warming momentum schedule ``μ_t = μ₀·(1 − γ·α^(t·δ))``.

    Args:
      mu: μ₀, the limit as t → ∞, in [0, 1) (default 0.99; MXNet's Nadam
        uses its ``beta1``).
      delta: δ, how fast the schedule warms up, >= 0 (default 0.004; MXNet's
        ``schedule_decay``). δ = 0 gives the constant ``μ₀·(1 − γ)``.
      gamma: γ, the fraction of μ₀ missing at t = 0, in [0, 1] (default 0.5).
      alpha: α, the base of the decay, in (0, 1] (default 0.96).

    The arithmetic is MXNet's (``beta1 * (1. - 0.5 * pow(0.96, t * schedule_decay))``,
    in double), so Nadam's coefficients are bit for bit MXNet's.
    """

    mu = _checks.Hyper(_checks.unit_interval, "the limit of the momentum, mu_0")
    delta = _checks.Hyper(_checks.at_least(0.0), "the schedule's decay, delta")
    gamma = _checks.Hyper(_closed_unit, "the missing fraction at t = 0, gamma")
    alpha = _checks.Hyper(_half_open_unit, "the base of the decay, alpha")

    def __init__(self, mu=0.99, delta=0.004, gamma=0.5, alpha=0.96):
        self.mu = mu
        self.delta = delta
        self.gamma = gamma
        self.alpha = alpha

    def momentum(self, t):
        return self.mu * (1.0 - self.gamma * self.alpha ** (t * self.delta))

    def __repr__(self):
        return (f"NadamScheduler(mu={self.mu!r}, delta={self.delta!r}, gamma={self.gamma!r}, "
                f"alpha={self.alpha!r})")


__all__ = ["Fixed", "MomentumScheduler", "NadamScheduler", "Null"]
