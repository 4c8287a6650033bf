"""Stochastic gradient descent, with optional momentum and weight decay.

Plain SGD (Robbins & Monro, 1951) moves against the gradient of the loss
plus an L2 penalty ``λ/2·‖w‖²``, with the gradient rescaled by ``r`` and
clipped to ``[−c, c]``; weight decay is added after the clip and is never
clipped::

    w_{t+1} = w_t − η_{t+1}·(clip(r·g_t, c) + λ·w_t)

With momentum (Polyak's heavy ball, 1964) the step is an exponentially
weighted sum of past steps. MXNet keeps the learning rate inside the
momentum buffer ``Δ`` (state ``mom``: the step itself, not an average
gradient)::

    Δ_{t+1} = μ·Δ_t − η_{t+1}·(clip(r·g_t, c) + λ·w_t)
    w_{t+1} = w_t + Δ_{t+1}

MXNet 1.9.1 runs both through one kernel (``multi_sgd_update`` and
``multi_sgd_mom_update``, and their multi-precision twins for float16):
plain SGD is the momentum step with ``μ = 0`` and no stored buffer. In
exact arithmetic the order of the products does not matter; in float32 it
does, so the rules below keep the kernel's order, parenthesis for
parenthesis, and give MXNet's float32 numbers bit for bit::

    Δ = μ·Δ − (η·λ)·w − η·clip(r·g, c)      with clipping
    Δ = μ·Δ − (η·λ)·w − (η·r)·g             without (c = ∞)
    w = w + Δ

The momentum may follow a schedule, as in MXNet.jl (``μ_sched``): with
``momentum_scheduler=`` one of :mod:`mxopt.momentum_scheduler`'s schedules
(or any function of the update count), update ``t`` of a parameter uses
``μ_t = momentum_scheduler(t)`` in place of the constant μ. It is a per-step
scalar of the same rule, so ``Fixed(μ)`` gives the numbers of
``momentum=μ`` bit for bit, and ``Null()`` those of plain SGD.

``ccSGD`` is MXNet's deprecated alias of SGD, kept for old code.
"""
import math
import warnings

from .. import _checks
from .. import momentum_scheduler as _momentum_scheduler
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def sgd(w, g, lr, wd, rescale_grad, clip_gradient):
    """One SGD step for one element: ``w ← w − η·(clip(r·g, c) + λ·w)``.

    MXNet's order: the momentum step with ``μ = 0``, ``w + (−(η·λ)·w − η·clip(r·g, c))``,
    and ``(η·r)·g`` when clipping is off.
    """
    if clip_gradient < math.inf:
        step = -lr * wd * w - lr * clip(rescale_grad * g, clip_gradient)
    else:
        step = -lr * wd * w - lr * rescale_grad * g
    return w + step


def sgd_momentum(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient):
    """One heavy-ball step: ``Δ ← μ·Δ − η·(clip(r·g, c) + λ·w)``, ``w ← w + Δ`` (``mom`` is Δ).

    MXNet's order: ``μ·Δ − (η·λ)·w − η·clip(r·g, c)``, and ``(η·r)·g`` when clipping is off.
    """
    if clip_gradient < math.inf:
        mom = momentum * mom - lr * wd * w - lr * clip(rescale_grad * g, clip_gradient)
    else:
        mom = momentum * mom - lr * wd * w - lr * rescale_grad * g
    return w + mom, mom


SGD_RULE = UpdateRule(sgd, n_state=0)
SGD_MOMENTUM_RULE = UpdateRule(sgd_momentum, n_state=1)


def _optional_schedule(name, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function of the update count t giving the momentum "
                        f"(e.g. mxopt.momentum_scheduler.NadamScheduler()) or None, got {type(value).__name__}")
    return value


@register
class SGD(Optimizer):
    """SGD with optional momentum and weight decay (``mx.optimizer.SGD``).

    Args:
      momentum: the heavy-ball coefficient in [0, 1); 0 keeps no state.
      lazy_update: accepted for MXNet compatibility; it only changes
        row-sparse updates, which mxopt does not have.
      momentum_scheduler: ``None`` (the constant ``momentum``) or a function
        of a parameter's update count ``t`` (1 at its first update) giving
        ``μ_t`` in [0, 1), e.g. :class:`mxopt.momentum_scheduler.NadamScheduler`
        (MXNet.jl's ``μ_sched``). Give it instead of ``momentum``, not with
        a nonzero one. With :class:`~mxopt.momentum_scheduler.Null` SGD keeps
        no state; with any other schedule it keeps the buffer ``mom``.
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, multi_precision, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
      >>> w = np.ones(3, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.ones(3, np.float32), state); w
      array([0.9, 0.9, 0.9], dtype=float32)
      >>> from mxopt.momentum_scheduler import NadamScheduler
      >>> warm = mxopt.SGD(learning_rate=0.1, momentum_scheduler=NadamScheduler(mu=0.9))
      >>> warm.step_scalars(0, t=1, lr=0.1, wd=0.0)['momentum'] == NadamScheduler(mu=0.9)(1)
      True

    References: Robbins & Monro (1951), "A stochastic approximation method";
    Polyak (1964), "Some methods of speeding up the convergence of iteration
    methods"; Sutskever et al. (2013), "On the importance of initialization
    and momentum in deep learning".
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")
    momentum_scheduler = _checks.Checked(_optional_schedule, "the momentum as a function of t, or None")

    def __init__(self, momentum=0.0, lazy_update=True, momentum_scheduler=None, **kwargs):
        momentum_scheduler = _optional_schedule("momentum_scheduler", momentum_scheduler)
        if momentum_scheduler is not None and _checks.unit_interval("momentum", momentum) != 0:
            raise ValueError(f"momentum={momentum!r} was given with momentum_scheduler={momentum_scheduler!r}, "
                             "which sets the momentum of every update: pass only one of them")
        super().__init__(**kwargs)
        self.momentum = momentum
        self.momentum_scheduler = momentum_scheduler
        self.lazy_update = bool(lazy_update)

    @property
    def rule(self):
        if self.momentum_scheduler is not None:
            no_momentum = isinstance(self.momentum_scheduler, _momentum_scheduler.Null)
            return SGD_RULE if no_momentum else SGD_MOMENTUM_RULE
        return SGD_MOMENTUM_RULE if self.momentum > 0 else SGD_RULE

    def momentum_at(self, t):
        """``μ_t``, the momentum of update ``t``: the scheduler's value (checked), else ``momentum``."""
        if self.momentum_scheduler is None:
            return self.momentum
        return _checks.unit_interval(f"momentum_scheduler({t})", self.momentum_scheduler(t))

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum_at(t)}


@register
class ccSGD(SGD):  # noqa: N801 - MXNet's name, so that create('ccsgd') finds it
    """Deprecated alias of :class:`SGD` (``mx.optimizer.ccSGD``); warns when created.

    MXNet 1.9.1 keeps ``ccSGD`` only so that old code runs: it is SGD, with
    the same arguments and the same numbers. Use :class:`SGD` instead.

    Example:
      >>> import warnings, mxopt
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)
      ...     opt = mxopt.create('ccsgd', learning_rate=0.1, momentum=0.9)
      >>> type(opt).__mro__[1].__name__
      'SGD'
    """

    def __init__(self, *args, **kwargs):
        warnings.warn("ccSGD is deprecated (as in MXNet); it is SGD: use mxopt.SGD or create('sgd')",
                      DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
