"""Adamax: Adam with the infinity norm in place of the second moment.

Kingma & Ba (2015, §7.1) generalise Adam's second moment to an L^p norm,
``v ← β₂^p·v + (1 − β₂^p)·|g|^p``, and let p → ∞. The limit is a decayed
maximum, ``u ← max(β₂·u, |g|)``, which needs no bias correction (a maximum
is not pulled towards its zero start the way an average is). With
``g̃ = clip(r·g + λ·w, c)`` (L2 weight decay in the gradient), MXNet 1.9.1
computes::

    m ← β₁·m + (1 − β₁)·g̃
    u ← max(β₂·u, |g̃|)
    w ← w − η̂·m / u,        η̂ = η / (1 − β₁ᵗ)

There is no ε. Where ``g̃`` has been exactly 0 since the first update,
``u = m = 0`` and MXNet returns 0/0 = NaN; mxopt takes the step's limit,
0, there (every other coordinate is updated as in MXNet).
"""
from .. import _checks
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def adamax(w, g, m, u, lr_t, beta1, one_minus_beta1, beta2, wd, rescale_grad, clip_gradient):
    """One Adamax step for one element; ``lr_t`` = η/(1 − β₁ᵗ) from the host."""
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    m = m * beta1 + one_minus_beta1 * grad
    u = max(beta2 * u, abs(grad))
    if u == 0:  # no gradient yet in this coordinate (so m = 0): no step
        return w, m, u
    return w - lr_t * m / u, m, u


ADAMAX_RULE = UpdateRule(adamax, n_state=2)


@register
class Adamax(Optimizer):
    """Adamax (``mx.optimizer.Adamax``).

    Args:
      learning_rate: default 0.002 (the paper's value).
      beta1: decay rate of the first moment, in [0, 1) (default 0.9).
      beta2: decay of the infinity norm, in [0, 1) (default 0.999).
      **kwargs: see :class:`mxopt.Optimizer`.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.Adamax(learning_rate=0.1)
      >>> w = np.zeros(3, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([4, -1, 0], np.float32), state); w   # no NaN at g = 0
      array([-0.1,  0.1,  0. ], dtype=float32)

    Reference: Kingma & Ba (2015), "Adam: A method for stochastic
    optimization", ICLR, section 7.1.
    """

    default_learning_rate = 0.002
    rule = ADAMAX_RULE
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the infinity norm")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2

    def step_scalars(self, index, t, lr, wd):
        # MXNet computes lr / (1 - beta1**t) and (1 - beta1) in Python, in double.
        return {**super().step_scalars(index, t, lr, wd), "lr_t": lr / (1.0 - self.beta1 ** t),
                "beta1": self.beta1, "one_minus_beta1": 1.0 - self.beta1, "beta2": self.beta2}
