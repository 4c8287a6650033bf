"""signSGD and Signum: steps of fixed size in the direction of a sign.

Bernstein et al. (2018) move every coordinate by the same amount ``η``, in
the direction opposite to the sign of its gradient (signSGD) or of its
momentum (Signum, "sign momentum"). A worker that sends only signs sends one
bit per coordinate instead of 32, and a server that takes the majority vote
of the workers' signs gets a descent direction when the gradient noise is
unimodal and symmetric; that is the paper's case for it in distributed
training.

Signum, as MXNet 1.9.1's ``signum_update`` computes it (``m`` holds the
*negated* momentum, so that the weight moves by ``+η·sign(m)``), with
``g̃_t = clip(r·g_t, c)``::

    m_{t+1} = μ·m_t − (1 − μ)·λ·w_t − (1 − μ)·g̃_t
    w_{t+1} = (1 − η_{t+1}·λ_lh)·w_t + η_{t+1}·sign(m_{t+1})

The L2 decay ``λ`` (``wd``) enters the momentum, after clipping; ``λ_lh``
(``wd_lh``) is decoupled decay in the sense of Loshchilov & Hutter, applied
to the weight directly. Without clipping the kernel multiplies
``((1 − μ)·r)·g``, and the rule keeps that order.

signSGD is Signum's ``momentum = 0`` (``signsgd_update``)::

    w_{t+1} = (1 − η_{t+1}·λ − η_{t+1}·λ_lh)·w_t − η_{t+1}·sign(g_t)

Here weight decay is a multiplicative shrink, not a term in the sign, and
``r`` and ``c`` have no effect (for ``r > 0`` and ``c > 0`` they never change
a sign). MXNet 1.9.1 refuses ``wd_lh`` with ``momentum = 0`` (its op has no
such argument); mxopt applies it, as the same shrink it is in Signum, so that
``wd_lh`` means one thing whatever the momentum. ``sign(0) = 0``, and a NaN
has sign 0 too, as in MXNet's ``(x > 0) − (x < 0)``.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._scalar import ONE, clip
from ..optimizer import Optimizer, register


def sign(x):
    """MXNet's sign: 1 for ``x > 0``, −1 for ``x < 0``, 0 for zero and for NaN."""
    if x > 0:
        return ONE
    if x < 0:
        return -ONE
    return ONE - ONE



def signum(w, g, mom, lr, momentum, wd, wd_lh, rescale_grad, clip_gradient):
    """One Signum step for one element; ``mom`` is the negated momentum ``m``.

    ``m ← μ·m − (1 − μ)·λ·w − (1 − μ)·clip(r·g, c)``, ``w ← (1 − η·λ_lh)·w + η·sign(m)``,
    in MXNet's order (``((1 − μ)·r)·g`` when clipping is off).
    """
    if clip_gradient < math.inf:
        mom = momentum * mom - (ONE - momentum) * wd * w - (ONE - momentum) * clip(rescale_grad * g, clip_gradient)
    else:
        mom = momentum * mom - (ONE - momentum) * wd * w - (ONE - momentum) * rescale_grad * g
    return (ONE - lr * wd_lh) * w + lr * sign(mom), mom


def signsgd(w, g, lr, wd, wd_lh):
    """One signSGD step for one element: ``w ← (1 − η·λ − η·λ_lh)·w − η·sign(g)``."""
    return (ONE - lr * wd - lr * wd_lh) * w - lr * sign(g)


SIGNUM_RULE = UpdateRule(signum, n_state=1)
SIGNSGD_RULE = UpdateRule(signsgd, n_state=0)


@register
class Signum(Optimizer):
    """Signum, and signSGD when ``momentum = 0`` (``mx.optimizer.Signum``).

    Args:
      learning_rate: the size ``η`` of every coordinate's step (default 0.01).
      momentum: μ in [0, 1) (default 0.9); 0 is signSGD, which keeps no state.
      wd_lh: decoupled weight decay ``λ_lh >= 0``, a shrink ``(1 − η·λ_lh)``
        of the weight at every step (default 0). Allowed with
        ``momentum = 0`` too, where MXNet 1.9.1 raises.
      **kwargs: see :class:`mxopt.Optimizer` (wd, rescale_grad,
        clip_gradient, lr_scheduler, multi_precision, ...). With
        ``momentum = 0``, ``rescale_grad`` and ``clip_gradient`` have no
        effect, as in MXNet.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.Signum(learning_rate=0.1)
      >>> w = np.zeros(3, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([2.0, -1e-3, 0.0], np.float32), state); w
      array([-0.1,  0.1,  0. ], dtype=float32)
      >>> sgd = mxopt.create('signum', learning_rate=0.1, momentum=0.0)   # signSGD
      >>> sgd.create_state(0, w) is None
      True

    References: Bernstein, Wang, Azizzadenesheli & Anandkumar (2018),
    "signSGD: compressed optimisation for non-convex problems", ICML;
    Loshchilov & Hutter (2019), "Decoupled weight decay regularization",
    ICLR (``wd_lh``).
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient (0: signSGD)")
    wd_lh = _checks.Hyper(_checks.at_least(0.0), "decoupled weight decay")

    def __init__(self, learning_rate=None, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = momentum
        self.wd_lh = wd_lh

    @property
    def rule(self):
        return SIGNUM_RULE if self.momentum > 0 else SIGNSGD_RULE

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "momentum": self.momentum, "wd_lh": self.wd_lh}
