"""LAMB: layer-wise adaptive moments for large batches (You et al., 2020).

Adam's step ``r``, scaled per layer by the trust ratio ‖w‖/‖r‖. With
``g̃ = clip(r_s·g, c)`` (``r_s`` = rescale_grad)::

    m ← β₁·m + (1 − β₁)·g̃,   v ← β₂·v + (1 − β₂)·g̃²
    r = m̂ / (√v̂ + ε) + λ·w,   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   (m, v without bias correction)
    φ = clamp(‖w‖, lower_bound, upper_bound)
    w ← w − η·φ/‖r‖·r          (w ← w − η·r when φ = 0 or ‖r‖ = 0)

The weight decay is decoupled (added to ``r``, not clipped). The rule keeps
MXNet 1.9.1's kernels' rounding (``lamb_update_phase1/2``): ``1 − β`` in
float32, ``β₁ᵗ`` from a double ``pow`` rounded to float32, ``m̂`` divided in
double and rounded back (in float32 at the steps where that is the same
number: :meth:`LAMB._wide`), ``v̂`` divided in float32, ``η·φ/‖r‖`` from the
left.
The norms are sums of squares (:mod:`mxopt._reduce`); MXNet's ``norm()``
uses a rescaled sum (LAPACK's ``snrm2``), which may differ in the last bit.

Two passes, as MXNet's ``lamb_update_phase1/2``: the first computes the
moments and ``r``, writes ``m``, ``v`` and ``r`` (a scratch array kept with
the parameter's plan) and sums ``w²`` and ``r²`` per layer; the second reads
``w`` and ``r`` and writes ``w``. Storing ``r`` costs 8 bytes per element;
recomputing it would cost two divisions and a square root per element
again, which on the CPU take longer than the memory traffic.

With ``multi_precision`` the float32 master copy is updated, and the float16
weight receives its rounded value. MXNet 1.9.1's ``mp_lamb_update_phase2``
writes only the float16 weight and never the master copy, so there every
step starts again from the first master weights; mxopt fixes that.
"""
import math

import numpy as np

from .. import _checks
from .._reduce import LayerwiseRule, narrow
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def lamb_direction(w, g, mean, var, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient, bias1, bias2):
    """The new moments and LAMB's direction ``r`` for one element.

    ``bias1 = 1 − β₁ᵗ`` (float64: MXNet divides ``m`` by it in double) and
    ``bias2 = 1 − β₂ᵗ`` (float32); both are 1 without bias correction,
    where dividing by them changes nothing.
    """
    grad = clip(g * rescale_grad, clip_gradient)
    mean = beta1 * mean + (ONE - beta1) * grad
    var = beta2 * var + (ONE - beta2) * grad * grad
    mean_hat = narrow(mean / bias1, mean)
    var_hat = var / bias2
    r = mean_hat / (math.sqrt(var_hat) + epsilon) + wd * w
    return mean, var, r


def lamb_sums(w, g, mean, var, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient, bias1, bias2):
    """LAMB's first pass for one element: what it sums over a layer (``w²``, ``r²``), the new moments and ``r``."""
    mean, var, r = lamb_direction(w, g, mean, var, beta1, beta2, epsilon, wd, rescale_grad, clip_gradient,
                                  bias1, bias2)
    return w * w, r * r, mean, var, r


def lamb_rate(w_sq, r_sq, lr, lower_bound, upper_bound):
    """η·φ/‖r‖ from ``Σw²`` and ``Σr²``; a bound < 0 is off (MXNet's phase 2)."""
    phi = math.sqrt(w_sq)
    if lower_bound >= 0:
        phi = max(phi, lower_bound)
    if upper_bound >= 0:
        phi = min(phi, upper_bound)
    r_norm = math.sqrt(r_sq)
    if phi == 0 or r_norm == 0:
        return lr
    return lr * phi / r_norm


def lamb(w, r, layer_lr):
    """LAMB's step for one element: along its direction ``r`` with its layer's rate ``η·φ/‖r‖``."""
    return w - layer_lr * r


