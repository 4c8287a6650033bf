"""Nesterov accelerated gradient (NAG).

Nesterov (1983) evaluates the gradient at the look-ahead point
``w + momentum·mom`` instead of at ``w``. Sutskever et al. (2013) rewrite
the method in terms of the look-ahead iterate so that it needs only the
gradient at the current weights; MXNet 1.9.1's ``nag_mom_update`` computes,
with ``G = clip(rescale_grad·g)``::

    m₁  = momentum·mom
    w'  = w − m₁ + (1 + momentum)·(m₁ − lr·(G + wd·w))
    mom ← m₁ − lr·(G + wd·w')

Because MXNet writes the weight in place before it updates the momentum, the
weight-decay term of the new momentum uses the *updated* weight ``w'``; mxopt
does the same, so trajectories match MXNet's. With ``momentum = 0`` NAG is
plain SGD.
"""
from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register
from .sgd import SGD_RULE


def nag(w, g, mom, lr, momentum, wd, rescale_grad, clip_gradient):
    """MXNet's Nesterov step; ``mom`` holds the velocity (learning rate inside)."""
    grad = clip(rescale_grad * g, clip_gradient)
    mom = momentum * mom
    w_next = w - mom + (ONE + momentum) * (mom - lr * (grad + wd * w))
    mom = mom - lr * (grad + wd * w_next)
    return w_next, mom


NAG_RULE = UpdateRule(nag, n_state=1)


@register
class NAG(Optimizer):
    """Nesterov accelerated gradient (``mx.optimizer.NAG``).

    Args:
      momentum: in [0, 1); with 0 the update is plain SGD and keeps no state.
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
        return NAG_RULE if self.momentum > 0 else SGD_RULE

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum}
