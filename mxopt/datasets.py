"""Data for the guide's chapters: two small real data sets, a sparse click-through-like stream, and Reddi et al.'s online counterexample.

* :func:`digits` and :func:`breast_cancer`: scikit-learn's bundled copies of
  the UCI optical digits (1797 images of 8×8 pixels, 10 classes) and of the
  Wisconsin diagnostic breast-cancer data (569 examples, 30 features, 2
  classes).  Both ship inside the scikit-learn package; nothing is
  downloaded.  Each comes as a :class:`Dataset`: a deterministic stratified
  train/test split, standardised with the training split's statistics.
* :func:`sparse_logistic`: a synthetic binary-classification stream whose
  features occur with Zipf-distributed frequencies (a few in almost every
  example, most rare) and whose labels come from a known logistic model,
  optionally with a sparse true weight vector (AdaGrad's rare features, FTRL's
  L1 sparsity).
* :func:`reddi_counterexample`: the one-dimensional online problem on which
  Adam converges to the worst point of :math:`[-1, 1]` and AMSGrad to the
  best (Reddi, Kale & Kumar 2018, §3).

Everything is deterministic: randomness only enters through explicit seeds.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _checks

__all__ = [
    "Dataset",
    "digits",
    "breast_cancer",
    "stratified_split",
    "SparseLogistic",
    "sparse_logistic",
    "ReddiCounterexample",
    "reddi_counterexample",
]


# ---------------------------------------------------------------------------
# Checks shared by the generators
# ---------------------------------------------------------------------------


def _count(name, value, lo=1):
    return _checks.integer(lo)(name, value)


def _real(name, value, lo, hi, *, lo_open=False, hi_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    below = value <= lo if lo_open else value < lo
    above = value >= hi if hi_open else value > hi
    if math.isnan(value) or below or above:
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                         f"got {value!r}")
    return value


def _float_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


# ---------------------------------------------------------------------------
# Real data: scikit-learn's bundled sets
# ---------------------------------------------------------------------------


class Dataset(NamedTuple):
    """A train/test split of a classification data set.

    It unpacks as ``X_train, y_train, X_test, y_test, n_classes = data``.
    ``X_*`` are float arrays of shape ``(n, n_features)``; ``y_*`` are int64
    class labels in ``0 .. n_classes - 1``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_train(self) -> int:
        return self.X_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.X_test.shape[0]


