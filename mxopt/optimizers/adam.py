"""Adam: adaptive moment estimation (Kingma & Ba, 2015).

With ``g̃_t = clip(r·g_t + λ·w_t, c)`` (L2 weight decay inside the
gradient and inside the clip, as MXNet 1.9.1 does; this is not AdamW)::

    m_{t+1} = β₁·m_t + (1 − β₁)·g̃_t
    v_{t+1} = β₂·v_t + (1 − β₂)·g̃_t²
    w_{t+1} = w_t − η̂_{t+1}·m_{t+1} / (√v_{t+1} + ε),   η̂_t = η_t·√(1 − β₂ᵗ) / (1 − β₁ᵗ)

MXNet folds both bias corrections into the learning rate ``η̂`` (``lr_t``),
computed once per step on the host in float64 as ``η·(√(1 − β₂ᵗ)/(1 − β₁ᵗ))``
and then rounded to float32; ``1 − β₁`` and ``1 − β₂`` are computed in
float32 in the kernel, and ``(1 − β₂)·g̃·g̃`` multiplies from the left. The
rule and :meth:`Adam.step_scalars` keep that order, so float32 results are
MXNet's bit for bit. Folding the correction into ``η̂`` equals the paper's
``m̂ / (√v̂ + ε)`` with ε replaced by ``ε/√(1 − β₂ᵗ)``, which is about 31.6·ε
at ``t = 1`` for β₂ = 0.999.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def adam(w, g, mean, var, lr_t, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient):
    """One Adam step for one element; ``mean`` is m, ``var`` is v, ``lr_t`` is η̂ (bias corrections inside).

    ``g̃ = clip(r·g + λ·w, c)``, ``m ← β₁·m + (1 − β₁)·g̃``, ``v ← β₂·v + (1 − β₂)·g̃²``,
    ``w ← w − η̂·m / (√v + ε)``, in MXNet's order of operations.
    """
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    mean = beta1 * mean + (ONE - beta1) * grad
    var = beta2 * var + (ONE - beta2) * grad * grad
    w = w - lr_t * mean / (math.sqrt(var) + epsilon)
    return w, mean, var


ADAM_RULE = UpdateRule(adam, n_state=2)


@register
class Adam(Optimizer):
    """Adam (``mx.optimizer.Adam``).

    Args:
      learning_rate: default 0.001.
      beta1, beta2: decay rates of the moment estimates, in [0, 1).
      epsilon: added to √var, >= 0 (default 1e-8).
      lazy_update: accepted for MXNet compatibility (row-sparse only).
      **kwargs: see :class:`mxopt.Optimizer`.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.Adam(learning_rate=0.1)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([1, -1], np.float32), state); w.round(4)
      array([-0.1,  0.1], dtype=float32)

    Reference: Kingma & Ba (2015), "Adam: A method for stochastic
    optimization", ICLR.
    """

    default_learning_rate = 0.001
    rule = ADAM_RULE
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the second moment")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the second moment")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 lazy_update=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lazy_update = bool(lazy_update)

    def step_scalars(self, index, t, lr, wd):
        # As MXNet's Python does, in float64: lr *= sqrt(coef2) / coef1 (the ratio first).
        lr_t = lr * (math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t))
        return {**super().step_scalars(index, t, lr, wd), "lr_t": lr_t,
                "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}
