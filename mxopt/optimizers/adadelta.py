"""AdaDelta: steps in the units of the weights, without a learning rate.

Zeiler (2012) notes that in ``Δw = −η·g/RMS[g]`` the units do not match:
the step should have the units of ``w``, but the ratio is unitless. Taking
the RMS of past *updates* in the numerator, a diagonal Newton-like ratio,
fixes the units and removes η. With decay ρ and ``g̃ = clip(r·g, c)``,
MXNet 1.9.1 computes::

    E[g²]  ← ρ·E[g²] + (1 − ρ)·g̃²
    Δ      = √(E[Δw²] + ε) / √(E[g²] + ε) · g̃
    E[Δw²] ← ρ·E[Δw²] + (1 − ρ)·Δ²
    w      ← w − (Δ + λ·w)

Weight decay is decoupled: it is neither in the gradient nor scaled by
anything (MXNet's docstring says otherwise; its code does this). MXNet
multiplies the caller's gradient array by ``rescale_grad`` in place; mxopt
never writes to the gradient.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def adadelta(w, g, acc_g, acc_delta, rho, one_minus_rho, epsilon, wd, rescale_grad, clip_gradient):
    """One AdaDelta step for one element (``one_minus_rho`` = 1 − ρ, from the host)."""
    grad = clip(rescale_grad * g, clip_gradient)
    acc_g = acc_g * rho + one_minus_rho * grad * grad
    delta = math.sqrt(acc_delta + epsilon) / math.sqrt(acc_g + epsilon) * grad
    acc_delta = acc_delta * rho + one_minus_rho * delta * delta
    w = w - (delta + wd * w)
    return w, acc_g, acc_delta


ADADELTA_RULE = UpdateRule(adadelta, n_state=2)


@register
class AdaDelta(Optimizer):
    """AdaDelta (``mx.optimizer.AdaDelta``); it has no learning rate.

    Args:
      rho: decay rate ρ of both averages, in [0, 1) (default 0.9).
      epsilon: added under both square roots, >= 0 (default 1e-5). It also
        sets the size of the first steps: ``Δ ≈ √ε`` while ``E[Δw²]`` is 0.
      **kwargs: see :class:`mxopt.Optimizer`. ``learning_rate`` and
        ``lr_scheduler`` are accepted, as MXNet accepts them, and have no
        effect on the update.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.AdaDelta(rho=0.5, epsilon=1e-4)
      >>> w = np.zeros(2, np.float32); g = np.array([2, -2], np.float32)
      >>> state = opt.create_state(0, w); opt.update(0, w, g, state); w.round(4)
      array([-0.0141,  0.0141], dtype=float32)
      >>> g                                    # the caller's gradient is unchanged
      array([ 2., -2.], dtype=float32)

    Reference: Zeiler (2012), "ADADELTA: An adaptive learning rate method",
    arXiv:1212.5701.
    """

    rule = ADADELTA_RULE
    rho = _checks.Hyper(_checks.unit_interval, "decay rate of the running averages")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added under the square roots")

    def __init__(self, rho=0.9, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def step_scalars(self, index, t, lr, wd):
        # MXNet computes (1. - rho) in Python, in double, and rounds it once.
        return {**super().step_scalars(index, t, lr, wd), "rho": self.rho,
                "one_minus_rho": 1.0 - self.rho, "epsilon": self.epsilon}
