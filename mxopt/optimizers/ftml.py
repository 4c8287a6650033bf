"""FTML: follow the moving leader (Zheng & Kwok, 2017).

Follow-the-regularized-leader with exponentially decaying weights on the past
losses and an adaptive proximal term. With ``g̃_t = clip(r·g_t + λ·w_t, c)``
(L2 weight decay inside the gradient and inside the clip, as MXNet 1.9.1
does), update ``t+1`` computes::

    v_{t+1} = β₂·v_t + (1 − β₂)·g̃_t²
    d_{t+1} = (1 − β₁^{t+1})/η_{t+1} · (√(v_{t+1}/(1 − β₂^{t+1})) + ε)
    z_{t+1} = β₁·z_t + (1 − β₁)·g̃_t − (d_{t+1} − β₁·d_t)·w_t
    w_{t+1} = −z_{t+1} / d_{t+1}

with ``d_0 = v_0 = z_0 = 0``; the state arrays are ``(d, v, z)``, MXNet's
names and order. ``d`` is Adam's denominator with the learning
rate and the first-moment bias correction inside: Adam's step is
``m_{t+1}/d_{t+1}``. Because ``w_t = −z_t/d_t`` after every update,
``z_t = −d_t·w_t``, and the update equals ``w_{t+1} = w_t −
(1 − β₁)·g̃_t/d_{t+1}`` in exact arithmetic (the chapter derives it).

MXNet's ``ftml_update`` runs entirely in the weight's dtype, and so does
the rule: the powers are ``β₁ᵗ`` and ``β₂ᵗ`` with ``t`` converted to that
dtype (``powf(β, (float)t)`` for float32 weights, which Numba compiles to the
C library's ``powf`` on the CPU, as MXNet's kernel calls it; they are the
same for every element, and the compiler hoists them out of the loop), ``1 − β`` is
float32, ``(1 − β₂)·g̃²`` squares first, and ``d`` divides by ``η`` before it
multiplies. Float32 results are MXNet's bit for bit. The CUDA kernel's
``powf`` is CUDA's own, as in MXNet's GPU kernel.

Where MXNet returns NaN, mxopt makes no step: when ``η_{t+1}`` is 0 or so
small that ``d_{t+1}`` overflows (``lr_mult = 0``, or a schedule that has
decayed below float32's range), MXNet computes ``∞/∞``; the limit of the
step ``(1 − β₁)·g̃_t/d_{t+1}`` for ``η → 0`` is 0. When ``d_{t+1} = 0``
(``ε = 0`` and ``v_{t+1} = 0``: every gradient so far 0, or too small for
its square to be nonzero in the dtype), MXNet computes ``0/0``. In both
cases ``w``, ``d`` and ``z`` keep their values (so ``z = −d·w`` still holds)
and ``v`` is updated. An infinite gradient still gives NaN, as in MXNet.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def ftml(w, g, d, v, z, lr, beta1, beta2, epsilon, t, wd, rescale_grad, clip_gradient):
    """One FTML step for one element, update number ``t`` (its scalars in MXNet's kernel's order).

    ``g̃ = clip(r·g + λ·w, c)``, ``v ← β₂·v + (1 − β₂)·g̃²``,
    ``d_t = (1 − β₁ᵗ)/η·(√(v/(1 − β₂ᵗ)) + ε)``,
    ``z ← β₁·z + (1 − β₁)·g̃ − (d_t − β₁·d)·w``, ``d ← d_t``, ``w ← −z/d_t``,
    in MXNet's order of operations.
    """
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    v = beta2 * v + (ONE - beta2) * (grad * grad)
    d_t = (ONE - beta1 ** t) / lr * (math.sqrt(v / (ONE - beta2 ** t)) + epsilon)
    z_t = beta1 * z + (ONE - beta1) * grad - (d_t - beta1 * d) * w
    numerator, denominator = z_t, d_t
    if (d_t == 0 or math.isinf(d_t)) and math.isfinite(v):
        # The limit of a step (1 − β₁)·g̃/d_t with η → 0 or v = ε = 0: none. w leaves as −(−w)/1, the
        # same bits, through the same division: returning w itself made LLVM store w with a masked
        # store (1.4x slower on the CPU).
        numerator, denominator, d_t, z_t = -w, ONE, d, z
    return -numerator / denominator, d_t, v, z_t


FTML_RULE = UpdateRule(ftml, n_state=3)


@register
class FTML(Optimizer):
    """FTML, follow the moving leader (``mx.optimizer.FTML``).

    Args:
      beta1: weight decay β₁ of the past losses, in [0, 1) (default 0.6).
      beta2: decay rate of the squared-gradient average, in [0, 1)
        (default 0.999).
      epsilon: added to √v̂, >= 0 (default 1e-8).
      **kwargs: see :class:`mxopt.Optimizer` (``learning_rate`` defaults
        to 0.01, as in MXNet).

    The arguments come in MXNet 1.9.1's order (``FTML(0.5)`` sets β₁).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.FTML(learning_rate=0.1)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([1, -1], np.float32), state); w.round(4)
      array([-0.1,  0.1], dtype=float32)
      >>> state.names
      ('d', 'v', 'z')

    Reference: Zheng & Kwok (2017), "Follow the moving leader in deep
    learning", ICML (PMLR 70).
    """

    rule = FTML_RULE
    beta1 = _checks.Hyper(_checks.unit_interval, "weight decay of the past losses")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the squared-gradient average")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the second moment")

    def __init__(self, beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def step_scalars(self, index, t, lr, wd):
        # t reaches the kernel in its dtype (a float for float32 weights), as MXNet passes it.
        return {**super().step_scalars(index, t, lr, wd), "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon, "t": t}