LAMB_RULE = LayerwiseRule(lamb_sums, lamb_rate, lamb, n_state=2, sums=("w_sq", "r_sq"), carry=("mean", "var", "r"),
                          values=("layer_lr",))


def _optional_bound(name, value):
    if value is None:
        return None
    return _checks.at_least(0.0)(name, value)


@register
class LAMB(Optimizer):
    """LAMB (``mx.optimizer.LAMB``): Adam's step with a per-layer trust ratio.

    Args:
      learning_rate: default 0.001.
      beta1, beta2: decay rates of the moments, in [0, 1) (0.9, 0.999).
      epsilon: added to √v̂ (default 1e-6), >= 0.
      lower_bound, upper_bound: clamp ‖w‖ in the trust ratio; ``None`` or 0
        is off, as in MXNet (default None).
      bias_correction: divide the moments by ``1 − βᵗ`` (default True).
      **kwargs: see :class:`mxopt.Optimizer` (wd is decoupled).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.LAMB(learning_rate=0.1)
      >>> w = np.full(4, 3.0, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.ones(4, np.float32), state); w.round(4)   # r ≈ 1, ‖w‖/‖r‖ = 3
      array([2.7, 2.7, 2.7, 2.7], dtype=float32)

    Reference: You et al. (2020), "Large batch optimization for deep
    learning: training BERT in 76 minutes", ICLR.
    """

    default_learning_rate = 0.001
    rule = LAMB_RULE
    float64_scalars = frozenset({"bias1"})
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the second moment")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the second moment")
    lower_bound = _checks.Hyper(_optional_bound, "lower clamp of the weight norm, or None")
    upper_bound = _checks.Hyper(_optional_bound, "upper clamp of the weight norm, or None")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-6, lower_bound=None,
                 upper_bound=None, bias_correction=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.lower_bound = lower_bound
        self.upper_bound = upper_bound
        self.bias_correction = _checks.boolean("bias_correction", bias_correction)

    def step_scalars(self, index, t, lr, wd):
        if self.bias_correction:
            # MXNet: beta_t = std::pow(float beta, t) (a double pow) stored in float32; m / (1. - beta1_t)
            # divides in double, v / (1 - beta2_t) in float32.
            beta1_t = float(np.float32(math.pow(float(np.float32(self.beta1)), t)))
            beta2_t = np.float32(math.pow(float(np.float32(self.beta2)), t))
            bias1, bias2 = 1.0 - beta1_t, float(np.float32(1) - beta2_t)
        else:
            bias1 = bias2 = 1.0
        # MXNet passes a bound only when it is truthy; the kernel treats a negative one as off.
        lower = self.lower_bound if self.lower_bound else -1.0
        upper = self.upper_bound if self.upper_bound else -1.0
        return {**super().step_scalars(index, t, lr, wd), "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon, "bias1": bias1, "bias2": bias2, "lower_bound": lower,
                "upper_bound": upper}

    def _wide(self, args, scalars, names):
        """``bias1`` as float32 where that gives MXNet's double quotient ``m/(1 − β₁ᵗ)`` (faster), else float64.

        For float32 ``m``: where ``1 − β₁ᵗ`` is a float32 number (β₁ᵗ ≥ 1/2,
        or no bias correction), a quotient of two float32 numbers rounded
        first to double and then to float32 is rounded once (53 ≥ 2·24 + 2:
        Figueroa, 1995), so the float32 division gives the same number. Where
        ``β₁ᵗ ≤ 2⁻²⁵·(1 − β₁ᵗ)``, ``m/(1 − β₁ᵗ) = m·(1 + δ)`` with
        ``δ ≤ 2⁻²⁵``, within half an ULP of ``m``: it rounds to ``m``, which is
        ``m/1``. A float32 division costs a fraction of a double one.
        """
        k = names.index("bias1")
        if isinstance(args[k], np.float32):
            bias1 = scalars["bias1"]
            if float(np.float32(bias1)) == bias1:
                return args
            if 1.0 - bias1 <= 2.0**-25 * bias1:
                return (*args[:k], np.float32(1), *args[k + 1:])
        return super()._wide(args, scalars, names)
