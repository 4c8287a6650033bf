"""AdaGrad: per-coordinate learning rates from the sum of squared gradients.

Duchi, Hazan & Singer (2011) scale each coordinate's step by the inverse
square root of the sum of its squared past gradients, the diagonal of
``G_t = Σ g_s g_sᵀ``. Coordinates that rarely see a gradient keep a small
sum and so take large steps; busy ones slow down. With
``g̃ = clip(r·g, c)`` (weight decay kept out of the sum), MXNet 1.9.1
computes::

    G ← G + g̃²
    w ← w + (g̃ / √(G + ε) + λ·w)·(−η)

ε sits inside the square root. The weight-decay term is added after the
division, so it is scaled by η but never by the accumulated history.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def adagrad(w, g, history, lr, eps, wd, rescale_grad, clip_gradient):
    """One AdaGrad step for one element: ``G ← G + g̃²;  w ← w + (g̃/√(G+ε) + λw)(−η)``."""
    grad = clip(rescale_grad * g, clip_gradient)
    history = history + grad * grad
    w = w + (grad / math.sqrt(history + eps) + w * wd) * -lr
    return w, history


ADAGRAD_RULE = UpdateRule(adagrad, n_state=1)


@register
class AdaGrad(Optimizer):
    """AdaGrad (``mx.optimizer.AdaGrad``).

    Args:
      eps: added to the sum of squares inside the square root, >= 0
        (default 1e-7).
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, multi_precision, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.AdaGrad(learning_rate=0.1)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([2, -0.5], np.float32), state); w.round(4)
      array([-0.1,  0.1], dtype=float32)

    Reference: Duchi, Hazan & Singer (2011), "Adaptive subgradient methods
    for online learning and stochastic optimization", JMLR 12.
    """

    rule = ADAGRAD_RULE
    eps = _checks.Hyper(_checks.at_least(0.0), "added to the sum of squared gradients")

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps

    @property
    def float_stable_eps(self):
        """MXNet's attribute name for ``eps``."""
        return self.eps

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "eps": self.eps}
