r"""Small classifiers in NumPy with exact gradients, and a driver that trains them with a :class:`mxopt.Trainer`.

One class, :class:`MLP`, covers the three models the chapters use:

* :func:`softmax_regression` — multinomial logistic regression (no hidden layer);
* :func:`logistic_regression` — binary logistic regression (one output logit);
* :func:`mlp` — a multi-layer perceptron with tanh or ReLU hidden layers and,
  optionally, batch normalisation before each activation.

Parameters are a ``dict`` of arrays named as MXNet's Gluon names them
(``fc1_weight`` of shape ``(out, in)``, ``fc1_bias``, ``bn1_gamma``,
``bn1_beta``), float32 by default, so a :class:`mxopt.Trainer` can own them and
LARS-type optimizers can tell weights from biases by name.

:meth:`MLP.loss_and_grad` returns the loss and the exact gradient of every
parameter (backpropagation); :func:`gradient_check` compares it with central
finite differences in float64.  :func:`fit` trains a model on a
:class:`mxopt.datasets.Dataset` with any registered optimizer;
:func:`layer_norms` reports :math:`\lVert w\rVert` and :math:`\lVert g\rVert`
per parameter.

**Sums, not means, go to the Trainer.**  :func:`fit` follows Gluon's
convention: it writes the gradient of the *summed* loss of a batch of
:math:`B` examples into ``trainer.grads`` and calls ``trainer.step(B)``,
which multiplies by ``rescale_grad / B``.  The optimizer therefore sees the
gradient of the batch *mean* (with ``rescale_grad = 1``), and ``rescale_grad``
and ``clip_gradient`` mean what they mean in MXNet.  :meth:`MLP.loss_and_grad`
returns the mean by default (``reduction='mean'``), the sum with
``reduction='sum'``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import _checks

__all__ = [
    "MLP",
    "softmax_regression",
    "logistic_regression",
    "mlp",
    "gradient_check",
    "History",
    "fit",
    "LayerNorm",
    "layer_norms",
]

#: Batch normalisation's :math:`\epsilon` (Gluon's default) and the momentum of its moving statistics.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def _as_int(name, value, lo):
    return _checks.integer(lo)(name, value)


class MLP:
    r"""A fully connected classifier: ``L`` affine layers, an activation (and optional batch norm) between them.

    With hidden sizes :math:`d_1, \dots, d_{L-1}`, input :math:`h_0 = x` and
    :math:`\ell = 1, \dots, L`:

    .. math::
        a_\ell = h_{\ell-1} W_\ell^\top + b_\ell, \qquad
        h_\ell = \phi\bigl(\operatorname{BN}_\ell(a_\ell)\bigr) \quad (\ell < L),

    where :math:`\phi` is tanh or ReLU and, with ``batch_norm=True``,
    :math:`\operatorname{BN}_\ell(a) = \gamma_\ell \odot (a - \mu_B)/\sqrt{\sigma_B^2 + \epsilon} + \beta_\ell`
    with the batch mean and (biased) variance :math:`\mu_B, \sigma_B^2`
    (Ioffe & Szegedy 2015; the identity without it).  The output :math:`a_L`
    holds the logits.  The loss per example is the cross-entropy:

    * ``binary=False`` (``n_classes`` logits): :math:`-\log \operatorname{softmax}(a_L)_y`;
    * ``binary=True`` (one logit :math:`z`, labels :math:`y \in \{0, 1\}`):
      :math:`\log(1 + e^{z}) - y z`.

    Parameters: ``fc{ℓ}_weight`` :math:`W_\ell` of shape ``(d_ℓ, d_{ℓ-1})``
    (MXNet's ``(units, in_units)``), ``fc{ℓ}_bias`` :math:`b_\ell`, and with
    batch norm ``bn{ℓ}_gamma``, ``bn{ℓ}_beta`` for each hidden layer.  Batch
    norm also keeps moving averages of :math:`\mu_B, \sigma_B^2` (not
    parameters: no optimizer touches them) in a ``stats`` dict from
    :meth:`init_stats`; pass it to :meth:`loss_and_grad` to update it and to
    :meth:`logits` / :meth:`accuracy` to evaluate with it.

    Example:
      >>> import numpy as np
      >>> model = mlp(4, 3, hidden=(5,))
      >>> params = model.init_params(seed=0)
      >>> sorted(params), params['fc1_weight'].shape, params['fc1_weight'].dtype
      (['fc1_bias', 'fc1_weight', 'fc2_bias', 'fc2_weight'], (5, 4), dtype('float32'))
      >>> X = np.ones((2, 4), np.float32); loss, grads = model.loss_and_grad(params, X, np.array([0, 2]))
      >>> grads['fc2_weight'].shape, round(loss, 4)
      ((3, 5), 2.0147)

    References: D. E. Rumelhart, G. E. Hinton and R. J. Williams, "Learning
    representations by back-propagating errors", *Nature* 323, 1986;
    S. Ioffe and C. Szegedy, "Batch Normalization", *ICML* 2015;
    X. Glorot and Y. Bengio, *AISTATS* 2010 and K. He et al., *ICCV* 2015 (initialisation).
    """

    def __init__(self, n_features, n_classes, hidden=(), activation="tanh", batch_norm=False, binary=False):
        self.n_features = _as_int("n_features", n_features, 1)
        self.n_classes = _as_int("n_classes", n_classes, 2)
        if isinstance(hidden, numbers.Integral):
            hidden = (hidden,)
        self.hidden = tuple(_as_int(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden))
        if activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        if not isinstance(batch_norm, bool) or not isinstance(binary, bool):
            raise TypeError("batch_norm and binary must be True or False")
        if binary and self.n_classes != 2:
            raise ValueError(f"binary=True needs n_classes=2, got {self.n_classes}")
        if batch_norm and not self.hidden:
            raise ValueError("batch_norm=True needs at least one hidden layer")
        self.activation, self.batch_norm, self.binary = activation, batch_norm, binary
        self.sizes = (self.n_features, *self.hidden, 1 if binary else self.n_classes)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def __repr__(self):
        return (f"MLP(n_features={self.n_features}, n_classes={self.n_classes}, hidden={self.hidden}, "
                f"activation={self.activation!r}, batch_norm={self.batch_norm}, binary={self.binary})")

    # -- parameters -----------------------------------------------------------------
    def param_shapes(self) -> dict:
        """``{name: shape}`` in the order of the layers."""
        shapes = {}
        for layer in range(1, self.n_layers + 1):
            fan_in, fan_out = self.sizes[layer - 1], self.sizes[layer]
            shapes[f"fc{layer}_weight"] = (fan_out, fan_in)
            shapes[f"fc{layer}_bias"] = (fan_out,)
            if self.batch_norm and layer < self.n_layers:
                shapes[f"bn{layer}_gamma"] = (fan_out,)
                shapes[f"bn{layer}_beta"] = (fan_out,)
        return shapes

    def init_params(self, seed=0, dtype=np.float32) -> dict:
        r"""Fresh parameters: Glorot-uniform weights (He-uniform before a ReLU), zero biases, :math:`\gamma = 1`, :math:`\beta = 0`.

        Glorot: :math:`U(-a, a)`, :math:`a = \sqrt{6/(d_{\text{in}} + d_{\text{out}})}`;
        He: :math:`a = \sqrt{6/d_{\text{in}}}`.  Drawn from
        ``numpy.random.default_rng(seed)``, so the same seed gives the same values.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        rng = np.random.default_rng(seed)
        params = {}
        for name, shape in self.param_shapes().items():
            if name.endswith("_weight"):
                fan_out, fan_in = shape
                feeds_relu = self.activation == "relu" and int(name[2:-7]) < self.n_layers
                bound = math.sqrt(6.0 / fan_in) if feeds_relu else math.sqrt(6.0 / (fan_in + fan_out))
                params[name] = rng.uniform(-bound, bound, shape).astype(dtype)
            else:
                params[name] = np.full(shape, 1.0 if name.endswith("_gamma") else 0.0, dtype)
        return params

    def init_stats(self, dtype=np.float32) -> dict:
        """Batch norm's moving statistics, ``{'bn1_moving_mean': zeros, 'bn1_moving_var': ones, ...}`` (empty without it)."""
        stats = {}
        if self.batch_norm:
            for layer, size in enumerate(self.hidden, start=1):
                stats[f"bn{layer}_moving_mean"] = np.zeros(size, dtype)
                stats[f"bn{layer}_moving_var"] = np.ones(size, dtype)
        return stats

    def _check(self, params, X, y=None):
        shapes = self.param_shapes()
        if not isinstance(params, dict) and not hasattr(params, "keys"):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        if set(params.keys()) != set(shapes):
            raise ValueError(f"params must have exactly the names {sorted(shapes)}, got {sorted(params.keys())}")
        for name, shape in shapes.items():
            if tuple(np.shape(params[name])) != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {np.shape(params[name])}")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features or X.shape[0] == 0:
            raise ValueError(f"X must have shape (n, {self.n_features}) with n >= 1, got {X.shape}")
        if y is not None:
            y = np.asarray(y)
            if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"y must hold {X.shape[0]} integer labels, got {y.dtype} of shape {y.shape}")
            if y.min() < 0 or y.max() >= self.n_classes:
                raise ValueError(f"labels must be in 0..{self.n_classes - 1}, got {y.min()}..{y.max()}")
        return X, y

    # -- forward and backward ----------------------------------------------------------
    def _forward(self, params, X, stats, training):
        """Logits and the cache backpropagation needs; updates ``stats`` when training."""
        dtype = params["fc1_weight"].dtype
        h = np.asarray(X, dtype=dtype)
        cache = []
        for layer in range(1, self.n_layers + 1):
            a = h @ params[f"fc{layer}_weight"].T + params[f"fc{layer}_bias"]
            if layer == self.n_layers:
                cache.append((h, None, None))
                return a, cache
            norm = None
            if self.batch_norm:
                mean_key, var_key = f"bn{layer}_moving_mean", f"bn{layer}_moving_var"
                if training or stats is None:
                    mu, var = a.mean(axis=0), a.var(axis=0)
                    if training and stats is not None:
                        stats[mean_key][...] = BN_MOMENTUM * stats[mean_key] + (1 - BN_MOMENTUM) * mu
                        stats[var_key][...] = BN_MOMENTUM * stats[var_key] + (1 - BN_MOMENTUM) * var
                else:
                    mu, var = stats[mean_key], stats[var_key]
                inv_std = (1.0 / np.sqrt(var + dtype.type(BN_EPSILON))).astype(dtype)
                a_hat = (a - mu) * inv_std
                norm = (a_hat, inv_std)
                a = params[f"bn{layer}_gamma"] * a_hat + params[f"bn{layer}_beta"]
            out = np.tanh(a) if self.activation == "tanh" else np.maximum(a, 0)
            cache.append((h, norm, out))
            h = out
        raise AssertionError("unreachable")

    def logits(self, params, X, stats=None) -> np.ndarray:
        """The output :math:`a_L` for every row of ``X``: ``(n, n_classes)``, or ``(n,)`` when binary.

        Batch norm evaluates with the moving statistics ``stats`` if given,
        with the statistics of ``X`` itself otherwise.
        """
        X, _ = self._check(params, X)
        a, _ = self._forward(params, X, stats, training=False)
        return a[:, 0] if self.binary else a

    def predict(self, params, X, stats=None) -> np.ndarray:
        """Predicted class of every row of ``X`` (int64)."""
        a = self.logits(params, X, stats)
        return (a > 0).astype(np.int64) if self.binary else np.argmax(a, axis=1)

    def accuracy(self, params, X, y, stats=None) -> float:
        """Fraction of the rows of ``X`` whose predicted class is ``y``."""
        return float(np.mean(self.predict(params, X, stats) == np.asarray(y)))

    def loss(self, params, X, y, stats=None) -> float:
        """Mean cross-entropy over ``X`` in evaluation mode (batch norm as in :meth:`logits`; ``stats`` unchanged)."""
        X, y = self._check(params, X, y)
        return self._evaluate(params, X, y, stats)[0]

    def _evaluate(self, params, X, y, stats):
        """Mean loss and accuracy in evaluation mode, from one forward pass."""
        a, _ = self._forward(params, X, stats, training=False)
        predicted = (a[:, 0] > 0).astype(np.int64) if self.binary else np.argmax(a, axis=1)
        return float(self._loss_and_dlogits(a, y, need_grad=False)[0]) / len(y), float(np.mean(predicted == y))

    def _loss_and_dlogits(self, a, y, need_grad=True):
        """Summed cross-entropy of the logits ``a`` and its gradient with respect to ``a``."""
        if self.binary:
            z = a[:, 0]
            total = np.sum(np.logaddexp(0, z) - y * z, dtype=np.float64)
            if not need_grad:
                return total, None
            p = np.exp(-np.logaddexp(0, -z))                       # sigmoid(z), without overflow
            return total, (p - y).astype(a.dtype)[:, None]
        shifted = a - a.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(y))
        total = -np.sum(log_p[rows, y], dtype=np.float64)
        if not need_grad:
            return total, None
        d = np.exp(log_p)
        d[rows, y] -= 1
        return total, d

    def loss_and_grad(self, params, X, y, *, reduction="mean", stats=None):
        r"""The loss over the batch ``(X, y)`` and its exact gradient with respect to every parameter.

        ``reduction='mean'`` gives :math:`f = \frac1B \sum_i \ell_i` and
        :math:`\nabla f`; ``'sum'`` gives :math:`\sum_i \ell_i` and its gradient
        (:math:`B` times the mean's).  Training mode: batch norm normalises with
        the batch's own statistics and, if ``stats`` is given, updates the
        moving averages in it (:math:`m \leftarrow 0.9\, m + 0.1\, \mu_B`).

        The backward pass, with :math:`\delta_\ell = \partial f / \partial a_\ell`:
        :math:`\delta_L = (\operatorname{softmax}(a_L) - e_y)/B` (or
        :math:`(\sigma(z) - y)/B`), :math:`\nabla_{W_\ell} f = \delta_\ell^\top h_{\ell-1}`,
        :math:`\nabla_{b_\ell} f = \sum_i \delta_{\ell,i}` and
        :math:`\delta_{\ell-1} = (\delta_\ell W_\ell) \odot \phi'`, and through batch norm, with :math:`\delta_{\hat a} = \gamma \odot \delta`
        the gradient at the normalised :math:`\hat a`,
        :math:`\delta_a = \bigl(\delta_{\hat a} - \overline{\delta_{\hat a}} - \hat a\, \overline{\delta_{\hat a} \hat a}\bigr) / \sqrt{\sigma_B^2 + \epsilon}`
        (bars: means over the batch), :math:`\nabla_\gamma f = \sum_i \delta_i \hat a_i`,
        :math:`\nabla_\beta f = \sum_i \delta_i`.

        Returns ``(loss, grads)``: a Python float and ``{name: array}`` in the
        parameters' dtype.
        """
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        X, y = self._check(params, X, y)
        return self._loss_and_grad(params, X, y, reduction == "mean", stats)

    def _loss_and_grad(self, params, X, y, mean, stats):
        """:meth:`loss_and_grad` on checked arguments."""
        a, cache = self._forward(params, X, stats, training=True)
        total, delta = self._loss_and_dlogits(a, y)
        if mean:
            total, delta = total / len(y), delta / delta.dtype.type(len(y))
        grads = {}
        for layer in range(self.n_layers, 0, -1):
            h, norm, _ = cache[layer - 1]
            grads[f"fc{layer}_weight"] = delta.T @ h
            grads[f"fc{layer}_bias"] = delta.sum(axis=0)
            if layer == 1:
                break
            delta = delta @ params[f"fc{layer}_weight"]
            _, below_norm, below_out = cache[layer - 2]
            below = layer - 1
            delta = delta * (1 - below_out * below_out) if self.activation == "tanh" else delta * (below_out > 0)
            if below_norm is not None:
                a_hat, inv_std = below_norm
                grads[f"bn{below}_gamma"] = (delta * a_hat).sum(axis=0)
                grads[f"bn{below}_beta"] = delta.sum(axis=0)
                d_hat = delta * params[f"bn{below}_gamma"]
                delta = inv_std * (d_hat - d_hat.mean(axis=0) - a_hat * (d_hat * a_hat).mean(axis=0))
        dtype = params["fc1_weight"].dtype
        return float(total), {name: grads[name].astype(dtype, copy=False) for name in self.param_shapes()}


