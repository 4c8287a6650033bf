"""RMSProp: divide by a running root mean square of the gradients.

AdaGrad's sum of squares only grows, so its steps only shrink. Hinton's
RMSProp (lecture 6e of "Neural Networks for Machine Learning", 2012) keeps
an exponentially weighted average instead, with decay ρ (MXNet's
``gamma1``). With ``g̃ = clip(r·g + λ·w, c)`` (weight decay inside the
gradient, before clipping), MXNet 1.9.1's ``rmsprop_update`` computes::

    n ← (1 − ρ)·g̃² + ρ·n
    w ← w − η·g̃ / √(n + ε)

The centered variant of Graves (2013, eqs. 38–45; ``rmspropalex_update``)
also tracks the mean gradient ``ḡ`` and divides by an estimate of the
standard deviation, with a momentum μ (MXNet's ``gamma2``) on the step::

    n ← (1 − ρ)·g̃² + ρ·n
    ḡ ← (1 − ρ)·g̃ + ρ·ḡ
    Δ ← μ·Δ − η·g̃ / √(n − ḡ² + ε)
    w ← w + Δ

Both may clip the new weights to ``[−clip_weights, clip_weights]``.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def rmsprop(w, g, n, lr, gamma1, epsilon, wd, rescale_grad, clip_gradient, clip_weights):
    """One RMSProp step for one element: ``n ← (1−ρ)g̃² + ρn;  w ← w − ηg̃/√(n+ε)``."""
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    n = (ONE - gamma1) * (grad * grad) + gamma1 * n
    w = clip(w - lr * (grad / math.sqrt(n + epsilon)), clip_weights)
    return w, n


def rmsprop_centered(w, grad, n, g, delta, lr, gamma1, gamma2, epsilon, wd, rescale_grad,
                     clip_gradient, clip_weights):
    """One centered RMSProp step (Graves 2013) for one element.

    The gradient is ``grad`` here because MXNet names the mean-gradient state
    ``g`` (ḡ in the equations).
    """
    grad = clip(rescale_grad * grad + wd * w, clip_gradient)
    n = (ONE - gamma1) * grad * grad + gamma1 * n
    g = (ONE - gamma1) * grad + gamma1 * g
    delta = gamma2 * delta - lr * grad / math.sqrt(n - g * g + epsilon)
    w = clip(w + delta, clip_weights)
    return w, n, g, delta


RMSPROP_RULE = UpdateRule(rmsprop, n_state=1)
RMSPROP_CENTERED_RULE = UpdateRule(rmsprop_centered, n_state=3)


@register
class RMSProp(Optimizer):
    """RMSProp, plain or centered (``mx.optimizer.RMSProp``).

    Args:
      learning_rate: default 0.001.
      gamma1: decay rate ρ of the squared-gradient average, in [0, 1)
        (default 0.9).
      gamma2: momentum μ of the centered variant, in [0, 1) (default 0.9;
        unused when not centered).
      epsilon: added under the square root, >= 0 (default 1e-8).
      centered: Graves' centered form (three state arrays instead of one).
      clip_weights: clip the updated weights to ``[-clip_weights,
        clip_weights]``; ``None`` is off, a value <= 0 is an error.
      **kwargs: see :class:`mxopt.Optimizer`.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.RMSProp(learning_rate=0.01, gamma1=0.75, epsilon=0.0)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([3, -1], np.float32), state); w.round(4)
      array([-0.02,  0.02], dtype=float32)

    References: Tieleman & Hinton (2012), "Lecture 6.5 - RMSProp", COURSERA:
    Neural Networks for Machine Learning; Graves (2013), "Generating
    sequences with recurrent neural networks", arXiv:1308.0850.
    """

    default_learning_rate = 0.001
    off_when_infinite = Optimizer.off_when_infinite | {"clip_weights"}
    gamma1 = _checks.Hyper(_checks.unit_interval, "decay rate of the squared-gradient average")
    gamma2 = _checks.Hyper(_checks.unit_interval, "momentum of the centered variant")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added under the square root")
    clip_weights = _checks.Hyper(_checks.optional(_checks.at_least(0.0, strict=True)),
                                  "weight clipping bound")

    def __init__(self, learning_rate=None, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(centered, bool):
            raise TypeError(f"centered must be a bool, got {type(centered).__name__} {centered!r}")
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.epsilon = epsilon
        self.centered = centered
        self.clip_weights = clip_weights

    @property
    def rule(self):
        return RMSPROP_CENTERED_RULE if self.centered else RMSPROP_RULE

    def step_scalars(self, index, t, lr, wd):
        clip_weights = math.inf if self.clip_weights is None else self.clip_weights
        return {**super().step_scalars(index, t, lr, wd), "gamma1": self.gamma1,
                "gamma2": self.gamma2, "epsilon": self.epsilon, "clip_weights": clip_weights}
