"""LBSGD: large-batch SGD, by gradient accumulation, warmup and LARS.

Training with a batch ``k`` times larger takes ``k`` times fewer steps; the
linear scaling rule of Goyal et al. (2017) multiplies the learning rate by
``k`` to keep the distance travelled per example, and warms up to it over
the first epochs, where a large rate diverges. You, Gitman & Ginsburg (2017)
instead give each layer its own rate from the ratio ``‖w‖/‖g‖`` (LARS).
MXNet 1.9.1's ``LBSGD`` emulates a batch ``k = batch_scale`` times larger on
one worker: it sums the gradients of ``k`` calls and updates on every
``k``-th, with SGD (``sgd_mom_update``, or ``sgd_update`` without momentum)
on their mean and a multiplied learning rate. With ``N`` the call count of
the parameter (``N = begin_epoch·updates_per_epoch + 1`` at the first call,
never reset) and ``S`` the sum of the gradients since the last update::

    S ← S + g_t                                   (every call)
    if N mod k = 0:                               (every k-th call)
        ḡ = S/k,   η' = η·mult,   S ← 0
        Δ ← μ·Δ − (η'·λ)·w − η'·clip(r·ḡ, c),  w ← w + Δ      (μ > 0)
        w ← (1 − η'·λ)·w − η'·clip(r·ḡ, c)                     (μ = 0)

(``(η'·r)·ḡ`` when clipping is off, as in :mod:`~mxopt.optimizers.sgd` and
:mod:`~mxopt.optimizers.nag`.) The other calls leave the weight alone. The
multiplier, with ``N_w = warmup_epochs·updates_per_epoch``, is ``k`` once
``N ≥ N_w``, 1 if ``N_w ≤ 1``, and before that

    linear   1 + (k − 1)·N/N_w
    power2   1 + (k − 1)·N²/N_w²
    sqrt     1 + (k − 1)·√(N/N_w)
    lars     clip(√(‖w‖² / (‖ḡ‖² + λ·‖w‖² + 10⁻¹⁸)), 0.01, 100)   (at every update)

MXNet's 'lars' is not the paper's: it divides squared norms (the paper's
trust ratio is ``‖w‖/(‖g‖ + λ‖w‖)``), ignores ``N`` and does not scale the
rate by ``k``; mxopt reproduces it. Its two sums of squares come from
:mod:`mxopt._reduce` (one reduce pass per parameter, in float32, then the
multiplier in float64 as MXNet's Python computes it); MXNet sums
``(v*v).asnumpy()`` with NumPy, so a parameter of up to
:data:`mxopt._reduce.CHUNK` elements is summed in NumPy's pairwise order
(:func:`mxopt._reduce.pairwise`), and the result is MXNet's bit for bit; a
longer one is summed in another order, which may move the last bit of
``η·mult``. With ``multi_precision`` the norm is that of the float32 master
weight.

Unlike every other optimizer, LBSGD reads its learning rate before it counts
the update, so its first update uses ``lr_scheduler(0)`` (MXNet's order,
kept).

mxopt keeps ``S`` in the state (``cum_grad``, in the compute dtype) and
``N`` as a per-index scalar (``state.scalars['num_cums']``), both saved in
checkpoints; with ``batch_scale = 1`` there is neither, and LBSGD is SGD with
the multiplier. MXNet keeps them on the optimizer, and its ``S`` starts as a
reference to the caller's first gradient array: a caller that reuses one
gradient buffer (as Gluon does) sums the latest gradient twice. mxopt sums
copies of the values.
"""
import math

from .. import _checks
from .._engine import UpdateRule
from .._reduce import LayerwiseRule
from .._scalar import ONE
from ..optimizer import Optimizer, register
# MXNet's two SGD kernels under its op names (the rules below call them; the engine compiles them too).
from .nag import NAG_WITHOUT_MOMENTUM_RULE, nag_without_momentum as sgd_update
from .sgd import SGD_MOMENTUM_RULE, sgd_momentum as sgd_mom_update


#: The warmup strategies MXNet 1.9.1 implements.
WARMUP_STRATEGIES = ("linear", "power2", "sqrt", "lars")


def lbsgd(w, g, cum_grad, lr, wd, rescale_grad, clip_gradient, batch_scale, apply):
    """Add ``g`` to the sum ``S``; when ``apply``, MXNet's ``sgd_update`` with ``S/k``, and ``S ← 0``."""
    cum_grad = cum_grad + g
    if apply:
        w = sgd_update(w, cum_grad / batch_scale, lr, wd, rescale_grad, clip_gradient)
        cum_grad = ONE - ONE
    return w, cum_grad