def softmax_regression(n_features, n_classes) -> MLP:
    r"""Multinomial logistic regression, :math:`p(y \mid x) = \operatorname{softmax}(W x + b)_y` (an :class:`MLP` without hidden layers).

    Parameters ``fc1_weight`` ``(n_classes, n_features)`` and ``fc1_bias``.
    Its loss is convex in :math:`(W, b)`.

    Example:
      >>> from mxopt import datasets
      >>> data = datasets.digits()
      >>> model = softmax_regression(data.n_features, data.n_classes)
      >>> history = fit(model, None, data, 'sgd', {'learning_rate': 0.1}, epochs=3, batch_size=32)
      >>> bool(history.test_accuracy[-1] > 0.9)
      True
    """
    return MLP(n_features, n_classes)


def logistic_regression(n_features) -> MLP:
    r"""Binary logistic regression, :math:`P(y = 1 \mid x) = \sigma(w^\top x + b)`, labels in {0, 1}.

    Parameters ``fc1_weight`` ``(1, n_features)`` and ``fc1_bias`` ``(1,)``;
    the loss is :math:`\log(1 + e^{z}) - y z` with :math:`z = w^\top x + b`.

    Example:
      >>> import numpy as np
      >>> model = logistic_regression(3)
      >>> params = {'fc1_weight': np.zeros((1, 3), np.float32), 'fc1_bias': np.zeros(1, np.float32)}
      >>> loss, grads = model.loss_and_grad(params, np.eye(3, dtype=np.float32), np.array([1, 0, 1]))
      >>> round(loss, 6) == round(float(np.log(2)), 6), grads['fc1_bias']
      (True, array([-0.16666667], dtype=float32))
    """
    return MLP(n_features, 2, binary=True)


