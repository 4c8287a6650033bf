"""AdamW: Adam with weight decay decoupled from the gradient.

Loshchilov & Hutter (2019) observe that L2 regularisation inside Adam
(``g + λ·w``) is divided by ``√v`` like the rest of the gradient, so
weights with large gradients are decayed less. Their AdamW (Algorithm 2)
takes the decay out of the gradient and applies it directly to the weights,
both scaled by a schedule multiplier η_t::

    w ← w − η_t·(α·m̂/(√v̂ + ε) + λ·w)

MXNet's kernel ``adamw_update`` computes exactly this line, with ``eta`` for
η_t, ``lr`` for α and, in place of the bias-corrected moments, the raw ones.
MXNet 2.0's ``mx.optimizer.AdamW`` calls it with α = 1 and η_t the learning
rate, the bias correction folded in as in Adam. With ``g̃ = clip(r·g, c)``
(no weight decay in the gradient)::

    m ← β₁·m + (1 − β₁)·g̃
    v ← β₂·v + (1 − β₂)·g̃²
    w ← w − η̂·(m/(√v + ε) + λ·w),   η̂ = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ)  (η without correct_bias)

So the decay is scaled by the bias-corrected rate η̂, not by η: PyTorch's
AdamW multiplies the weights by 1 − η·λ, a decay stronger than this one by
the factor (1 − β₁ᵗ)/√(1 − β₂ᵗ) (about 3.2 at t = 1, 6.6 at t = 12, and 1
only after a few thousand steps); the two agree when λ = 0 and ε = 0. ε is
not bias-corrected (as in MXNet's Adam). The AdamW chapter compares the
three forms.

MXNet's op also takes ``rescale_grad`` as an array and skips the whole update
when it is 0 or not finite, which is how its loss scaler drops a step with
overflowing float16 gradients. mxopt's ``rescale_grad`` is a checked
hyperparameter: a value that is 0, infinite or NaN is refused (ValueError)
when it is set, so a step the scaler would skip is one the caller does not
take; the weights and moments are then what MXNet's skipped op leaves.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def adamw(w, g, mean, var, eta, alpha, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient):
    """One AdamW step for one element: MXNet's ``adamw_update`` (η_t = ``eta``, α = ``alpha``)."""
    grad = clip(rescale_grad * g, clip_gradient)
    mean = beta1 * mean + (ONE - beta1) * grad
    var = beta2 * var + (ONE - beta2) * (grad * grad)
    w = w - eta * (alpha * mean / (math.sqrt(var) + epsilon) + wd * w)
    return w, mean, var


ADAMW_RULE = UpdateRule(adamw, n_state=2)


@register
class AdamW(Optimizer):
    """AdamW as MXNet 2.0's ``mx.optimizer.AdamW`` (not in MXNet 1.9.1).

    Args:
      learning_rate: default 0.001; it scales the decay too.
      beta1, beta2: decay rates of the moment estimates, in [0, 1)
        (defaults 0.9, 0.999).
      epsilon: added to √v, >= 0 (default 1e-6).
      correct_bias: fold Adam's bias corrections into the learning rate
        (default True).
      **kwargs: see :class:`mxopt.Optimizer`; ``wd`` is the decoupled decay.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.AdamW(learning_rate=0.1, epsilon=0.0, correct_bias=False, wd=0.5)
      >>> w = np.ones(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([0.3, -0.3], np.float32), state)
      >>> w.round(4)   # 1 − 0.1·(m/√v + 0.5·1), m/√v = ±0.03/√0.00009 = ±√10
      array([0.6338, 1.2662], dtype=float32)

    References: Loshchilov & Hutter (2019), "Decoupled weight decay
    regularization", ICLR; Kingma & Ba (2015), "Adam: A method for
    stochastic optimization", ICLR.
    """

    default_learning_rate = 0.001
    rule = ADAMW_RULE
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the second moment")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the second moment")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        if not isinstance(correct_bias, bool):
            raise TypeError(f"correct_bias must be a bool, got {type(correct_bias).__name__} {correct_bias!r}")
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.correct_bias = correct_bias

    def step_scalars(self, index, t, lr, wd):
        if self.correct_bias:  # in double, in MXNet 2.0's order: lr *= sqrt(coef2) / coef1
            lr = lr * (math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t))
        return {**super().step_scalars(index, t, lr, wd), "eta": lr, "alpha": 1.0,
                "beta1": self.beta1, "beta2": self.beta2, "epsilon": self.epsilon}