def lbsgd_momentum(w, g, mom, cum_grad, lr, momentum, wd, rescale_grad, clip_gradient, batch_scale, apply):
    """Add ``g`` to the sum ``S``; when ``apply``, MXNet's ``sgd_mom_update`` with ``S/k``, and ``S ← 0``."""
    cum_grad = cum_grad + g
    if apply:
        w, mom = sgd_mom_update(w, cum_grad / batch_scale, mom, lr, momentum, wd, rescale_grad, clip_gradient)
        cum_grad = ONE - ONE
    return w, mom, cum_grad


LBSGD_RULE = UpdateRule(lbsgd, n_state=1)
LBSGD_MOMENTUM_RULE = UpdateRule(lbsgd_momentum, n_state=2)


# -- the 'lars' strategy: the norms first (mxopt._reduce), then the same element-wise steps --------
def squares(w, g):
    """``(w², g²)``: summed over the parameter into ``‖w‖²`` and ``‖ḡ‖²`` (``ḡ = g`` when k = 1)."""
    return w * w, g * g


def squares_mom(w, g, mom):
    """:func:`squares`, for the rules with momentum."""
    return squares(w, g)


def squares_cum(w, g, cum_grad, batch_scale):
    """``(w², ḡ²)`` with ``ḡ = (S + g)/k``, the mean this call's update uses."""
    return squares(w, (cum_grad + g) / batch_scale)


def squares_mom_cum(w, g, mom, cum_grad, batch_scale):
    """:func:`squares_cum`, for the rule with momentum."""
    return squares_cum(w, g, cum_grad, batch_scale)


def lars_rate(weight2, grad2, host_lr, host_wd):
    """``η·clip(√(‖w‖²/(‖ḡ‖² + λ·‖w‖² + 10⁻¹⁸)), 0.01, 100)``, in float64 from the sums (MXNet).

    A NaN ratio passes through, as in MXNet's two comparisons.
    """
    ratio = math.sqrt(weight2 / (grad2 + host_wd * weight2 + 1e-18))
    if ratio < 0.01:
        ratio = 0.01
    elif ratio > 100.0:
        ratio = 100.0
    return host_lr * ratio


def _lars(summands, update, n_state):
    return LayerwiseRule(summands, lars_rate, update, n_state, sums=("weight2", "grad2"), values=("lr",), pairwise=True)


#: The 'lars' rules, by (batch_scale > 1, momentum > 0): the update reads its layer's ``lr``.
LARS_RULES = {(False, False): _lars(squares, sgd_update, 0), (False, True): _lars(squares_mom, sgd_mom_update, 1),
              (True, False): _lars(squares_cum, lbsgd, 1), (True, True): _lars(squares_mom_cum, lbsgd_momentum, 2)}


def _strategy(name, value):
    if value not in WARMUP_STRATEGIES:
        raise ValueError(f"{name} must be one of {list(WARMUP_STRATEGIES)}, got {value!r} (MXNet 1.9.1 "
                         "silently uses a multiplier of 1 for any other string; mxopt refuses)")
    return value