def mlp(n_features, n_classes, hidden=(64,), activation="tanh", batch_norm=False) -> MLP:
    """A multi-layer perceptron classifier (see :class:`MLP`); ``hidden`` gives the hidden layers' sizes."""
    return MLP(n_features, n_classes, hidden=hidden, activation=activation, batch_norm=batch_norm)


# ---------------------------------------------------------------------------
# Gradient check
# ---------------------------------------------------------------------------


def gradient_check(model, params, X, y, *, eps=1e-6, max_entries=None, seed=0) -> dict:
    r"""Relative error of :meth:`MLP.loss_and_grad` against central finite differences, per parameter, in float64.

    Everything is cast to float64; for each checked entry :math:`\theta_k`,

    .. math::
        \tilde g_k = \frac{f(\theta + \epsilon e_k) - f(\theta - \epsilon e_k)}{2 \epsilon},
        \qquad \text{error} = \frac{\lVert g - \tilde g\rVert}{\max(\lVert g\rVert + \lVert \tilde g\rVert,\ 10^{-3})},

    with :math:`f` the mean loss in training mode (batch norm with the
    batch's statistics).  The truncation error is :math:`O(\epsilon^2)`, the
    rounding error :math:`O(10^{-16}/\epsilon)`, so a correct gradient gives
    errors near :math:`10^{-9}` with ``eps=1e-6`` (cross-entropy losses of
    order 1).  The floor :math:`10^{-3}` makes the error absolute (divided
    by :math:`10^{-3}`: rounding noise of :math:`10^{-10}` reads as
    :math:`10^{-7}`) for a gradient that is (almost) zero, such as that of a
    bias just before batch norm, which the normalisation removes.
    A ReLU unit whose input is exactly 0 is a kink where the derivative is
    not defined (zero biases and a sample that no unit of the layer below
    responds to give one): check at generic points.  ``max_entries`` checks
    only that many randomly chosen entries of each parameter (all by default).

    Example:
      >>> import numpy as np
      >>> model = mlp(5, 3, hidden=(4,), batch_norm=True)
      >>> rng = np.random.default_rng(0)
      >>> X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
      >>> errors = gradient_check(model, model.init_params(seed=1), X, y)
      >>> max(errors.values()) < 1e-6
      True

    Reference: the standard check, e.g. I. Goodfellow, Y. Bengio and A.
    Courville, *Deep Learning*, MIT Press 2016, §11.5.
    """
    rng = np.random.default_rng(seed)
    theta = {name: np.array(value, dtype=np.float64) for name, value in params.items()}
    X = np.asarray(X, dtype=np.float64)
    _, analytic = model.loss_and_grad(theta, X, y)
    errors = {}
    for name, value in theta.items():
        flat = value.reshape(-1)
        entries = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            entries = np.sort(rng.choice(flat.size, max_entries, replace=False))
        numeric = np.empty(len(entries))
        for i, k in enumerate(entries):
            saved = flat[k]
            flat[k] = saved + eps
            plus = model.loss_and_grad(theta, X, y)[0]
            flat[k] = saved - eps
            minus = model.loss_and_grad(theta, X, y)[0]
            flat[k] = saved
            numeric[i] = (plus - minus) / (2 * eps)
        exact = analytic[name].reshape(-1)[entries]
        errors[name] = float(np.linalg.norm(exact - numeric) /
                             max(np.linalg.norm(exact) + np.linalg.norm(numeric), 1e-3))
    return errors


