"""Nadam: Adam with Nesterov momentum.

Dozat (2016) applies Nesterov's look-ahead to Adam's first moment: the step
uses the momentum of the *next* update, ``μ_{t+1}·m̂``, plus the current
gradient's share ``(1 − μ_t)·ĝ``. The momentum coefficient follows a warming
schedule (:class:`mxopt.momentum_scheduler.NadamScheduler`),
``μ_t = β₁·(1 − ½·0.96^(t·δ))`` with δ = ``schedule_decay``, and the bias
correction uses the running product ``S_t = μ_1·…·μ_t``. With
``g̃ = clip(r·g + λ·w, c)``, MXNet 1.9.1 computes::

    m ← β₁·m + (1 − β₁)·g̃            (a constant β₁, as Keras does; Dozat uses μ_t)
    v ← β₂·v + (1 − β₂)·g̃²
    ĝ = g̃/(1 − S_t),   m̂ = m/(1 − S_t·μ_{t+1}),   v̂ = v/(1 − β₂ᵗ)
    m̄ = (1 − μ_t)·ĝ + μ_{t+1}·m̂
    w ← w − η·m̄/(√v̂ + ε)

Every coefficient is a number of the step, computed on the host in double
as MXNet does. MXNet keeps ``S`` on the optimizer, shared by all
parameters, so that updating one parameter changes the next one's step;
mxopt keeps ``S`` per parameter, in its state (``state.scalars['m_schedule']``),
like MXNet.jl. For a single parameter the two agree.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import clip
from ..momentum_scheduler import NadamScheduler
from ..optimizer import Optimizer, register


def nadam(w, g, m, v, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, one_minus_mu_t, mu_next,
          one_minus_s, one_minus_s_next, one_minus_beta2_t, epsilon, wd, rescale_grad, clip_gradient):
    """One Nadam step for one element; every coefficient comes from the host.

    ``one_minus_s`` = 1 − S_t, ``one_minus_s_next`` = 1 − S_t·μ_{t+1},
    ``one_minus_beta2_t`` = 1 − β₂ᵗ, ``one_minus_mu_t`` = 1 − μ_t,
    ``mu_next`` = μ_{t+1}.
    """
    grad = clip(rescale_grad * g + wd * w, clip_gradient)
    m = m * beta1 + one_minus_beta1 * grad
    v = v * beta2 + one_minus_beta2 * grad * grad
    g_hat = grad / one_minus_s
    m_hat = m / one_minus_s_next
    v_hat = v / one_minus_beta2_t
    m_bar = one_minus_mu_t * g_hat + mu_next * m_hat
    w = w - lr * m_bar / (math.sqrt(v_hat) + epsilon)
    return w, m, v


NADAM_RULE = UpdateRule(nadam, n_state=2)


@register
class Nadam(Optimizer):
    """Nadam (``mx.optimizer.Nadam``), with its schedule product kept per parameter.

    Args:
      learning_rate: default 0.001.
      beta1: the limit μ₀ of the momentum schedule and the decay of the first
        moment, in [0, 1) (default 0.9).
      beta2: decay rate of the second moment, in [0, 1) (default 0.999).
      epsilon: added to √v̂, >= 0 (default 1e-8).
      schedule_decay: δ of the momentum schedule, >= 0 (default 0.004).
      **kwargs: see :class:`mxopt.Optimizer`.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.Nadam(learning_rate=0.01)
      >>> a, b = np.zeros(2, np.float32), np.zeros(3, np.float32)
      >>> sa, sb = opt.create_state(0, a), opt.create_state(1, b)
      >>> opt.update(0, a, np.ones(2, np.float32), sa)
      >>> opt.update(1, b, np.ones(3, np.float32), sb)
      >>> sa.scalars == sb.scalars        # each parameter has its own product S_1 = μ_1
      True
      >>> round(sa.scalars['m_schedule'], 6), opt.momentum_schedule(1) == sa.scalars['m_schedule']
      (0.450073, True)

    References: Dozat (2016), "Incorporating Nesterov momentum into Adam",
    ICLR workshop; Sutskever et al. (2013), "On the importance of
    initialization and momentum in deep learning".
    """

    default_learning_rate = 0.001
    rule = NADAM_RULE
    carried = {"m_schedule": 1.0}
    beta1 = _checks.Hyper(_checks.unit_interval, "decay rate of the first moment, the schedule's limit")
    beta2 = _checks.Hyper(_checks.unit_interval, "decay rate of the second moment")
    epsilon = _checks.Hyper(_checks.at_least(0.0), "added to the root of the second moment")
    schedule_decay = _checks.Hyper(_checks.at_least(0.0), "decay delta of the momentum schedule")

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.schedule_decay = schedule_decay

    @property
    def momentum_schedule(self):
        """μ_t as a function of t: ``NadamScheduler(mu=beta1, delta=schedule_decay)``."""
        return NadamScheduler(mu=self.beta1, delta=self.schedule_decay)

    def advance(self, carried, t):
        """``S_t = S_{t−1}·μ_t``."""
        return {"m_schedule": carried["m_schedule"] * self.momentum_schedule(t)}

    def step_scalars(self, index, t, lr, wd, carried):
        mu = self.momentum_schedule
        mu_t, mu_next = mu(t), mu(t + 1)
        s = carried["m_schedule"]  # S_t, after this update's factor μ_t
        return {**super().step_scalars(index, t, lr, wd),
                "beta1": self.beta1, "one_minus_beta1": 1.0 - self.beta1,
                "beta2": self.beta2, "one_minus_beta2": 1.0 - self.beta2,
                "one_minus_mu_t": 1.0 - mu_t, "mu_next": mu_next,
                "one_minus_s": 1.0 - s, "one_minus_s_next": 1.0 - s * mu_next,
                "one_minus_beta2_t": 1.0 - self.beta2 ** t, "epsilon": self.epsilon}