@register
class LBSGD(Optimizer):
    """Large-batch SGD with warmup or LARS (``mx.optimizer.LBSGD``).

    Args:
      momentum: μ in [0, 1) (default 0).
      multi_precision: keep a float32 master copy of float16 weights.
      warmup_strategy: 'linear' (default), 'power2', 'sqrt' or 'lars'.
      warmup_epochs: epochs to reach the multiplier ``batch_scale``
        (default 5).
      batch_scale: ``k >= 1``, the number of calls whose gradients make one
        update (default 1: every call updates).
      updates_per_epoch: calls per epoch, >= 1 (default 32).
      begin_epoch: the epoch training starts at; the call count starts at
        ``begin_epoch·updates_per_epoch`` (default 0).
      num_epochs: accepted and kept, as in MXNet, which does not use it
        (default 60).
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.LBSGD(learning_rate=0.1, batch_scale=2, warmup_epochs=1, updates_per_epoch=2)
      >>> w = np.zeros(2, np.float32); state = opt.create_state(0, w)
      >>> opt.update(0, w, np.array([1, 2], np.float32), state); w      # N = 1: accumulate
      array([0., 0.], dtype=float32)
      >>> opt.update(0, w, np.array([3, 2], np.float32), state); w      # N = 2: η·2·mean = 0.2·(2, 2)
      array([-0.4, -0.4], dtype=float32)
      >>> state.scalars
      {'num_cums': 2.0}

    References: Goyal et al. (2017), "Accurate, large minibatch SGD:
    training ImageNet in 1 hour" (linear scaling and warmup); You, Gitman &
    Ginsburg (2017), "Large batch training of convolutional networks"
    (LARS).
    """

    momentum = _checks.Hyper(_checks.unit_interval, "momentum coefficient")
    warmup_epochs = _checks.Hyper(_checks.integer(0), "epochs of warmup")
    batch_scale = _checks.Hyper(_checks.integer(1), "calls per update (the batch multiplier k)")
    updates_per_epoch = _checks.Hyper(_checks.integer(1), "calls per epoch")
    begin_epoch = _checks.Hyper(_checks.integer(0), "the epoch training starts at")
    num_epochs = _checks.Hyper(_checks.integer(0), "number of epochs (unused, as in MXNet)")
    warmup_strategy = _checks.Checked(_strategy, "'linear', 'power2', 'sqrt' or 'lars'")
    #: lars_rate computes in float64 from the host's η and λ, as MXNet's Python does.
    float64_scalars = frozenset({"host_lr", "host_wd"})

    def __init__(self, momentum=0.0, multi_precision=False, warmup_strategy="linear", warmup_epochs=5,
                 batch_scale=1, updates_per_epoch=32, begin_epoch=0, num_epochs=60, **kwargs):
        super().__init__(multi_precision=multi_precision, **kwargs)
        self.momentum = momentum
        self.warmup_strategy = warmup_strategy
        self.warmup_epochs = warmup_epochs
        self.batch_scale = batch_scale
        self.updates_per_epoch = updates_per_epoch
        self.begin_epoch = begin_epoch
        self.num_epochs = num_epochs

    @property
    def rule(self):
        if self.warmup_strategy == "lars":
            return LARS_RULES[self.batch_scale > 1, self.momentum > 0]
        if self.batch_scale == 1:
            return SGD_MOMENTUM_RULE if self.momentum > 0 else NAG_WITHOUT_MOMENTUM_RULE
        return LBSGD_MOMENTUM_RULE if self.momentum > 0 else LBSGD_RULE

    @property
    def carried(self):
        """``num_cums``, the call count ``N`` before the next call (only with ``batch_scale > 1``)."""
        if self.batch_scale == 1:
            return {}
        start = self.begin_epoch * self.updates_per_epoch
        if start > 2 ** 53:
            raise ValueError(f"begin_epoch·updates_per_epoch = {start} is beyond the counts mxopt keeps "
                             "exactly (2**53)")
        return {"num_cums": float(start)}

    def advance(self, carried, t):
        """``N ← N + 1`` at every call."""
        return {"num_cums": carried["num_cums"] + 1.0}

    def warmup_multiplier(self, n):
        """The learning-rate multiplier at call ``n`` of the warmup strategies (MXNet's ``_get_lbmult``)."""
        nwup = self.warmup_epochs * self.updates_per_epoch
        maxmult = float(self.batch_scale)
        if n >= nwup:
            return maxmult
        if nwup <= 1:
            return 1.0
        # MXNet's expressions, in its order of operations (float64).
        if self.warmup_strategy == "linear":
            return 1.0 + (maxmult - 1) * n / nwup
        if self.warmup_strategy == "power2":
            return 1.0 + (maxmult - 1) * (n * n) / (nwup * nwup)
        if self.warmup_strategy == "sqrt":
            return 1.0 + (maxmult - 1) * math.sqrt(float(n) / nwup)
        raise ValueError("the 'lars' strategy has no warmup schedule: its multiplier comes from the norms")

    def _get_lr(self, index, num_update=None):
        # MXNet's LBSGD reads the rate before it counts the update: lr_scheduler(num_update before this call).
        return super()._get_lr(index)

    def step_scalars(self, index, t, lr, wd, carried=None):
        n = None if carried is None else int(carried["num_cums"])
        apply = n is None or n % self.batch_scale == 0
        lars = self.warmup_strategy == "lars"  # the multiplier comes from the norms, in lars_rate
        mult = 1.0 if lars or n is None or not apply else self.warmup_multiplier(n)
        return {**super().step_scalars(index, t, lr * mult, wd), "momentum": self.momentum,
                "batch_scale": float(self.batch_scale), "apply": 1.0 if apply else 0.0,
                "host_lr": lr, "host_wd": wd}