# ---------------------------------------------------------------------------
# Per-layer norms (LARS, LAMB)
# ---------------------------------------------------------------------------


class LayerNorm(NamedTuple):
    """:math:`\\lVert w\\rVert_2` and :math:`\\lVert g\\rVert_2` of one parameter."""

    name: str
    weight_norm: float
    grad_norm: float

    @property
    def ratio(self) -> float:
        """:math:`\\lVert w\\rVert / \\lVert g\\rVert` (inf when the gradient is 0), the quantity LARS's trust ratio is built on."""
        return self.weight_norm / self.grad_norm if self.grad_norm > 0 else math.inf


def layer_norms(params, grads) -> list:
    r"""Per parameter, :math:`\lVert w\rVert_2`, :math:`\lVert g\rVert_2` and their ratio, in the order of ``params``.

    Computed in float64.  Works on a dict of arrays or on a Trainer's
    ``params`` / ``grads`` views.

    Example:
      >>> import numpy as np
      >>> [(n.name, n.weight_norm, n.grad_norm, n.ratio) for n in
      ...  layer_norms({'fc1_weight': np.full(4, 3.0)}, {'fc1_weight': np.full(4, 0.5)})]
      [('fc1_weight', 6.0, 1.0, 6.0)]

    Reference: Y. You, I. Gitman and B. Ginsburg, "Large Batch Training of
    Convolutional Networks", arXiv:1708.03888, 2017 (LARS).
    """
    return [LayerNorm(name, float(np.linalg.norm(np.asarray(params[name], dtype=np.float64))),
                      float(np.linalg.norm(np.asarray(grads[name], dtype=np.float64))))
            for name in params]


