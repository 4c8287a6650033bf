"""Stochastic gradient descent, with optional momentum and weight decay.

Plain SGD (Robbins & Monro, 1951) moves against the gradient of the loss
plus an L2 penalty ``wd/2 * |w|^2``::

    w ← w − lr·(clip(rescale_grad·g) + wd·w)

With momentum (Polyak's heavy ball, 1964) the step is an exponentially
weighted sum of past steps. MXNet keeps the learning rate inside the
momentum buffer ``mom`` (``mom`` is a velocity, not an average gradient)::

    mom ← momentum·mom − lr·wd·w − lr·clip(rescale_grad·g)
    w   ← w + mom

Weight decay is added after clipping and is never clipped (MXNet 1.9.1's
``sgd_update``/``sgd_mom_update``).
"""
from .. import _checks
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def sgd(w, g, lr, wd, rescale_grad, clip_gradient):
    """w ← w − lr·wd·w − lr·clip(rescale_grad·g)."""
    return w - lr * wd * w - lr * clip(rescale_grad * g, clip_gradient)


def sgd_momentum(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient):
    """mom ← momentum·mom − lr·wd·w − lr·clip(rescale_grad·g);  w ← w + mom."""
    mom = momentum * mom - lr * wd * w - lr * clip(rescale_grad * g, clip_gradient)
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
