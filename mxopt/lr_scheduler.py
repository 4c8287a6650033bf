"""Learning-rate schedules: pure functions of the update count.

A schedule maps ``num_update`` (1 at the first update, as the optimizers
count) to a learning rate. MXNet's ``PolyScheduler`` and
``CosineScheduler`` keep state between calls; these classes do not, and
return for every ``num_update`` the value MXNet 1.9.1 returns when it is
called in order (checked against MXNet's own trajectories in the tests).

Every schedule takes the same time for every ``num_update`` (a closed form,
no loop over past updates); ``num_update`` is an integer in ``[0, 2**63 − 1]``.

Warm-up (all MXNet schedules): for ``num_update < warmup_steps`` the rate
rises linearly from ``warmup_begin_lr`` to ``base_lr``
(``warmup_mode='linear'``) or stays at ``warmup_begin_lr`` (``'constant'``).

``Fixed``, ``Exp`` and ``Inv`` are MXNet.jl's ``LearningRate.Fixed``,
``LearningRate.Exp(η₀; γ)`` and ``LearningRate.Inv(η₀; γ, p)``, with
``base_lr`` for η₀ and ``power`` for p. MXNet.jl's schedules count ``t``
themselves (0 until the caller's first ``update!``); these are functions of
``num_update``, and at ``num_update = n`` give MXNet.jl's value at ``t = n``.

The textbook decays map onto these (the schedules chapter checks each):
exponential decay ``η₀·e^(−d·n)`` is ``Exp(η₀, gamma=e^(−d))``; the
time-based decay ``η₀/(1 + d·n)`` is ``Inv(η₀, gamma=d, power=1)``; step
decay ``η₀·d^⌊(n+1)/r⌋`` at iteration ``n = 0, 1, ...`` is
``FactorScheduler(step=r, factor=d, stop_factor_lr=0, base_lr=η₀)`` at
``num_update = n + 2``.
"""
from __future__ import annotations

import bisect
import math

from . import _checks


