"""GroupAdaGrad: AdaGrad with one accumulator per row (MXNet contrib).

For a 2-D weight (an embedding table: one row per item), every row ``i``
keeps a single history value, the running sum of the mean squared gradient
over the row, instead of one per element::

    g̃ = clip(r·g, c)
    h_i ← h_i + (1/n)·Σ_j g̃_ij²
    w_ij ← w_ij − η·g̃_ij / √(h_i + ε)

so the state is ``(rows, 1)``, a factor ``n`` smaller than AdaGrad's. Weight
decay is not supported (MXNet asserts ``wd == 0``; mxopt refuses any other
value). The row mean is a reduction (:mod:`mxopt._reduce`): rows are the
segments, summed with Kahan's compensation as MXNet's ``mean`` does, so a
row of up to 4096 elements gives MXNet's float32 result bit for bit.
"""
import math

from .. import _checks
from .._reduce import LayerwiseRule
from .._scalar import clip
from ..optimizer import Optimizer, register


def group_adagrad_sums(w, g, rescale_grad, clip_gradient):
    """What a row sums: ``g̃²``."""
    grad = clip(g * rescale_grad, clip_gradient)
    return grad * grad


def group_adagrad_history(g_sq, count, history):
    """``h ← h + Σg̃²/n`` for one row (``count`` = n)."""
    return history + g_sq / count


def group_adagrad(w, g, history, lr, epsilon, rescale_grad, clip_gradient):
    """``w ← w − η·g̃/√(h + ε)`` with the row's new history ``h``."""
    grad = clip(g * rescale_grad, clip_gradient)
    return w - lr * grad / math.sqrt(history + epsilon)


GROUP_ADAGRAD_RULE = LayerwiseRule(group_adagrad_sums, group_adagrad_history, group_adagrad, n_state=0,
                                   sums=("g_sq",), segment_state=("history",), compensated=True)


def _zero_wd(name, value):
    value = _checks.at_least(0.0)(name, value)
    if value != 0:
        raise ValueError(f"{name} must be 0 for GroupAdaGrad, got {value!r}: it has no weight decay "
                         "(MXNet 1.9.1 asserts wd == 0 at the first update)")
    return value


@register
class GroupAdaGrad(Optimizer):
    """GroupAdaGrad (``mx.optimizer.contrib.GroupAdaGrad``): one AdaGrad history per row.

    Args:
      eps: added to the history under the root (default 1e-5), >= 0.
      **kwargs: see :class:`mxopt.Optimizer`; ``wd`` must be 0.

    Weights must be 2-D (rows × columns); the state ``history`` is
    ``(rows, 1)``, as in MXNet. In a :class:`mxopt.Trainer`, each
    parameter's rows are rows of the group's history.

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.GroupAdaGrad(learning_rate=0.1)
      >>> w = np.zeros((2, 2), np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([[3, 3], [0, 4]], np.float32), state); state.history.ravel()
      array([9., 8.], dtype=float32)

    Reference: Duchi, Hazan & Singer (2011), "Adaptive subgradient methods
    for online learning and stochastic optimization", JMLR 12; MXNet's
    ``contrib.group_adagrad_update``.
    """

    rule = GROUP_ADAGRAD_RULE
    wd = _checks.Hyper(_zero_wd, "weight decay, which GroupAdaGrad does not have (0)")
    eps = _checks.Hyper(_checks.at_least(0.0), "added to the history under the square root")

    def __init__(self, eps=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.eps = eps

    @property
    def float_stable_eps(self):
        """MXNet's attribute name for ``eps``."""
        return self.eps

    def segment_shape(self, name, shape):
        if len(shape) != 2:
            raise ValueError(f"GroupAdaGrad needs 2-D weights (rows × columns), but parameter {name!r} has "
                             f"shape {tuple(shape)}")
        return int(shape[0]), int(shape[1])

    def _get_wd(self, index):
        return 0.0

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "epsilon": self.eps}
