"""Nesterov accelerated gradient (NAG).

Nesterov (1983) evaluates the gradient at the look-ahead point
``y_t = w_t + μ·Δ_t`` instead of at ``w_t``. Sutskever et al. (2013) rewrite
the method in terms of the look-ahead iterate, so that it needs only the
gradient at the stored weights: mxopt and MXNet store ``y`` (``weight``)
and the velocity ``Δ`` (state ``mom``, learning rate inside). MXNet 1.9.1's
``nag_mom_update`` computes, with ``g̃ = clip(r·g, c)``::

    μΔ      = μ·Δ_t
    y_{t+1} = y_t − μΔ + (1 + μ)·(μΔ − η·(g̃ + λ·y_t))
    Δ_{t+1} = μΔ − η·(g̃ + λ·y_{t+1})

Because MXNet writes the weight in place before it updates the momentum, the
weight-decay term of the new momentum uses the *updated* weight ``y_{t+1}``;
mxopt does the same, so trajectories match MXNet's, bit for bit in float32
(the rule keeps the kernel's order of operations).

With ``μ = 0`` NAG is plain SGD, but MXNet runs it through another kernel
than :class:`~mxopt.SGD` (``sgd_update``, not ``multi_sgd_update``), which
applies weight decay as a shrink factor::

    w_{t+1} = (1 − η·λ)·w_t − η·clip(r·g_t, c)      ((η·r)·g without clipping)

Equal in exact arithmetic, the two orders round differently: with ``λ > 0``
NAG(μ=0) and SGD(μ=0) may differ in the last bit, in MXNet and in mxopt.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def nag(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient):
    """One Nesterov step for one element: ``w`` is the look-ahead point y, ``mom`` is Δ.

    ``y ← y − μΔ + (1 + μ)·(μΔ − η·(g̃ + λ·y))`` and ``Δ ← μΔ − η·(g̃ + λ·y_new)``,
    ``g̃ = clip(r·g, c)``, in MXNet's order of operations.
    """
    grad = clip(rescale_grad * g, clip_gradient)
    mom = momentum * mom
    w_next = w - mom + (ONE + momentum) * (mom - lr * (grad + wd * w))
    mom = mom - lr * (grad + wd * w_next)
    return w_next, mom


def nag_without_momentum(w, g, lr, wd, rescale_grad, clip_gradient):
    """NAG with ``μ = 0``, MXNet's ``sgd_update``: ``w ← (1 − η·λ)·w − η·clip(r·g, c)``.

    MXNet's order: the factor ``(1 − η·λ)`` first, and ``(η·r)·g`` when clipping is off.
    """
    if clip_gradient < math.inf:
        return (ONE - lr * wd) * w - lr * clip(rescale_grad * g, clip_gradient)
    return (ONE - lr * wd) * w - lr * rescale_grad * g


NAG_RULE = UpdateRule(nag, n_state=1)
NAG_WITHOUT_MOMENTUM_RULE = UpdateRule(nag_without_momentum, n_state=0)


@register
class NAG(Optimizer):
    """Nesterov accelerated gradient (``mx.optimizer.NAG``).

    Args:
      momentum: in [0, 1); with 0 the update is plain SGD (MXNet's
        ``sgd_update`` order) and keeps no state.
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.NAG(learning_rate=0.1, momentum=0.9)
      >>> w = np.ones(2); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.ones(2), state); w.round(4)
      array([0.81, 0.81])

    References: Nesterov (1983), "A method for solving the convex programming
    problem with convergence rate O(1/k^2)"; Sutskever et al. (2013).
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    @property
    def rule(self):
        return NAG_RULE if self.momentum > 0 else NAG_WITHOUT_MOMENTUM_RULE

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum}