# ---------------------------------------------------------------------------
# Training driver
# ---------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` measured.

    Attributes:
      train_loss: ``(epochs + 1,)`` mean loss over the whole training split
        after each epoch (entry 0: before training); NaN after a divergence.
      train_accuracy, test_accuracy: ``(epochs + 1,)`` likewise.
      step_loss: ``(n_steps,)`` each batch's mean loss (its value at the
        weights the step started from), when ``record_steps=True``; else empty.
      diverged: whether a loss or a weight became non-finite (training stopped there).
      trainer: the :class:`mxopt.Trainer` that holds the trained parameters.
      stats: batch norm's moving statistics (empty without batch norm).
    """

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    step_loss: np.ndarray
    diverged: bool
    trainer: object = field(repr=False)
    stats: dict = field(default_factory=dict, repr=False)

    @property
    def params(self):
        """The trained parameters (views of the trainer's buffer)."""
        return self.trainer.params


class EpochRecord:
    """The per-epoch measurements of a training run, shared by every driver.

    ``record(epoch)`` measures the training loss and accuracy and the test
    accuracy of the current ``weights`` (entry 0 is before training; entries
    never measured stay NaN) and says whether the loss is finite.
    ``end_of_epoch(epoch, trainer)`` does that after an epoch, once the
    weights are known to be finite; it returns False for a diverged run.
    ``X``, ``y`` are the training arrays in the weights' dtype.
    """

    def __init__(self, model, weights, data, epochs, stats):
        self.model, self.weights, self.stats = model, weights, stats
        dtype = next(iter(weights.values())).dtype
        self.X, self.y = model._check(weights, np.asarray(data.X_train, dtype=dtype), data.y_train)
        self.X_test, self.y_test = model._check(weights, np.asarray(data.X_test, dtype=dtype), data.y_test)
        nan = np.full(epochs + 1, np.nan)
        self.train_loss, self.train_accuracy, self.test_accuracy = nan.copy(), nan.copy(), nan.copy()

    def __call__(self, epoch):
        with np.errstate(all="ignore"):
            self.train_loss[epoch], self.train_accuracy[epoch] = \
                self.model._evaluate(self.weights, self.X, self.y, self.stats)
            self.test_accuracy[epoch] = self.model._evaluate(self.weights, self.X_test, self.y_test, self.stats)[1]
        return math.isfinite(self.train_loss[epoch])

    def end_of_epoch(self, epoch, trainer):
        return bool(np.all(np.isfinite(trainer.data))) and self(epoch)


def _steps(model, trainer, X, y, order, batch_size, stats, before_step, first_step):
    """Train on ``X[order]`` in batches of ``batch_size``, a step each; the batches' mean losses.

    Each step writes the gradient of the batch's summed loss into
    ``trainer.grads`` and calls ``trainer.step(B)``; ``before_step(trainer,
    step)`` runs between the two, steps counted from ``first_step``. Stops at
    the first non-finite loss, which ends the list (no step is taken for it).
    The arguments are already checked (:func:`fit`, :func:`mxopt.strategies.train_epoch`).
    """
    weights, grads = trainer.params, trainer.grads
    losses = []
    for step, begin in enumerate(range(0, len(order), batch_size), start=first_step):
        batch = order[begin:begin + batch_size]
        with np.errstate(all="ignore"):
            loss, g = model._loss_and_grad(weights, X[batch], y[batch], False, stats)
        losses.append(loss / len(batch))
        if not math.isfinite(loss):
            break
        for name, value in g.items():
            grads[name][...] = value
        if before_step is not None:
            before_step(trainer, step)
        trainer.step(len(batch))
    return losses


def fit(model, params, data, optimizer="sgd", optimizer_params=None, epochs=10, batch_size=32, seed=0, *,
        lr_mult=None, wd_mult=None, record_steps=False, stats=None, before_step=None) -> History:
    r"""Train ``model`` on ``data`` with mini-batches and an mxopt optimizer; return a :class:`History`.

    Args:
      model: an :class:`MLP`.
      params: ``None`` (fresh ``model.init_params(seed)``, float32), a dict of
        arrays (copied into a new Trainer; the dict is not changed), or an
        :class:`mxopt.Trainer` that already holds the model's parameters (it
        continues from where it is; ``optimizer``, ``optimizer_params``,
        ``lr_mult`` and ``wd_mult`` must then be left at their defaults).
      data: a :class:`mxopt.datasets.Dataset` (features are cast to the
        parameters' dtype).
      optimizer, optimizer_params, lr_mult, wd_mult: as for :class:`mxopt.Trainer`.
      epochs, batch_size: each epoch visits the training examples once, in an
        order drawn from ``numpy.random.default_rng(seed)``, in batches of
        ``batch_size`` (the last one smaller when it does not divide
        :math:`N`).
      record_steps: keep every batch's loss in ``history.step_loss``.
      stats: batch norm's moving statistics to continue from (fresh by default).
      before_step: ``before_step(trainer, step)`` is called after the batch's
        gradient is written into ``trainer.grads`` and before
        ``trainer.step``; ``step`` counts from 1.  A chapter can add gradient
        noise or simulate workers there.

    Each step writes the gradient of the batch's *summed* loss into
    ``trainer.grads`` and calls ``trainer.step(B)`` with :math:`B` the batch
    size, so the optimizer sees the batch-mean gradient
    :math:`g_t = \frac1B \sum_{i \in \mathcal B_t} \nabla \ell_i(w_t)` (Gluon's
    convention; ``rescale_grad`` multiplies it further).  Training stops at
    the first non-finite loss or weight (``history.diverged``).  The same
    arguments give the same history, bit for bit.

    Example:
      >>> from mxopt import datasets
      >>> data = datasets.digits()
      >>> model = mlp(data.n_features, data.n_classes, hidden=(32,))
      >>> history = fit(model, None, data, 'adam', {'learning_rate': 0.01}, epochs=3, batch_size=32)
      >>> bool(history.train_loss[-1] < history.train_loss[0] / 10 and history.test_accuracy[-1] > 0.9)
      True
    """
    from .trainer import Trainer

    epochs = _as_int("epochs", epochs, 0)
    batch_size = _as_int("batch_size", batch_size, 1)
    if before_step is not None and not callable(before_step):
        raise TypeError(f"before_step must be callable, got {type(before_step).__name__}")
    if isinstance(params, Trainer):
        if optimizer != "sgd" or optimizer_params or lr_mult or wd_mult:
            raise ValueError("params is a Trainer: it has its optimizer and multipliers already; "
                             "leave optimizer, optimizer_params, lr_mult and wd_mult at their defaults")
        trainer = params
    else:
        if params is None:
            params = model.init_params(seed)
        trainer = Trainer(dict(params), optimizer, optimizer_params, lr_mult=lr_mult, wd_mult=wd_mult)
    weights = trainer.params
    stats = model.init_stats(weights["fc1_weight"].dtype) if stats is None else stats
    evaluate = EpochRecord(model, weights, data, epochs, stats)
    X, y = evaluate.X, evaluate.y
    step_loss = []

    rng = np.random.default_rng(seed)
    diverged = not evaluate(0)
    step = 0
    for epoch in range(1, epochs + 1):
        if diverged:
            break
        losses = _steps(model, trainer, X, y, rng.permutation(len(y)), batch_size, stats, before_step, step + 1)
        if losses and not math.isfinite(losses[-1]):
            diverged = True
            losses.pop()
        step += len(losses)
        if record_steps:
            step_loss.extend(losses)
        diverged = diverged or not evaluate.end_of_epoch(epoch, trainer)
    return History(evaluate.train_loss, evaluate.train_accuracy, evaluate.test_accuracy,
                   np.asarray(step_loss), diverged, trainer, stats)
