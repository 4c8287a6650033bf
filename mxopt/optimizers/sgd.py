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

``ccSGD`` is MXNet's deprecated alias of SGD, kept for old code.
"""
import math
import warnings

from .. import _checks
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


@register
class SGD(Optimizer):
    """SGD with optional momentum and weight decay (``mx.optimizer.SGD``).

    Args:
      momentum: the heavy-ball coefficient in [0, 1); 0 keeps no state.
      lazy_update: accepted for MXNet compatibility; it only changes
        row-sparse updates, which mxopt does not have.
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, multi_precision, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
      >>> w = np.ones(3, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.ones(3, np.float32), state); w
      array([0.9, 0.9, 0.9], dtype=float32)

    References: Robbins & Monro (1951), "A stochastic approximation method";
    Polyak (1964), "Some methods of speeding up the convergence of iteration
    methods"; Sutskever et al. (2013), "On the importance of initialization
    and momentum in deep learning".
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lazy_update = bool(lazy_update)

    @property
    def rule(self):
        return SGD_MOMENTUM_RULE if self.momentum > 0 else SGD_RULE

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum}


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
