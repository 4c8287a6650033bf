"""FTRL-Proximal: follow the regularized leader, with an L1 term that gives exact zeros.

McMahan et al. (2013) choose the next weights as the minimiser of everything
seen so far: the linearised past losses, an L1 and an L2 penalty, and a
proximal term that keeps them near the weights already played,

    w_{t+1} = argmin_w  (Σ_{s≤t} g̃_s)·w + λ₁‖w‖₁ + ½(λ + β/η)‖w‖² + ½ Σ_{s≤t+1} σ_s‖w − w_{s−1}‖²,

with one learning rate per coordinate, η/(β + √n), so that
``σ_{t+1} = (√n_{t+1} − √n_t)/η`` and the σ's add up to ``√n_{t+1}/η``. Per
coordinate that minimum has a closed form. With ``g̃ = clip(r·g, c)``
(rescaled and clipped, no weight decay inside; ``λ`` = wd is McMahan's
λ₂, ``η`` = learning_rate their α), MXNet 1.9.1's ``ftrl_update`` computes::

    z ← z + (g̃ − (√(n + g̃²) − √n)·w / η)
    n ← n + g̃²
    w ← 0                                             if |z| ≤ λ₁
    w ← (sgn(z)·λ₁ − z) / ((β + √n)/η + λ)            otherwise

``z`` is the sum of the gradients, corrected by ``σ·w`` for the weights the
proximal terms pull towards, and ``n`` the sum of the squared gradients (as
AdaGrad's). A coordinate whose ``|z|`` has not passed λ₁ is exactly 0: the
source of FTRL's sparse models. With λ₁ = λ = 0 and ``w₀ = 0`` (or β = 0)
the rule is online gradient descent with AdaGrad's rates,
``w ← w − η·g̃/(β + √n)`` (McMahan 2011).

Where mxopt departs from MXNet 1.9.1:

* MXNet's ``Ftrl`` sets its learning rate after the base constructor, so an
  ``lr_scheduler`` keeps its ``base_lr`` and an explicit ``learning_rate``
  that contradicts it is ignored without a word (every other MXNet optimizer
  overwrites ``base_lr`` with it and prints a note). mxopt has one policy for
  all optimizers: the contradiction is a ``ValueError``.
* η = 0 (``lr_mult = 0``, or a schedule decayed below float32's range) leaves
  w, z and n as they were; MXNet divides by 0 and writes NaN.
* Where |z| ≤ λ₁ while β + √n = λ = 0 (β = 0, no gradient yet, no weight
  decay), mxopt writes the minimiser, 0; MXNet computes 0/0·0 = NaN.

Elsewhere the numbers are MXNet's: the rule keeps the kernel's order of
float32 operations, and the zero of a coordinate with |z| ≤ λ₁ carries the
sign MXNet's ``(sgn(z)·λ₁ − z)·0`` gives it.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register
from .signum import sign


def ftrl(w, g, z, n, lr, lamda1, beta, wd, rescale_grad, clip_gradient):
    """One FTRL-Proximal step for one element, in MXNet's order of operations.

    ``z ← z + (g̃ − (√(n + g̃²) − √n)·w/η)``, ``n ← n + g̃²``, then
    ``w ← (sgn(z)·λ₁ − z) / ((β + √n)/η + λ)``, or 0 where ``|z| ≤ λ₁``.
    """
    if lr == 0:  # σ = ∞: the proximal term holds w where it is (the formula would divide by 0)
        return w, z, n
    grad = clip(rescale_grad * g, clip_gradient)
    z = z + (grad - (math.sqrt(n + grad * grad) - math.sqrt(n)) * w / lr)
    n = n + grad * grad
    shrunk = sign(z) * lamda1 - z  # −(z − λ₁·sgn z)
    if abs(z) <= lamda1:  # the L1 term wins: an exact zero, signed like shrunk·0
        return shrunk * (ONE - ONE), z, n
    return shrunk / ((beta + math.sqrt(n)) / lr + wd), z, n


FTRL_RULE = UpdateRule(ftrl, n_state=2)


@register
class Ftrl(Optimizer):
    """FTRL-Proximal (``mx.optimizer.Ftrl``), sparse through its L1 term.

    Args:
      lamda1: the L1 strength λ₁ >= 0 (default 0.01; MXNet's spelling).
        Coordinates with ``|z| <= lamda1`` are exactly 0.
      learning_rate: η, McMahan et al.'s α (default 0.1): coordinate i's
        rate is ``η/(β + √n_i)``. With an ``lr_scheduler``, see the module
        docstring for where MXNet 1.9.1 differs.
      beta: β >= 0 in that rate (default 1).
      **kwargs: see :class:`mxopt.Optimizer` (wd is the L2 strength λ,
        McMahan et al.'s λ₂; rescale_grad, clip_gradient, lr_scheduler,
        multi_precision, ...).

    State: ``z`` and ``n`` (MXNet's names), zero at the start.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.Ftrl(learning_rate=0.1, lamda1=0.01)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([2.0, 0.005], np.float32), state); w.round(4)
      array([-0.0663,  0.    ], dtype=float32)
      >>> state.z      # the second coordinate's |z| <= lamda1: exactly 0
      array([2.   , 0.005], dtype=float32)

    References: McMahan et al. (2013), "Ad click prediction: a view from the
    trenches", KDD (Algorithm 1); McMahan (2011), "Follow-the-regularized-
    leader and mirror descent: equivalence theorems and L1 regularization",
    AISTATS.
    """

    default_learning_rate = 0.1
    rule = FTRL_RULE
    lamda1 = _checks.Hyper(_checks.at_least(0.0), "L1 regularization strength")
    beta = _checks.Hyper(_checks.at_least(0.0), "added to the root of the sum of squared gradients")

    def __init__(self, lamda1=0.01, learning_rate=None, beta=1.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1 = lamda1
        self.beta = beta

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "lamda1": self.lamda1, "beta": self.beta}