class LRScheduler:
    """Base class: ``base_lr`` and the warm-up shared by MXNet's schedules."""

    def __init__(self, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0.0, warmup_mode="linear"):
        self.base_lr = _checks.at_least(0.0)("base_lr", base_lr)
        self.warmup_steps = _checks.integer(0)("warmup_steps", warmup_steps)
        self.warmup_begin_lr = _checks.at_least(0.0)("warmup_begin_lr", warmup_begin_lr)
        if self.warmup_begin_lr > self.base_lr:
            raise ValueError(f"warmup_begin_lr ({warmup_begin_lr}) must not exceed base_lr ({base_lr})")
        if warmup_mode not in ("linear", "constant"):
            raise ValueError(f"warmup_mode must be 'linear' or 'constant', got {warmup_mode!r}")
        self.warmup_mode = warmup_mode

    def __call__(self, num_update):
        num_update = _checks.integer(0)("num_update", num_update)
        if num_update < self.warmup_steps:
            if self.warmup_mode == "constant":
                return self.warmup_begin_lr
            rise = (self.base_lr - self.warmup_begin_lr) * float(num_update) / float(self.warmup_steps)
            return self.warmup_begin_lr + rise
        return self.after_warmup(num_update)

    def after_warmup(self, num_update):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class FactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` every ``step`` updates, never below ``stop_factor_lr``.

    ``η(n) = max(base_lr·factor^k, stop_factor_lr)`` with ``k = ⌊(n − 1)/step⌋``:
    as in MXNet, the first drop happens at ``num_update = step + 1``. MXNet
    multiplies ``k`` times in a loop; the power agrees with its product to
    a few float64 roundings (rtol 1e-12 in the tests). ``stop_factor_lr``
    above ``base_lr`` is an error (MXNet would raise the rate to it at the
    first drop).
    """

    def __init__(self, step, factor=1.0, stop_factor_lr=1e-8, base_lr=0.01,
                 warmup_steps=0, warmup_begin_lr=0.0, warmup_mode="linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.step = _checks.integer(1)("step", step)
        self.factor = _checks.at_least(0.0)("factor", factor)
        if self.factor > 1.0:
            raise ValueError(f"factor must be <= 1 to make the rate decrease, got {factor}")
        self.stop_factor_lr = _checks.at_least(0.0)("stop_factor_lr", stop_factor_lr)
        if self.stop_factor_lr > self.base_lr:
            raise ValueError(f"stop_factor_lr ({stop_factor_lr}) must not exceed base_lr ({base_lr}): "
                             "the rate would jump up to it at the first drop")

    def after_warmup(self, num_update):
        k = max(0, (num_update - 1) // self.step)
        return max(self.base_lr * self.factor ** k, self.stop_factor_lr)


class MultiFactorScheduler(LRScheduler):
    """Multiply the rate by ``factor`` once ``num_update`` passes each of the ``step`` milestones.

    ``η(n) = base_lr·factor^k`` with ``k`` the number of milestones ``s < n``
    (found by bisection).
    """

    def __init__(self, step, factor=1.0, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0.0,
                 warmup_mode="linear"):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        expected = "step must be a list of strictly increasing integers >= 1"
        if not isinstance(step, (list, tuple)):
            raise TypeError(f"{expected}, got {type(step).__name__} {step!r}")
        if not step:
            raise ValueError(f"{expected}, got an empty list")
        steps = [_checks.integer(1)(f"step[{i}]", s) for i, s in enumerate(step)]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"{expected}, got {list(step)}")
        self.step = steps
        self.factor = _checks.at_least(0.0)("factor", factor)
        if self.factor > 1.0:
            raise ValueError(f"factor must be <= 1, got {factor}")

    def after_warmup(self, num_update):
        return self.base_lr * self.factor ** bisect.bisect_left(self.step, num_update)


class _Annealing(LRScheduler):
    """From ``base_lr`` at the end of warm-up to ``final_lr`` at ``max_update``, then constant."""

    def __init__(self, max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode):
        super().__init__(base_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.max_update = _checks.integer(1)("max_update", max_update)
        if self.max_update <= self.warmup_steps:
            raise ValueError(f"max_update ({max_update}) must exceed warmup_steps ({warmup_steps})")
        self.final_lr = _checks.at_least(0.0)("final_lr", final_lr)

    def after_warmup(self, num_update):
        done = min(num_update, self.max_update) - self.warmup_steps
        return self.final_lr + (self.base_lr - self.final_lr) * self.shape(done, self.max_update - self.warmup_steps)

    def shape(self, done, total):  # pragma: no cover - abstract
        """The fraction of ``base_lr − final_lr`` left after ``done`` of ``total`` steps."""
        raise NotImplementedError


class PolyScheduler(_Annealing):
    """Polynomial decay: ``final + (base − final)·(1 − progress)^pwr``."""

    def __init__(self, max_update, base_lr=0.01, pwr=2, final_lr=0.0, warmup_steps=0,
                 warmup_begin_lr=0.0, warmup_mode="linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)
        self.power = _checks.at_least(0.0)("pwr", pwr)

    def shape(self, done, total):
        return pow(1.0 - float(done) / float(total), self.power)


class CosineScheduler(_Annealing):
    """Cosine annealing (Loshchilov & Hutter, 2017, without restarts):
    ``final + (base − final)·(1 + cos(π·progress))/2``."""

    def __init__(self, max_update, base_lr=0.01, final_lr=0.0, warmup_steps=0,
                 warmup_begin_lr=0.0, warmup_mode="linear"):
        super().__init__(max_update, base_lr, final_lr, warmup_steps, warmup_begin_lr, warmup_mode)

    def shape(self, done, total):
        return (1.0 + math.cos(math.pi * done / total)) / 2.0


class Fixed:
    """MXNet.jl's ``LearningRate.Fixed``: the same rate ``η`` at every update.

    >>> Fixed(0.1)(1), Fixed(0.1)(10 ** 6)
    (0.1, 0.1)
    """

    def __init__(self, base_lr=0.01):
        self.base_lr = _checks.at_least(0.0)("base_lr", base_lr)

    def __call__(self, num_update):
        _checks.integer(0)("num_update", num_update)
        return self.base_lr

    def __repr__(self):
        return f"Fixed(base_lr={self.base_lr!r})"


class Exp:
    """MXNet.jl's ``LearningRate.Exp``: ``η_t = η₀·γ^t``.

    >>> Exp(base_lr=1.0, gamma=0.5)(3)
    0.125
    """

    def __init__(self, base_lr=0.01, gamma=0.9):
        self.base_lr = _checks.at_least(0.0)("base_lr", base_lr)
        self.gamma = _checks.at_least(0.0)("gamma", gamma)
        if self.gamma > 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")

    def __call__(self, num_update):
        return self.base_lr * self.gamma ** _checks.integer(0)("num_update", num_update)


class Inv:
    """MXNet.jl's ``LearningRate.Inv``: ``η_t = η₀·(1 + γ·t)^(−p)`` (``power`` is p).

    With ``1/2 < p <= 1`` it is the one schedule here that meets Robbins and
    Monro's conditions ``Σ η_t = ∞``, ``Σ η_t² < ∞`` (Robbins & Monro, 1951,
    "A stochastic approximation method", Ann. Math. Statist.).

    >>> Inv(base_lr=1.0, gamma=1.0, power=1.0)(3)
    0.25
    """

    def __init__(self, base_lr=0.01, gamma=0.9, power=0.5):
        self.base_lr = _checks.at_least(0.0)("base_lr", base_lr)
        self.gamma = _checks.at_least(0.0)("gamma", gamma)
        self.power = _checks.at_least(0.0)("power", power)

    def __call__(self, num_update):
        t = _checks.integer(0)("num_update", num_update)
        return self.base_lr * (1.0 + self.gamma * t) ** (-self.power)
