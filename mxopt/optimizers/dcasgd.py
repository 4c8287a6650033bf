"""DCASGD: asynchronous SGD with delay compensation.

In asynchronous data-parallel training a worker computes its gradient at
weights ``w_prev`` that other workers have moved on from by the time the
gradient arrives at ``w``. Zheng et al. (2017) correct the stale gradient
with the first term of its Taylor expansion around ``w_prev``,
``g(w) ≈ g(w_prev) + H·(w − w_prev)``, and replace the Hessian ``H`` by the
cheap, diagonal approximation ``λ_dc·g ⊙ g`` (the outer product of the
gradient is an unbiased estimate of the Fisher information; ``λ_dc`` is
``lamda``). With ``g̃ = clip(r·g_t, c)`` MXNet 1.9.1 computes::

    Δ_{t+1} = −η_{t+1}·(g̃ + λ·w_t + λ_dc·g̃ ⊙ g̃ ⊙ (w_t − w_prev))
    w_prev ← w_t
    w_{t+1} = w_t + Δ_{t+1}

``w_prev`` (state ``previous_weight``) starts as a copy of ``w_0``, so the
first update has no correction. On one machine ``w_prev`` is simply the
weight before the last update; the chapter simulates the delays.

With momentum MXNet 1.9.1 fails (``if mom:`` asks an NDArray of several
elements for its truth value). mxopt runs it as MXNet's code intends, the
buffer ``Δ`` (state ``mom``) holding the step, learning rate inside::

    Δ_{t+1} = μ·Δ_t − η_{t+1}·(g̃ + λ·w_t + λ_dc·g̃ ⊙ g̃ ⊙ (w_t − w_prev))

MXNet codes DCASGD in Python with NDArray operations, each rounding once in
float32; the rule keeps their order (``((λ_dc·g̃)·g̃)·(w − w_prev)``, the sum
left to right, the product with ``−η`` last). MXNet clips whenever
``clip_gradient`` is not None; mxopt's ``None`` is off for every optimizer.
"""
from .. import _checks
from .._arrays import copy_into
from .._engine import UpdateRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def compensated_gradient(w, g, previous_weight, wd, lamda, rescale_grad, clip_gradient):
    """``g̃ + λ·w + λ_dc·g̃·g̃·(w − w_prev)`` with ``g̃ = clip(r·g, c)``, in MXNet's order."""
    grad = clip(rescale_grad * g, clip_gradient)
    return grad + wd * w + lamda * grad * grad * (w - previous_weight)



def dcasgd(w, g, previous_weight, lr, wd, lamda, rescale_grad, clip_gradient):
    """One DCASGD step for one element: ``w_prev ← w;  w ← w − η·(compensated gradient)``."""
    step = -lr * compensated_gradient(w, g, previous_weight, wd, lamda, rescale_grad, clip_gradient)
    return w + step, w


def dcasgd_momentum(w, g, mom, previous_weight, lr, momentum, wd, lamda, rescale_grad, clip_gradient):
    """With momentum: ``Δ ← μ·Δ − η·(compensated gradient);  w_prev ← w;  w ← w + Δ``."""
    mom = momentum * mom + -lr * compensated_gradient(w, g, previous_weight, wd, lamda, rescale_grad,
                                                      clip_gradient)
    return w + mom, mom, w


DCASGD_RULE = UpdateRule(dcasgd, n_state=1)
DCASGD_MOMENTUM_RULE = UpdateRule(dcasgd_momentum, n_state=2)


@register
class DCASGD(Optimizer):
    """Delay-compensated asynchronous SGD (``mx.optimizer.DCASGD``).

    Args:
      momentum: μ in [0, 1) (default 0); with μ > 0 the state holds the
        step ``mom`` too (MXNet 1.9.1 fails there; mxopt runs it).
      lamda: λ_dc >= 0, the weight of the delay compensation (default 0.04,
        MXNet's spelling).
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, multi_precision, ...).

    The state's ``previous_weight`` starts as a copy of the weight (in
    float32 for a float16 weight with ``multi_precision``).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.DCASGD(learning_rate=0.1, lamda=1.0)
      >>> w = np.ones(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.ones(2, np.float32), state); w            # no correction yet
      array([0.9, 0.9], dtype=float32)
      >>> opt.update(0, w, np.ones(2, np.float32), state); w.round(4)   # 0.9 − 0.1·(1 + 1·1·(−0.1))
      array([0.81, 0.81], dtype=float32)

    Reference: Zheng, Meng, Wang, Chen, Yu, Ma & Liu (2017), "Asynchronous
    stochastic gradient descent with delay compensation", ICML.
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")
    lamda = _checks.Hyper(_checks.at_least(0.0), "weight of the delay compensation")

    def __init__(self, momentum=0.0, lamda=0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.lamda = lamda

    @property
    def rule(self):
        return DCASGD_MOMENTUM_RULE if self.momentum > 0 else DCASGD_RULE

    def create_state(self, index, weight):
        """Zero momentum (if any) and ``previous_weight``, a copy of ``weight``."""
        state = super().create_state(index, weight)
        copy_into(state["previous_weight"], weight)
        return state

    create_state_multi_precision = create_state

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum, "lamda": self.lamda}
