"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017).

SGD with momentum, where each layer ``l`` gets its own learning rate, scaled
by the trust ratio of its weight norm to its gradient norm::

    η_l = η·η_LARS·‖w_l‖ / (‖g_l‖·r + λ‖w_l‖ + ε)     if ‖w_l‖ > 0 and ‖g_l‖ > 0, else η
    Δ_l ← μ·Δ_l − η_l·(clip(r·g_l, c) + λ·w_l),   w_l ← w_l + Δ_l

``η_LARS`` is ``eta``; ``‖g_l‖`` is the norm of the raw gradient, taken before
clipping and multiplied by ``rescale_grad`` afterwards, as MXNet 1.9.1 does
(``multi_sum_sq`` then ``multi_lars``). Parameters whose names end in
``gamma``, ``beta`` or ``bias`` (normalisation and bias parameters) keep
``η``. The step after the trust ratio is SGD's, the same arithmetic
(:func:`mxopt.optimizers.sgd.sgd_momentum`), so LARS with every parameter
skipped is SGD bit for bit.

The norms come from :mod:`mxopt._reduce`: over a Trainer's flat buffer every
parameter's ‖w‖² and ‖g‖² are summed in one launch, each parameter's rate
computed in a second and the step taken in a third.
"""
import math

from .. import _checks
from .._reduce import LayerwiseRule
from ..optimizer import Optimizer, register
from .sgd import sgd, sgd_momentum


def lars_sums(w, g):
    """What LARS sums over a layer: ``w²`` and ``g²`` (the raw gradient)."""
    return w * w, g * g


def lars_rate(w_sq, g_sq, trust, lr, eta, eps, wd, rescale_grad):
    """The layer's learning rate η_l from ``Σw²`` and ``Σg²`` (MXNet's ``multi_lars``, in its order).

    ``trust`` is 1 for a layer that uses the trust ratio, 0 for one skipped by name.
    """
    w_norm = math.sqrt(w_sq)
    if trust > 0 and w_norm > 0 and g_sq > 0:
        return lr * eta * w_norm / (math.sqrt(g_sq) * rescale_grad + wd * w_norm + eps)
    return lr


def lars(w, g, layer_lr, wd, rescale_grad, clip_gradient):
    """SGD's step with the layer's rate η_l."""
    return sgd(w, g, layer_lr, wd, rescale_grad, clip_gradient)


def lars_momentum(w, g, mom, layer_lr, momentum, wd, rescale_grad, clip_gradient):
    """The heavy-ball step with the layer's rate η_l (``mom`` is Δ)."""
    return sgd_momentum(w, g, mom, layer_lr, momentum, wd, rescale_grad, clip_gradient)


def lars_momentum_sums(w, g, mom):
    """``w²`` and ``g²``, for the rule with momentum (its arrays include Δ)."""
    return w * w, g * g


LARS_RULE = LayerwiseRule(lars_sums, lars_rate, lars, n_state=0, sums=("w_sq", "g_sq"),
                          segment_inputs=("trust",), values=("layer_lr",))
LARS_MOMENTUM_RULE = LayerwiseRule(lars_momentum_sums, lars_rate, lars_momentum, n_state=1, sums=("w_sq", "g_sq"),
                                   segment_inputs=("trust",), values=("layer_lr",))

#: MXNet's names for parameters that keep the global rate (batch norm's gamma/beta, biases).
SKIPPED_SUFFIXES = ("gamma", "beta", "bias")


@register
class LARS(Optimizer):
    """LARS (``mx.optimizer.LARS``): SGD with a per-layer trust ratio.

    Args:
      momentum: heavy-ball coefficient in [0, 1); 0 keeps no state.
      eta: the LARS coefficient η_LARS (default 0.001), >= 0.
      eps: added to the trust ratio's denominator (default 0), >= 0.
      momentum_correction: multiply μ by η_t/η_{t−1} when the scheduled rate
        changes (Goyal et al., 2017), as MXNet does (default True).
      lazy_update: accepted for MXNet compatibility (row-sparse only).
      **kwargs: see :class:`mxopt.Optimizer`.

    A parameter's name is ``idx2name[index]`` (or the index as a string),
    or its name in a :class:`mxopt.Trainer`; names ending in ``gamma``,
    ``beta`` or ``bias`` keep the global rate.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.LARS(learning_rate=1.0, eta=0.1)
      >>> w = np.full(4, 2.0, np.float32)
      >>> opt.update(0, w, np.ones(4, np.float32), None); w   # η_l = 0.1·4/2 = 0.2
      array([1.8, 1.8, 1.8, 1.8], dtype=float32)

    Reference: You, Gitman & Ginsburg (2017), "Large batch training of
    convolutional networks", arXiv:1708.03888.
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")
    eta = _checks.Hyper(_checks.at_least(0.0), "LARS coefficient")
    eps = _checks.Hyper(_checks.at_least(0.0), "added to the trust ratio's denominator")

    def __init__(self, momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.eta = eta
        self.eps = eps
        self.momentum_correction = _checks.boolean("momentum_correction", momentum_correction)
        self.lazy_update = bool(lazy_update)
        self._last_lr = None  # the scheduled rate of the previous update call (MXNet's last_lr)

    @property
    def rule(self):
        return LARS_MOMENTUM_RULE if self.momentum > 0 else LARS_RULE

    def segment_inputs(self, name):
        return (0.0 if name.endswith(SKIPPED_SUFFIXES) else 1.0,)

    def _update_all(self, items):
        with self._lock:
            super()._update_all(items)
            # MXNet's momentum correction compares a call's scheduled rate with the previous call's.
            self._last_lr = self._lr_at(self.num_update)

    def step_scalars(self, index, t, lr, wd):
        momentum = self.momentum
        if self.momentum_correction and self._last_lr:
            momentum = momentum * (self._lr_at(self._num_update_now) / self._last_lr)
        return {**super().step_scalars(index, t, lr, wd), "momentum": momentum, "eta": self.eta, "eps": self.eps}
