r"""Annealed Gaussian gradient noise (Neelakantan et al., 2015).

Neelakantan et al. add to every coordinate of the gradient a Gaussian
deviate whose variance decays with the update count:

.. math::
    \tilde g_{t,i} = g_{t,i} + \sigma_t z_{t,i}, \qquad z_{t,i} \sim \mathcal N(0, 1), \qquad
    \sigma_t^2 = \frac{\eta_{\text{noise}}}{(1 + t)^{\gamma}},

with :math:`\eta_{\text{noise}} \in \{0.01, 0.3, 1.0\}` and :math:`\gamma = 0.55`
in the paper (which writes :math:`\eta` for :math:`\eta_{\text{noise}}`; the
guide keeps :math:`\eta` for the learning rate).  In the guide's counting,
:math:`g_t = \nabla f_t(w_t)` is the gradient that update :math:`t + 1` reads,
so the first gradient, :math:`g_0`, gets the variance
:math:`\eta_{\text{noise}}`.  Early, the noise is large and lets the weights
leave flat regions and poor basins; it then fades, more slowly than a
learning-rate decay (:math:`\sum_t \sigma_t^2` diverges for :math:`\gamma \le 1`).

The deviates come from the package's counter-based generator
(:mod:`mxopt._random`, the one SGLD uses): :math:`z_{t,i}` is element
:math:`i`'s deviate (C order) of ``normals(key, t, n)``, ``key =
stream_key(seed, name)``: a fixed function of ``(seed, name, t, i)`` and the
size ``n``, laid out as SGLD's kernels lay out theirs.  So
no random state is kept, the same arguments give the same noise in any call
order and in any process, and two parameters (two names) get independent
streams.

Reference: A. Neelakantan, L. Vilnis, Q. V. Le, I. Sutskever, L. Kaiser,
K. Kurach and J. Martens, "Adding Gradient Noise Improves Learning for Very
Deep Networks", arXiv:1511.06807, 2015 (ICLR 2016 workshop).
"""
from __future__ import annotations

import numpy as np

from . import _checks, _random

__all__ = ["GradientNoise"]

_seed = _checks.integer(0, (1 << 64) - 1)
_step = _checks.integer(0)


class GradientNoise:
    r"""Adds :math:`\mathcal N(0, \sigma_t^2)` to each entry of a gradient, :math:`\sigma_t^2 = \eta_{\text{noise}}/(1+t)^\gamma`.

    Args:
      eta: :math:`\eta_{\text{noise}} \ge 0`, the variance at :math:`t = 0`
        (the paper tries 0.01, 0.3 and 1.0; 0 adds nothing).
      gamma: :math:`\gamma \ge 0`, the decay exponent (0.55 in the paper).
      seed: an integer in :math:`[0, 2^{64})`; with the parameter's name it
        keys the generator.

    ``noise(grad, t, name='')`` adds :math:`\sigma_t z` to the float NumPy
    array ``grad`` in place (the deviates, :math:`\sigma_t` and the sum in
    float64, the sum then rounded to ``grad``'s dtype) and returns ``grad``.
    ``noise.fit_hook(batch_size, n_train)`` plugs it into :func:`mxopt.models.fit`.  A bad
    argument raises TypeError/ValueError naming it, before anything is
    changed.

    Example:
      >>> import numpy as np
      >>> noise = GradientNoise(eta=0.3, gamma=0.55, seed=1)
      >>> round(noise.variance(0), 6), round(noise.variance(99), 6)
      (0.3, 0.02383)
      >>> g = np.zeros(100_000)
      >>> _ = noise(g, t=99, name='fc1_weight')
      >>> bool(abs(g.var() / noise.variance(99) - 1) < 0.02)
      True
      >>> bool(np.array_equal(g, noise(np.zeros(100_000), t=99, name='fc1_weight')))
      True

    Reference: A. Neelakantan et al., "Adding Gradient Noise Improves
    Learning for Very Deep Networks", arXiv:1511.06807, 2015.
    """

    def __init__(self, eta, gamma=0.55, seed=0):
        eta = _checks.at_least(0.0)("eta", eta)
        gamma = _checks.at_least(0.0)("gamma", gamma)
        seed = _seed("seed", seed)
        self.eta, self.gamma, self.seed = eta, gamma, seed

    def __repr__(self):
        return f"GradientNoise(eta={self.eta!r}, gamma={self.gamma!r}, seed={self.seed!r})"

    def variance(self, t) -> float:
        r""":math:`\sigma_t^2 = \eta_{\text{noise}} / (1 + t)^\gamma` for the gradient :math:`g_t` (``t >= 0``)."""
        t = _step("t", t)
        return self.eta / (1.0 + t) ** self.gamma

    def deviates(self, t, n, name="") -> np.ndarray:
        """The standard normal deviates :math:`z_{t,0}, \\dots, z_{t,n-1}` of parameter ``name`` (float32 values, float64 array)."""
        t = _step("t", t)
        n = _checks.integer(0, _random.MAX_ELEMENT + 1)("n", n)
        name = _checks.name_str("name", name)
        return _random.normals(_random.stream_key(self.seed, name), t, n)

    def __call__(self, grad, t, name=""):
        """Add :math:`\\sigma_t z_t` to ``grad`` in place and return it."""
        described = _checks.float_array("grad", grad)
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"grad must be a NumPy array (the noise is drawn on the host), got {type(grad).__name__}")
        _checks.writeable("grad", described)
        sigma = self.variance(t) ** 0.5
        z = self.deviates(t, grad.size, name)
        if sigma > 0:
            np.add(grad, sigma * z.reshape(grad.shape), out=grad, casting="same_kind")
        return grad

    def fit_hook(self, batch_size, n_train):
        """A ``before_step`` hook for :func:`mxopt.models.fit` with these ``batch_size`` and ``n_train``.

        ``fit`` writes the gradient of the batch's *summed* loss into
        ``trainer.grads`` and the Trainer divides by the batch size
        :math:`B`, so the hook adds :math:`B \\sigma_t z` there: with
        ``rescale_grad=1`` the optimizer sees the batch-mean gradient plus
        :math:`\\sigma_t z`.  Each epoch has :math:`\\lceil N/B \\rceil` batches of
        :math:`B` examples, the last one :math:`N - B(\\lceil N/B \\rceil - 1)` (``fit``'s
        batching); ``fit`` counts steps from 1, so step :math:`n` carries
        :math:`g_{n-1}` and gets :math:`\\sigma_{n-1}^2`.  Each parameter draws
        from the stream of its own name.
        """
        batch_size = _checks.integer(1)("batch_size", batch_size)
        n_train = _checks.integer(1)("n_train", n_train)
        batches = -(-n_train // batch_size)
        last = n_train - batch_size * (batches - 1)

        def before_step(trainer, step):
            step = _checks.integer(1)("step", step)
            size = last if step % batches == 0 else batch_size
            sigma = self.variance(step - 1) ** 0.5
            for name, grad in trainer.grads.items():
                z = self.deviates(step - 1, grad.size, name)
                np.add(grad, (size * sigma) * z.reshape(grad.shape), out=grad, casting="same_kind")

        return before_step
