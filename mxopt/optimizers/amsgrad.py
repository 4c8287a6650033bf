"""AMSGrad: Adam whose denominator never shrinks.

Reddi, Kale & Kumar (2018) show that Adam's exponential average of g² can
forget a rare large gradient and so fail to converge, even on a convex
problem. AMSGrad (their Algorithm 2) divides by the running maximum of the
second moment instead, which makes each coordinate's effective step
``η/(√v^max + ε)`` non-increasing, and drops the bias correction. mxopt
treats weight decay, ``rescale_grad`` and ``clip_gradient`` as its Adam
does, ``g̃ = clip(r·g + λ·w, c)``::

    m     ← β₁·m + (1 − β₁)·g̃
    v     ← β₂·v + (1 − β₂)·g̃²
    v^max ← max(v^max, v)
    w     ← w − η·m / (√v^max + ε)

AMSGrad is not an MXNet 1.9.1 optimizer; the arithmetic follows MXNet's
Adam kernel (the same order, ``1 − β`` in the kernel's precision), so with
``v^max = v`` it is MXNet's Adam without bias correction.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def amsgrad(w, g, mean, var, var_max, lr, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient):
    """One AMSGrad step for one element: Adam's moments, divided by ``max(v^max, v)``."""
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    mean = beta1 * mean + (ONE - beta1) * grad
    var = beta2 * var + (ONE - beta2) * grad * grad
    var_max = max(var_max, var)
    w = w - lr * mean / (math.sqrt(var_max) + epsilon)
    return w, mean, var, var_max


AMSGRAD_RULE = UpdateRule(amsgrad, n_state=3)


@register
class AMSGrad(Optimizer):
    """AMSGrad (Reddi et al. 2018, Algorithm 2; not in MXNet 1.9.1).

    Args:
      learning_rate: default 0.001.
      beta1, beta2: decay rates of the moment estimates, in [0, 1)
        (defaults 0.9, 0.999).
      epsilon: added to √v^max, >= 0 (default 1e-8).
      **kwargs: see :class:`mxopt.Optimizer`.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.AMSGrad(learning_rate=0.1, beta1=0.5, beta2=0.75, epsilon=0.0)
      >>> w = np.zeros(1, np.float32); state = opt.create_state(0, w)
      >>> for g in (4, 1):
      ...     opt.update(0, w, np.array([g], np.float32), state)
      >>> state.var, state.var_max       # v fell after the small gradient, v^max did not
      (array([3.25], dtype=float32), array([4.], dtype=float32))

    Reference: Reddi, Kale & Kumar (2018), "On the convergence of Adam and
    beyond", ICLR.
    """

    default_learning_rate = 0.001
    rule = AMSGRAD_RULE
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the second moment")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the maximal second moment")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "beta1": self.beta1,
                "beta2": self.beta2, "epsilon": self.epsilon}