def stratified_split(y, test_fraction=0.25, seed=0):
    r"""Row indices ``(train, test)`` of a deterministic stratified split of the labels ``y``.

    Each class :math:`c` with :math:`n_c` examples puts
    :math:`\operatorname{round}(f\, n_c)` of them, chosen at random, into the
    test split (:math:`f` = ``test_fraction``), so both splits keep the class
    proportions up to one example per class.  Each split is returned in a
    random order (not grouped by class).  The same ``y``, ``test_fraction``
    and ``seed`` always give the same split.

    Example:
      >>> import numpy as np
      >>> train, test = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
      >>> sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[test].tolist())
      [0, 0, 1, 1]
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y must be a 1-D array of integer labels, got {y.dtype} of shape {y.shape}")
    test_fraction = _real("test_fraction", test_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(members)))
        if n_test == 0 or n_test == len(members):
            raise ValueError(f"test_fraction={test_fraction} leaves class {c} ({len(members)} examples) "
                             "with no example in one of the splits")
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _standardised_split(X, y, test_fraction, seed, dtype) -> Dataset:
    r"""Split, then standardise every feature with the training split's mean and standard deviation.

    :math:`x \mapsto (x - \mu_{\text{train}}) / s_{\text{train}}`, with
    :math:`s = 1` for a feature that is constant on the training split (so it
    stays finite; such a feature is 0 on the training split).
    """
    dtype = _float_dtype(dtype)
    train, test = stratified_split(y, test_fraction, seed)
    X = np.asarray(X, dtype=np.float64)
    mean = X[train].mean(axis=0)
    scale = X[train].std(axis=0)
    scale[scale == 0] = 1.0
    standard = (X - mean) / scale
    y = np.asarray(y, dtype=np.int64)
    return Dataset(standard[train].astype(dtype), y[train], standard[test].astype(dtype), y[test],
                   int(y.max()) + 1)


def _sklearn():
    try:
        from sklearn import datasets
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("mxopt.datasets needs scikit-learn for its bundled data sets: "
                          "pip install scikit-learn (it is part of mxopt's 'test' and 'docs' extras)") from None
    return datasets


def digits(test_fraction=0.25, seed=0, dtype=np.float32) -> Dataset:
    """The 8×8 handwritten digits bundled with scikit-learn: 1797 images, 64 features, 10 classes.

    A stratified split (:func:`stratified_split`) with ``test_fraction`` of
    each class in the test set, the pixels (0 … 16) standardised with the
    training split's per-pixel mean and standard deviation; pixels that are
    blank in every training image get scale 1.  Read from the copy inside the
    scikit-learn package: nothing is downloaded.

    Example:
      >>> data = digits()
      >>> data.X_train.shape, data.X_test.shape, data.n_classes, data.X_train.dtype
      ((1347, 64), (450, 64), 10, dtype('float32'))

    Reference: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten
    Digits", UCI Machine Learning Repository, 1998 (the test part of it that
    scikit-learn ships).
    """
    raw = _sklearn().load_digits()
    return _standardised_split(raw.data, raw.target, test_fraction, seed, dtype)


def breast_cancer(test_fraction=0.25, seed=0, dtype=np.float32) -> Dataset:
    """The Wisconsin diagnostic breast-cancer data bundled with scikit-learn: 569 examples, 30 features, 2 classes.

    Label 0 is malignant (212 examples), 1 benign (357).  Split and
    standardised as :func:`digits` is.  The raw features span five orders of
    magnitude (areas in the thousands, fractal dimensions near 0.06), which
    is why they are standardised.

    Example:
      >>> data = breast_cancer(dtype=np.float64)
      >>> data.n_train, data.n_test, data.n_features, data.n_classes
      (427, 142, 30, 2)

    Reference: W. N. Street, W. H. Wolberg and O. L. Mangasarian, "Nuclear
    feature extraction for breast tumor diagnosis", *Proc. SPIE* 1905, 1993.
    """
    raw = _sklearn().load_breast_cancer()
    return _standardised_split(raw.data, raw.target, test_fraction, seed, dtype)


# ---------------------------------------------------------------------------
# A sparse, click-through-like stream with Zipf feature frequencies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SparseLogistic:
    r"""A binary-classification stream with Zipf-distributed binary features and a known logistic model.

    Attributes:
      X: ``(n_samples, n_features)`` array of 0/1 indicators, in stream order;
        column ``j`` is the feature of frequency rank ``j + 1``.
      y: ``(n_samples,)`` int64 labels in {0, 1}.
      true_weight, true_bias: the model the labels were drawn from,
        :math:`P(y = 1 \mid x) = \sigma(x^\top w^\star + b^\star)`.
      probability: ``(n_features,)`` the probability :math:`p_j` with which
        feature ``j`` is on in an example.
      frequency: ``(n_features,)`` the fraction of the ``n_samples`` examples
        in which it is on (the measured :math:`p_j`).
      zipf_exponent: the exponent :math:`s` of :math:`p_j \propto j^{-s}`.
    """

    X: np.ndarray
    y: np.ndarray
    true_weight: np.ndarray
    true_bias: float
    probability: np.ndarray
    frequency: np.ndarray
    zipf_exponent: float

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    def split(self, test_fraction=0.25) -> Dataset:
        """The stream cut into a :class:`Dataset`: the first examples train, the last ``test_fraction`` test.

        Cut in stream order (the examples are independent, so this is a
        random split) and not standardised: the features stay 0/1 and sparse.
        """
        test_fraction = _real("test_fraction", test_fraction, 0.0, 1.0, lo_open=True, hi_open=True)
        cut = self.n_samples - int(round(test_fraction * self.n_samples))
        if not 0 < cut < self.n_samples:
            raise ValueError(f"test_fraction={test_fraction} leaves an empty split of {self.n_samples} examples")
        return Dataset(self.X[:cut], self.y[:cut], self.X[cut:], self.y[cut:], 2)


def sparse_logistic(n_samples=10_000, n_features=1_000, zipf_exponent=1.0, top_frequency=0.9,
                    weight_density=1.0, weight_scale=1.0, seed=0, dtype=np.float32) -> SparseLogistic:
    r"""A synthetic click-through-like stream: rare and frequent binary features, labels from a known logistic model.

    Feature :math:`j = 1, \dots, d` (column ``j - 1``) is on in each example
    independently with probability

    .. math::
        p_j = p_1\, j^{-s},

    a Zipf law with exponent :math:`s` = ``zipf_exponent`` and
    :math:`p_1` = ``top_frequency``: the first few features are in almost
    every example, most of the others in a handful.  The true weights are
    :math:`w^\star_j \sim \mathcal N(0, \sigma^2)` (:math:`\sigma` =
    ``weight_scale``) on a random subset of ``round(weight_density · d)``
    features and exactly 0 elsewhere; the bias :math:`b^\star` is chosen so
    that the average logit is 0 (balanced classes on average), and the labels
    are drawn from

    .. math::
        P(y = 1 \mid x) = \sigma(x^\top w^\star + b^\star), \qquad \sigma(z) = 1 / (1 + e^{-z}).

    The stream is returned dense (0/1 entries) with each feature's measured
    frequency, so a chapter can plot it against the rank on log axes (slope
    :math:`-s`) and show that AdaGrad gives the rare features larger steps or
    that FTRL's L1 penalty zeroes them.

    Example:
      >>> data = sparse_logistic(n_samples=2000, n_features=200, zipf_exponent=1.0, seed=0)
      >>> data.X.shape, data.X.dtype, sorted(set(data.X.ravel().tolist()))
      ((2000, 200), dtype('float32'), [0.0, 1.0])
      >>> bool(data.frequency[0] > 0.85 and data.frequency[-1] < 0.01)
      True

    References: H. B. McMahan et al., "Ad Click Prediction: a View from the
    Trenches", *KDD* 2013 (the setting); J. Duchi, E. Hazan and Y. Singer,
    "Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization", *JMLR* 12, 2011 (why rare features need larger steps).
    """
    n_samples = _count("n_samples", n_samples)
    n_features = _count("n_features", n_features)
    zipf_exponent = _real("zipf_exponent", zipf_exponent, 0.0, math.inf, hi_open=True)
    top_frequency = _real("top_frequency", top_frequency, 0.0, 1.0, lo_open=True)
    weight_density = _real("weight_density", weight_density, 0.0, 1.0)
    weight_scale = _real("weight_scale", weight_scale, 0.0, math.inf, hi_open=True)
    dtype = _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    probability = top_frequency * np.arange(1, n_features + 1, dtype=np.float64) ** -zipf_exponent
    X = np.empty((n_samples, n_features), dtype=dtype)
    rows = max(1, (1 << 22) // n_features)  # draw a few million uniforms at a time
    for begin in range(0, n_samples, rows):
        block = rng.random((min(rows, n_samples - begin), n_features))
        X[begin:begin + len(block)] = block < probability
    true_weight = np.zeros(n_features)
    support = rng.permutation(n_features)[:int(round(weight_density * n_features))]
    true_weight[support] = weight_scale * rng.standard_normal(len(support))
    true_bias = -float(probability @ true_weight)
    logit = X.astype(np.float64) @ true_weight + true_bias
    y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return SparseLogistic(X, y, true_weight.astype(dtype), true_bias, probability,
                          X.mean(axis=0, dtype=np.float64), zipf_exponent)


# ---------------------------------------------------------------------------
# Reddi, Kale & Kumar's online counterexample
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReddiCounterexample:
    r"""Reddi, Kale & Kumar's (2018, §3) online problem on which Adam fails.

    The feasible set is :math:`\mathcal F = [-1, 1]` and the losses are linear,

    .. math::
        f_t(x) = \begin{cases} C x & t \bmod 3 = 1,\\ -x & \text{otherwise,}\end{cases}
        \qquad t = 1, 2, \dots

    with :math:`C > 2`.  Over each period of three the losses sum to
    :math:`(C - 2)\, x`, so the best fixed point in hindsight is
    :math:`x^\star = -1` (:attr:`minimum`) and :math:`+1` (:attr:`worst`) is
    the worst.  Every update is followed by the projection onto
    :math:`\mathcal F` (:meth:`project`, a clip).

    Here ``t`` is the paper's index, which is the update number: update
    :math:`t` (MXNet's count, 1 at the first update) reads the gradient of
    :math:`f_t` at the current point :math:`x_{t-1}`.  In the guide's notation
    (the notation page), that loss is :math:`f_{t-1}` evaluated at :math:`w_{t-1}`.

    **Theorem 1's setting.**  Adam with :math:`\beta_1 = 0`,
    :math:`\beta_2 = 1/(1 + C^2)` (:attr:`beta1`, :attr:`beta2`) and step sizes
    :math:`\alpha_t = \alpha/\sqrt t` with :math:`\alpha < \sqrt{1 - \beta_2}`
    (:meth:`learning_rate`, :attr:`max_alpha`) converges to :math:`+1`.  The
    large gradient :math:`C` comes once in three steps; with so small a
    :math:`\beta_2` the second moment forgets it within a step, so the step it
    causes is scaled down by about :math:`C`, while the two gradients
    :math:`-1` that follow each move :math:`x` up by about :math:`\alpha_t`.
    The average regret then tends to :math:`2(C - 2)/3 > 0` instead of 0.
    AMSGrad divides by the running maximum of :math:`v` instead, so the
    gradients :math:`-1` move :math:`x` by only about :math:`\alpha_t/C` and it
    converges to :math:`-1`.  (The paper's Adam has no bias correction;
    MXNet's Adam, with it and with its :math:`\epsilon`, converges to
    :math:`+1` as well: :math:`\beta_1 = 0` makes the first correction 1 and
    :math:`\beta_2^t` vanishes within a few steps.)

    Example:
      >>> import mxopt
      >>> problem = reddi_counterexample(C=3)
      >>> runs = {name: problem.run(mxopt.create(name, beta1=problem.beta1, beta2=problem.beta2,
      ...                                        lr_scheduler=problem.learning_rate(0.5)), steps=3000)
      ...         for name in ('adam', 'amsgrad')}
      >>> round(float(runs['adam'][-1]), 3), round(float(runs['amsgrad'][-1]), 3)
      (1.0, -0.994)
      >>> bool(problem.average_regret(runs['adam']) > 0.5 > abs(problem.average_regret(runs['amsgrad'])))
      True

    Reference: S. J. Reddi, S. Kale and S. Kumar, "On the Convergence of Adam
    and Beyond", *ICLR* 2018, §3 and Theorem 1.
    """

    C: float = 3.0

    period = 3
    lower, upper = -1.0, 1.0
    minimum = -1.0
    worst = 1.0
    beta1 = 0.0

    def __post_init__(self):
        if isinstance(self.C, bool) or not isinstance(self.C, numbers.Real):
            raise TypeError(f"C must be a real number, got {type(self.C).__name__} {self.C!r}")
        if not (math.isfinite(self.C) and self.C > 2):
            raise ValueError(f"C must be a finite number > 2 (for C <= 2, -1 is not the best point), got {self.C!r}")
        object.__setattr__(self, "C", float(self.C))

    @property
    def beta2(self) -> float:
        r""":math:`\beta_2 = 1/(1 + C^2)`, Theorem 1's choice."""
        return 1.0 / (1.0 + self.C * self.C)

    @property
    def max_alpha(self) -> float:
        r"""Theorem 1's bound on :math:`\alpha`: :math:`\alpha < \sqrt{1 - \beta_2}`."""
        return math.sqrt(1.0 - self.beta2)

    def learning_rate(self, alpha):
        r"""The schedule :math:`\alpha_t = \alpha/\sqrt t`, as an ``lr_scheduler`` (a function of the update count).

        Raises ValueError unless :math:`0 < \alpha < \sqrt{1 - \beta_2}`, Theorem 1's condition.
        """
        alpha = _real("alpha", alpha, 0.0, self.max_alpha, lo_open=True, hi_open=True)
        return lambda t: alpha / math.sqrt(t)

    def coefficient(self, t):
        """The slope of :math:`f_t`: ``C`` where ``t % 3 == 1``, else ``-1`` (``t`` an int or int array)."""
        return np.where(np.asarray(t) % self.period == 1, self.C, -1.0)

    def value(self, x, t):
        """:math:`f_t(x)`."""
        return self.coefficient(t) * np.asarray(x, dtype=np.float64)

    def grad(self, x, t):
        """:math:`f_t'(x)`, an array shaped and typed like ``x``."""
        x = np.asarray(x)
        return np.full_like(x, self.coefficient(t), dtype=x.dtype if x.dtype.kind == "f" else np.float64)

    def project(self, x):
        """The Euclidean projection onto :math:`[-1, 1]`, in place on an array (and returned)."""
        return np.clip(x, self.lower, self.upper, out=x if isinstance(x, np.ndarray) else None)

    def run(self, optimizer, steps=3000, x0=1.0, dtype=np.float64):
        r"""Projected online run: :math:`x_t = \Pi_{[-1,1]}(\text{update}(x_{t-1}, f_t'(x_{t-1})))`, :math:`t = 1 \dots` ``steps``.

        ``optimizer`` is an mxopt optimizer (a deep copy is driven, so it
        stays fresh) or a from-scratch ``step(x, g) -> None`` that updates the
        1-element array ``x`` in place.  Returns the float64 path
        :math:`x_0, \dots, x_T`, shape ``(steps + 1,)``.
        """
        from .problems import _as_step

        steps = _count("steps", steps)
        x = np.full(1, float(x0), dtype=_float_dtype(dtype))
        self.project(x)
        step = _as_step(optimizer, x, True)
        path = np.empty(steps + 1)
        path[0] = x[0]
        for t in range(1, steps + 1):
            if step(x, self.grad(x, t)) is not None:
                raise TypeError("step(x, g) must update x in place and return None")
            self.project(x)
            path[t] = x[0]
        return path

    def regret(self, path):
        r"""Regret after each round: :math:`R_T = \sum_{t=1}^T f_t(x_{t-1}) - \min_{x \in [-1,1]} \sum_{t=1}^T f_t(x)`.

        ``path`` is :math:`x_0, \dots, x_T` (what :meth:`run` returns); the
        result has shape ``(T,)``, entry ``T - 1`` being :math:`R_T`.  The
        comparator's loss is linear in :math:`x`, so its minimum is
        :math:`-|\sum_t c_t|` at an end point.
        """
        path = np.asarray(path, dtype=np.float64)
        c = self.coefficient(np.arange(1, len(path)))
        return np.cumsum(c * path[:-1]) + np.abs(np.cumsum(c))

    def average_regret(self, path) -> float:
        """:math:`R_T / T` for the whole ``path`` (tends to 0 for a no-regret method)."""
        regret = self.regret(path)
        return float(regret[-1] / len(regret))


def reddi_counterexample(C=3.0) -> ReddiCounterexample:
    """Reddi, Kale & Kumar's online counterexample to Adam's convergence, with slope ``C > 2``.

    See :class:`ReddiCounterexample`.
    """
    return ReddiCounterexample(C)
