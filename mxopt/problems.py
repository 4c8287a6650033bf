"""Small optimisation problems for the guide, and drivers that record what an optimizer does on them.

Four kinds of object live here:

* **2-D test functions** (:class:`Quadratic`, :class:`Rosenbrock`, :class:`Beale`,
  :class:`Saddle`): classic surfaces on which the path of an optimizer can be
  drawn.  Each has an exact analytic gradient.
* **A linear-regression problem** (:func:`make_regression` returns a
  :class:`LinearRegression`): a least-squares loss that is cheap enough to
  train with mini-batch SGD for many epochs in a notebook.
* **Drivers** that run an optimizer and return what it did:
  :func:`trajectory` (a from-scratch ``step(p, g)`` function),
  :func:`run_optimizer` (an mxopt optimizer, through the MXNet API
  ``create_state`` / ``update``), :func:`train_regression` and
  :func:`regression_trajectory` (mini-batch training on a
  :class:`LinearRegression`).
* **Measurements** of what a run did, shared by the chapters:
  :func:`final_gap`, :func:`distance_to_minimum`, :func:`escape_step`,
  :func:`left_bounds`, :func:`sweep_learning_rates` (the best learning rate
  of an optimizer over a grid), :func:`step_lengths` (how an optimizer turns
  a gradient sequence into steps), :func:`ewa`, :func:`epoch_means` and
  :func:`last_epoch_gap`.

Every problem follows the same small protocol, so the drivers and
:mod:`mxopt.plot` accept any of them::

    name        str, a short label for titles and legends
    value(p)    float, the objective at a point p (1-D float array)
    grad(p)     1-D float64 array, the exact gradient at p
    start       1-D float64 array, a suggested starting point
    minimum     1-D float64 array of the global minimiser, or None
    bounds      ((xmin, xmax), (ymin, ymax)), the region worth plotting
    log_levels  bool, whether contour levels should be spaced logarithmically
    f(x, y)     the objective evaluated element-wise on arrays (for contours)

Everything is deterministic: randomness only enters through explicit seeds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DIVERGENCE_LIMIT",
    "Function2D",
    "Quadratic",
    "Rosenbrock",
    "Beale",
    "Saddle",
    "TEST_FUNCTIONS",
    "LinearRegression",
    "make_regression",
    "trajectory",
    "run_optimizer",
    "train_regression",
    "regression_trajectory",
    "left_bounds",
    "final_gap",
    "distance_to_minimum",
    "escape_step",
    "LearningRateSweep",
    "sweep_learning_rates",
    "ewa",
    "step_lengths",
    "epoch_means",
    "last_epoch_gap",
]

#: A run counts as diverged once any coordinate of the iterate exceeds this in
#: absolute value.  It is far outside every plotting box, yet small enough that
#: the gradients of the test functions there still fit in float32.
DIVERGENCE_LIMIT = 1e4


# ---------------------------------------------------------------------------
# 2-D test functions
# ---------------------------------------------------------------------------


class Function2D:
    """Base class of the 2-D test functions.

    A subclass defines the objective ``f(x, y)`` and its partial derivatives
    ``df(x, y) -> (df/dx, df/dy)``, both element-wise on NumPy arrays, plus the
    attributes ``name``, ``start``, ``minimum``, ``bounds`` and ``log_levels``.
    This class turns them into the point-wise :meth:`value` and :meth:`grad`
    that the drivers call.
    """

    name: str = "function"
    log_levels: bool = True

    def f(self, x, y):
        """Objective evaluated element-wise on arrays ``x`` and ``y``."""
        raise NotImplementedError

    def df(self, x, y):
        """Partial derivatives ``(df/dx, df/dy)`` evaluated element-wise."""
        raise NotImplementedError

    def value(self, p) -> float:
        """Objective at the point ``p = (x, y)``, as a Python float."""
        x, y = np.asarray(p, dtype=np.float64)
        return float(self.f(x, y))

    def grad(self, p) -> np.ndarray:
        """Exact gradient ``(df/dx, df/dy)`` at ``p``, a new float64 array of shape (2,)."""
        x, y = np.asarray(p, dtype=np.float64)
        return np.array(self.df(x, y), dtype=np.float64)


@dataclass(frozen=True)
class Quadratic(Function2D):
    r"""Ill-conditioned convex quadratic :math:`f(x, y) = \tfrac12 (a x^2 + b y^2)`.

    The Hessian is :math:`\operatorname{diag}(a, b)`: the parameters are the two
    curvatures, :math:`h_{\min} = a` and :math:`h_{\max} = b = L` (for
    ``a <= b``), so the condition number is :math:`\kappa = b / a` and the
    unique minimiser is the origin.  Gradient descent with step :math:`\eta`
    multiplies the two coordinates by :math:`1 - \eta a` and :math:`1 - \eta b`
    each step: it converges from every start iff :math:`\eta < 2 / b` (above
    that, only from starts on the ``x`` axis), and with :math:`\eta` close to that bound the
    steep coordinate ``y`` flips sign every step (the zig-zag) while the flat
    coordinate ``x`` creeps along.  The slow rate, governed by
    :math:`\kappa`, is what momentum is meant to fix.

    Reference: J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed.,
    Springer 2006, §3.3 (rate of steepest descent on quadratics);
    G. Goh, "Why Momentum Really Works", *Distill* 2017.
    """

    a: float = 1.0
    b: float = 20.0

    name = "Quadratic"
    log_levels = True

    def f(self, x, y):
        return 0.5 * (self.a * x**2 + self.b * y**2)

    def df(self, x, y):
        return self.a * x, self.b * y

    @property
    def condition_number(self) -> float:
        r""":math:`\kappa = b / a`, the ratio of the Hessian's eigenvalues."""
        return self.b / self.a

    @property
    def start(self) -> np.ndarray:
        return np.array([-4.0, 1.5])

    @property
    def minimum(self) -> np.ndarray:
        return np.array([0.0, 0.0])

    @property
    def bounds(self):
        return ((-4.5, 4.5), (-2.0, 2.0))


@dataclass(frozen=True)
class Rosenbrock(Function2D):
    r"""Rosenbrock's banana :math:`f(x, y) = (a - x)^2 + b (y - x^2)^2`.

    The global minimiser is :math:`(a, a^2)` with :math:`f = 0`.  It sits at the
    bottom of a narrow, curved, nearly flat valley along :math:`y = x^2`:
    finding the valley is easy, following it to the minimum is slow.

    .. math::
        \partial_x f = -2 (a - x) - 4 b x (y - x^2), \qquad
        \partial_y f = 2 b (y - x^2).

    Reference: H. H. Rosenbrock, "An automatic method for finding the greatest
    or least value of a function", *The Computer Journal* 3(3):175–184, 1960.
    """

    a: float = 1.0
    b: float = 100.0

    name = "Rosenbrock"
    log_levels = True

    def f(self, x, y):
        return (self.a - x) ** 2 + self.b * (y - x**2) ** 2

    def df(self, x, y):
        valley = y - x**2
        return -2.0 * (self.a - x) - 4.0 * self.b * x * valley, 2.0 * self.b * valley

    @property
    def start(self) -> np.ndarray:
        return np.array([self.a - 2.5, self.a**2 + 0.5])

    @property
    def minimum(self) -> np.ndarray:
        return np.array([self.a, self.a**2])

    @property
    def bounds(self):
        return ((self.a - 3.0, self.a + 1.0), (self.a**2 - 2.0, self.a**2 + 2.0))


@dataclass(frozen=True)
class Beale(Function2D):
    r"""Beale's function, a sum of three squared residuals.

    .. math::
        f(x, y) = r_1^2 + r_2^2 + r_3^2, \qquad
        r_k = c_k - x + x y^k, \quad (c_1, c_2, c_3) = (1.5,\ 2.25,\ 2.625),

    so :math:`\partial_x f = 2 \sum_k r_k (y^k - 1)` and
    :math:`\partial_y f = 2 \sum_k r_k\, k x y^{k-1}`.
    The global minimiser is :math:`(3, 0.5)`, where every residual vanishes.
    Starting at :math:`(3, 4)` the gradient is huge (the :math:`x y^3` term)
    while near the minimum the surface is almost flat: a single learning rate
    cannot suit both. Adaptive methods rescale each coordinate, but that is no
    guarantee here: from (3, 4) Adam's sign-like first steps head for the
    plateau near x = 0 (see the Adam notebook).

    Reference: E. M. L. Beale, "On an iterative method for finding a local
    minimum of a function of more than one variable", Technical Report 25,
    Statistical Techniques Research Group, Princeton University, 1958; see also
    M. Jamil and X.-S. Yang, "A literature survey of benchmark functions for
    global optimisation problems", *Int. J. Math. Model. Numer. Optim.*
    4(2):150–194, 2013.
    """

    name = "Beale"
    log_levels = True

    _C = (1.5, 2.25, 2.625)

    def f(self, x, y):
        return sum((c - x + x * y**k) ** 2 for k, c in enumerate(self._C, start=1))

    def df(self, x, y):
        dx = 0.0
        dy = 0.0
        for k, c in enumerate(self._C, start=1):
            r = c - x + x * y**k
            dx = dx + 2.0 * r * (y**k - 1.0)
            dy = dy + 2.0 * r * k * x * y ** (k - 1)
        return dx, dy

    @property
    def start(self) -> np.ndarray:
        return np.array([3.0, 4.0])

    @property
    def minimum(self) -> np.ndarray:
        return np.array([3.0, 0.5])

    @property
    def bounds(self):
        return ((-4.5, 4.5), (-4.5, 4.5))


@dataclass(frozen=True)
class Saddle(Function2D):
    r"""The saddle :math:`f(x, y) = x^2 - y^2`, which has no minimum.

    The origin is a stationary point whose Hessian :math:`\operatorname{diag}(2, -2)`
    has one positive and one negative eigenvalue.  The ``x`` axis is its stable
    manifold: gradient descent started on it converges to the saddle.  Started a
    hair off it (the default start ``(-2, 1e-3)``), plain gradient descent first
    slides towards the origin and lingers there, since the escaping coordinate
    only grows by a factor :math:`1 + 2\eta` per step; momentum escapes sooner.

    Reference: Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli and
    Y. Bengio, "Identifying and attacking the saddle point problem in
    high-dimensional non-convex optimization", NeurIPS 2014.
    """

    name = "Saddle"
    log_levels = False

    def f(self, x, y):
        return x**2 - y**2

    def df(self, x, y):
        return 2.0 * x, -2.0 * y

    @property
    def start(self) -> np.ndarray:
        return np.array([-2.0, 1e-3])

    @property
    def minimum(self):
        return None

    @property
    def saddle_point(self) -> np.ndarray:
        """The stationary point that is neither a minimum nor a maximum."""
        return np.array([0.0, 0.0])

    @property
    def bounds(self):
        return ((-2.5, 2.5), (-2.5, 2.5))


#: The four test functions with their default parameters, in the order the guide meets them.
TEST_FUNCTIONS: tuple[Function2D, ...] = (Quadratic(), Rosenbrock(), Beale(), Saddle())


# ---------------------------------------------------------------------------
# Linear regression
# ---------------------------------------------------------------------------


class LinearRegression:
    r"""Least-squares linear regression with a bias, for mini-batch experiments.

    The parameter vector is :math:`w = (w_1, \dots, w_d, b)`: the ``d`` feature
    weights followed by the bias.  The bias is handled by the *design matrix*
    :math:`A = [X \mid \mathbf 1]`, the features with a column of ones
    appended, so a prediction is :math:`A w` and the loss is

    .. math::
        f(w) = \frac{1}{2N} \lVert A w - y \rVert^2
             = \frac{1}{N} \sum_{i=1}^N \tfrac12 (a_i^\top w - y_i)^2,

    half the mean squared error over the :math:`N` samples.  Its gradient over
    a set :math:`\mathcal B` of rows (all rows by default) is the average of
    the per-sample gradients,

    .. math::
        \nabla f_{\mathcal B}(w) = \frac{1}{|\mathcal B|} A_{\mathcal B}^\top (A_{\mathcal B} w - y_{\mathcal B}),

    which is an unbiased estimate of :math:`\nabla f(w)` when :math:`\mathcal B`
    is a uniformly drawn mini-batch.  Since :math:`f` is a quadratic with
    Hessian :math:`H = A^\top A / N`, gradient descent converges for learning
    rates below :math:`2 / L` with :math:`L = h_{\max}`, the largest
    eigenvalue of :math:`H`.

    With one feature the parameters are ``(slope, bias)``, and the object also
    follows the 2-D problem protocol (``f``, ``bounds``, ``minimum`` ...), so
    its loss surface and an optimizer's path over it can be drawn with
    :mod:`mxopt.plot`.

    Reference: L. Bottou, F. E. Curtis and J. Nocedal, "Optimization Methods for
    Large-Scale Machine Learning", *SIAM Review* 60(2):223–311, 2018, §3–4.
    """

    log_levels = True
    axis_labels = ("weight $w_1$", "bias $b$")

    def __init__(self, X: np.ndarray, y: np.ndarray, true_weights: np.ndarray, name: str = "Linear regression"):
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.true_weights = np.asarray(true_weights, dtype=np.float64)
        self.name = name
        if self.X.ndim != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError("X must be (n_samples, n_features) and y (n_samples,)")
        self.A = np.hstack([self.X, np.ones((self.X.shape[0], 1))])
        if self.true_weights.shape != (self.n_params,):
            raise ValueError("true_weights must hold one weight per feature followed by the bias")

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_params(self) -> int:
        """Number of parameters: one per feature plus the bias."""
        return self.A.shape[1]

    def predict(self, w) -> np.ndarray:
        """Predictions :math:`A w` for every sample."""
        return self.A @ np.asarray(w, dtype=np.float64)

    def loss(self, w) -> float:
        r"""Half the mean squared error :math:`\frac{1}{2n}\lVert A w - y\rVert^2` over all samples."""
        residual = self.predict(w) - self.y
        return 0.5 * float(residual @ residual) / self.n_samples

    def grad(self, w, idx=None) -> np.ndarray:
        r"""Gradient :math:`\frac{1}{|B|} A_B^\top (A_B w - y_B)` over the rows ``idx`` (all rows if None).

        Returns a new float64 array of shape ``(n_params,)``.
        """
        w = np.asarray(w, dtype=np.float64)
        A, y = (self.A, self.y) if idx is None else (self.A[idx], self.y[idx])
        return A.T @ (A @ w - y) / len(y)

    def value(self, w) -> float:
        """Same as :meth:`loss`; the name the 2-D problem protocol uses."""
        return self.loss(w)

    def solution(self) -> np.ndarray:
        """The least-squares minimiser of :meth:`loss`, from :func:`numpy.linalg.lstsq`."""
        return np.linalg.lstsq(self.A, self.y, rcond=None)[0]

    def batches(self, batch_size: int, rng: np.random.Generator, *, replacement: bool = False) -> Iterator[np.ndarray]:
        """Yield the row indices of one epoch of mini-batches.

        By default (``replacement=False``, *random reshuffling*) the rows are
        shuffled with ``rng`` and cut into consecutive batches of
        ``batch_size``; the last one is smaller when ``batch_size`` does not
        divide ``n_samples``.  Every sample appears exactly once per epoch.

        With ``replacement=True`` the epoch has the same number of batches of
        the same sizes, but every index is drawn independently and uniformly
        from all rows (sampling with replacement), so consecutive batches are
        independent and a sample may appear several times in an epoch, or not
        at all.  This is the sampling that the classical analyses of SGD
        assume (Bottou, Curtis and Nocedal 2018, §4).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if replacement:
            for begin in range(0, self.n_samples, batch_size):
                yield rng.integers(0, self.n_samples, size=min(batch_size, self.n_samples - begin))
            return
        order = rng.permutation(self.n_samples)
        for begin in range(0, self.n_samples, batch_size):
            yield order[begin : begin + batch_size]

    def n_batches(self, batch_size: int) -> int:
        """Number of mini-batches (optimizer steps) per epoch."""
        return -(-self.n_samples // batch_size)

    def gradient_noise_covariance(self, w=None) -> np.ndarray:
        r"""Covariance :math:`\Sigma(w)` of the :math:`N` per-sample gradients at ``w`` (the solution by default).

        .. math::
            \Sigma(w) = \frac1N \sum_{i=1}^N \bigl(\nabla \ell_i(w) - \nabla f(w)\bigr)
                                            \bigl(\nabla \ell_i(w) - \nabla f(w)\bigr)^\top,
            \qquad \nabla \ell_i(w) = a_i (a_i^\top w - y_i).

        A batch of :math:`B` samples drawn with replacement has gradient
        covariance :math:`\Sigma / B`.
        """
        w = self.solution() if w is None else np.asarray(w, dtype=np.float64)
        per_sample = self.A * (self.A @ w - self.y)[:, None]
        centred = per_sample - per_sample.mean(axis=0)
        return centred.T @ centred / self.n_samples

    def sgd_stationary_covariance(self, lr: float, batch_size: int = 1) -> np.ndarray:
        r"""Exact stationary covariance of :math:`w_t - w^\star` for SGD sampling with replacement.

        Plain SGD, :math:`w_{t+1} = w_t - \eta\, \nabla f_{\mathcal B_t}(w_t)`, at a
        constant learning rate ``lr`` :math:`= \eta`, each batch made of
        ``batch_size`` :math:`= B` indices drawn independently and uniformly
        (``replacement=True`` in the drivers).  With :math:`e_t = w_t - w^\star`
        and :math:`\hat H_t = A_{\mathcal B_t}^\top A_{\mathcal B_t} / B`, the error
        obeys :math:`e_{t+1} = (I - \eta \hat H_t)\, e_t + \eta\, \xi_t` with
        :math:`\xi_t` the batch mean of :math:`a_i r_i`, :math:`r_i = y_i - a_i^\top w^\star`.
        Because the batch is independent of :math:`e_t` and :math:`\mathbb E[e_t] \to 0`,
        the covariance :math:`C_t = \mathbb E[e_t e_t^\top]` obeys the linear recursion

        .. math::
            C_{t+1} = \mathbb E\bigl[(I - \eta \hat H)\, C_t\, (I - \eta \hat H)\bigr]
                      + \frac{\eta^2}{B}\, \Sigma(w^\star),

        whose fixed point this method returns (solved exactly, in vectorised
        form).  To first order in :math:`\eta` it is the solution of the
        Lyapunov equation :math:`H C + C H = \frac{\eta}{B} \Sigma(w^\star)`, so the
        mean squared distance is
        :math:`\operatorname{tr} C = \frac{\eta}{2B} \operatorname{tr}(H^{-1} \Sigma(w^\star)) + O(\eta^2)`:
        proportional to :math:`\eta` for small :math:`\eta`.

        Raises ValueError if ``lr`` is not positive or the recursion has no
        stationary state (the second moment grows without bound).

        Example::

            >>> reg = make_regression(n_samples=200, seed=0)
            >>> C = reg.sgd_stationary_covariance(1e-4)
            >>> H = reg.A.T @ reg.A / reg.n_samples
            >>> small_lr = 0.5e-4 * np.trace(np.linalg.solve(H, reg.gradient_noise_covariance()))
            >>> bool(abs(np.trace(C) / small_lr - 1) < 1e-3)
            True

        Reference: L. Bottou, F. E. Curtis and J. Nocedal, "Optimization Methods
        for Large-Scale Machine Learning", *SIAM Review* 60(2), 2018, §4;
        S. Mandt, M. D. Hoffman and D. M. Blei, "Stochastic Gradient Descent as
        Approximate Bayesian Inference", *JMLR* 18(134), 2017 (the Lyapunov equation).
        """
        lr = float(lr)
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        d = self.n_params
        eye = np.eye(d)
        H = self.A.T @ self.A / self.n_samples
        outer = np.einsum("ni,nj->nij", self.A, self.A).reshape(self.n_samples, d * d)
        E_HxH = (1.0 / batch_size) * (outer.T @ outer / self.n_samples) + (1.0 - 1.0 / batch_size) * np.kron(H, H)
        # vec((I - lr*Ĥ) C (I - lr*Ĥ)) = ((I - lr*Ĥ) ⊗ (I - lr*Ĥ)) vec(C), averaged over the batch
        T = np.kron(eye, eye) - lr * (np.kron(eye, H) + np.kron(H, eye)) + lr**2 * E_HxH
        if np.max(np.abs(np.linalg.eigvals(T))) >= 1.0:
            raise ValueError(f"lr={lr} with batch_size={batch_size}: SGD's second moment has no stationary state")
        noise = (lr**2 / batch_size) * self.gradient_noise_covariance().reshape(d * d)
        C = np.linalg.solve(np.eye(d * d) - T, noise).reshape(d, d)
        return 0.5 * (C + C.T)

    # -- the 2-D problem protocol (meaningful with one feature) --------------

    @property
    def start(self) -> np.ndarray:
        """All-zero parameters, the default starting point."""
        return np.zeros(self.n_params)

    @property
    def minimum(self) -> np.ndarray:
        return self.solution()

    @property
    def bounds(self):
        """A box around the start and the solution, with a margin (two parameters only)."""
        self._require_2d()
        lo = np.minimum(self.start, self.minimum)
        hi = np.maximum(self.start, self.minimum)
        margin = 0.25 * float(np.max(hi - lo)) + 0.5
        return (
            (float(lo[0] - margin), float(hi[0] + margin)),
            (float(lo[1] - margin), float(hi[1] + margin)),
        )

    def f(self, x, y):
        r"""Loss at ``w = (x, y)`` element-wise, from the quadratic form :math:`\tfrac12 w^\top H w - g^\top w + c`."""
        self._require_2d()
        n = self.n_samples
        H = self.A.T @ self.A / n
        g = self.A.T @ self.y / n
        c = 0.5 * float(self.y @ self.y) / n
        return 0.5 * (H[0, 0] * x**2 + 2.0 * H[0, 1] * x * y + H[1, 1] * y**2) - g[0] * x - g[1] * y + c

    def _require_2d(self) -> None:
        if self.n_params != 2:
            raise ValueError(f"only defined for one feature (two parameters), this problem has {self.n_params}")


def make_regression(
    n_samples: int = 1000,
    n_features: int = 1,
    noise: float = 0.5,
    seed: int = 0,
    feature_scale=1.0,
) -> LinearRegression:
    r"""Generate a synthetic linear-regression problem.

    Features are :math:`X_{ij} \sim \mathcal N(0, s_j^2)` with
    :math:`s` = ``feature_scale`` (a number or one value per feature; unequal
    scales make the loss ill-conditioned), the true weights and bias are drawn
    uniformly from :math:`[-3, 3]`, and targets are
    :math:`y = X w^\star + b^\star + \varepsilon` with
    :math:`\varepsilon \sim \mathcal N(0, \text{noise}^2)`.  The default single
    feature gives two parameters ``(slope, bias)``, which can be drawn in 2-D.

    Everything comes from ``numpy.random.default_rng(seed)``, so the same
    arguments always give the same data.
    """
    rng = np.random.default_rng(seed)
    scale = np.broadcast_to(np.asarray(feature_scale, dtype=np.float64), (n_features,))
    true_weights = rng.uniform(-3.0, 3.0, size=n_features + 1)
    X = rng.standard_normal((n_samples, n_features)) * scale
    y = X @ true_weights[:-1] + true_weights[-1] + noise * rng.standard_normal(n_samples)
    return LinearRegression(X, y, true_weights)


# ---------------------------------------------------------------------------
# Drivers
# ---------------------------------------------------------------------------

Step = Callable[[np.ndarray, np.ndarray], None]


def _mxnet_step(opt, w: np.ndarray, copy_optimizer: bool) -> Step:
    """Wrap an MXNet-style optimizer as an in-place ``step(w, g)`` for weight index 0."""
    if copy_optimizer:
        opt = copy.deepcopy(opt)
    state = opt.create_state(0, w)

    def step(w, g):
        opt.update(0, w, g, state)

    return step


def _as_step(opt_or_step, w: np.ndarray, copy_optimizer: bool) -> Step:
    """An mxopt optimizer (it has ``create_state``) is wrapped; a plain callable is used as is."""
    if hasattr(opt_or_step, "create_state"):
        return _mxnet_step(opt_or_step, w, copy_optimizer)
    return opt_or_step


def _advance(step: Step, w: np.ndarray, g: np.ndarray) -> float:
    """Apply one in-place step; return the largest ``|w_i|`` after it (NaN if any entry is NaN).

    One reduction serves both checks of the drivers: the step left ``w``
    finite iff the result is ``< inf``, and it escaped iff the result exceeds
    the divergence limit.
    """
    if step(w, g) is not None:
        raise TypeError("step(p, g) must update p in place and return None")
    return float(np.abs(w).max())


def _descend(step: Step, grad: Callable, w: np.ndarray, steps: int, limit: float) -> np.ndarray:
    """Run ``steps`` in-place steps from ``w``; return the float64 path, shape ``(steps + 1, w.size)``.

    After a divergence the remaining rows repeat the last finite iterate.
    """
    path = np.empty((steps + 1, w.size))
    path[0] = w
    with np.errstate(all="ignore"):
        for k in range(1, steps + 1):
            size = _advance(step, w, grad(w).astype(w.dtype, copy=False))
            finite = size < np.inf
            path[k] = w if finite else path[k - 1]
            if not finite or size > limit:
                path[k + 1 :] = path[k]
                break
    return path


def _start(problem, start, dtype) -> np.ndarray:
    return np.array(problem.start if start is None else start, dtype=dtype).reshape(-1)


def trajectory(step: Step, problem, start=None, steps: int = 100, *, limit: float = DIVERGENCE_LIMIT) -> np.ndarray:
    """Path of a from-scratch optimizer: ``p ← step(p, problem.grad(p))``, ``steps`` times.

    Parameters
    ----------
    step:
        ``step(p, g) -> None`` updates the float64 array ``p`` in place from
        the gradient ``g``; it keeps any optimizer state (a velocity, moment
        estimates, a step counter) in its own closure or object.
    problem:
        Any problem of this module (uses ``grad`` and ``start``).
    start:
        Starting point; ``problem.start`` by default.
    steps:
        Number of steps.
    limit:
        Divergence guard: the run stops once a coordinate exceeds ``limit`` in
        absolute value or becomes non-finite.

    Returns
    -------
    ndarray, shape ``(steps + 1, n)``
        Row ``k`` is the point after ``k`` steps (row 0 is the start).  After a
        divergence the remaining rows repeat the last finite point, so the
        shape is fixed and every entry is finite.
    """
    return _descend(step, problem.grad, _start(problem, start, np.float64), steps, limit)


def run_optimizer(
    opt,
    problem,
    start=None,
    steps: int = 100,
    dtype=np.float64,
    *,
    limit: float = DIVERGENCE_LIMIT,
    copy_optimizer: bool = True,
) -> np.ndarray:
    """Path of an mxopt optimizer on ``problem``, driven through the MXNet optimizer API.

    The weight ``w`` is a 1-D array of ``dtype`` (float32 or float64).  The
    driver calls ``state = opt.create_state(0, w)`` once, then each step
    ``opt.update(0, w, g, state)`` with ``g = problem.grad(w)`` cast to
    ``dtype``; the optimizer updates ``w`` in place.

    By default the run uses a deep copy of ``opt``: an optimizer counts its
    updates (Adam's bias correction and learning-rate schedules depend on the
    count), so every run starts from the optimizer as given and ``opt`` itself
    is left untouched.  Pass ``copy_optimizer=False`` to drive ``opt`` itself.

    Returns a float64 array of shape ``(steps + 1, n)`` with the same
    conventions as :func:`trajectory` (start in row 0; after a divergence the
    remaining rows repeat the last finite point).
    """
    w = _start(problem, start, dtype)
    return _descend(_mxnet_step(opt, w, copy_optimizer), problem.grad, w, steps, limit)


def _minibatch_descent(
    opt_or_step, problem: LinearRegression, epochs, batch_size, seed, start, dtype, limit, copy_optimizer, replacement
) -> tuple[np.ndarray, int]:
    """Mini-batch training loop shared by :func:`train_regression` and :func:`regression_trajectory`.

    Returns the float64 weight path, shape ``(n_steps + 1, n_params)``, and the
    number of steps taken before a divergence stopped the run (``n_steps`` if
    none did); the rows after that repeat the last finite weights.
    """
    batch_size = problem.n_samples if batch_size is None else int(batch_size)
    n_steps = epochs * problem.n_batches(batch_size)
    rng = np.random.default_rng(seed)
    w = _start(problem, start, dtype)
    step = _as_step(opt_or_step, w, copy_optimizer)
    path = np.empty((n_steps + 1, w.size))
    path[0] = w
    k = 0
    with np.errstate(all="ignore"):
        for _ in range(epochs):
            for idx in problem.batches(batch_size, rng, replacement=replacement):
                size = _advance(step, w, problem.grad(w, idx).astype(w.dtype, copy=False))
                finite = size < np.inf
                if finite:
                    k += 1
                    path[k] = w
                if not finite or size > limit:
                    path[k + 1 :] = path[k]
                    return path, k
    return path, k


def train_regression(
    opt_or_step,
    problem: LinearRegression,
    epochs: int = 10,
    batch_size: int | None = 32,
    seed: int = 0,
    *,
    start=None,
    dtype=np.float64,
    limit: float = DIVERGENCE_LIMIT,
    copy_optimizer: bool = True,
    replacement: bool = False,
) -> np.ndarray:
    """Train on ``problem`` with mini-batches and return the per-step loss history.

    ``opt_or_step`` is either an mxopt optimizer (anything with
    ``create_state``; driven as in :func:`run_optimizer`) or a from-scratch
    ``step(w, g) -> None`` (as in :func:`trajectory`).  Each epoch visits the
    samples in a fresh order drawn from ``numpy.random.default_rng(seed)``, in
    batches of ``batch_size`` (``None`` means the full batch, i.e. gradient
    descent).  With ``replacement=True`` every batch is drawn independently,
    with replacement, instead (see :meth:`LinearRegression.batches`); an epoch
    is then ``problem.n_batches(batch_size)`` such batches.  The gradient
    passed to the optimizer is the batch *mean*.

    Returns
    -------
    ndarray, shape ``(epochs * problem.n_batches(batch_size) + 1,)``
        Entry ``k`` is the full-data :meth:`LinearRegression.loss` after ``k``
        steps (entry 0 is the loss at the start).  It is the plain data loss,
        without any weight-decay term the optimizer may apply.  If the run
        diverges, the entries after the last finite weights are NaN (drawn as a
        gap).  Divide the step number by ``problem.n_batches(batch_size)`` to
        get epochs.
    """
    path, done = _minibatch_descent(
        opt_or_step, problem, epochs, batch_size, seed, start, dtype, limit, copy_optimizer, replacement
    )
    losses = np.full(len(path), np.nan)
    with np.errstate(over="ignore"):
        losses[: done + 1] = [problem.loss(w) for w in path[: done + 1]]
    return losses


def regression_trajectory(
    opt_or_step,
    problem: LinearRegression,
    epochs: int = 10,
    batch_size: int | None = 32,
    seed: int = 0,
    *,
    start=None,
    dtype=np.float64,
    limit: float = DIVERGENCE_LIMIT,
    copy_optimizer: bool = True,
    replacement: bool = False,
) -> np.ndarray:
    """Same run as :func:`train_regression` (same arguments, same batches), returning the weights instead.

    Returns a float64 array of shape ``(n_steps + 1, problem.n_params)`` whose
    row ``k`` is the parameter vector after ``k`` steps; after a divergence the
    remaining rows repeat the last finite weights.  With one feature this is a
    2-D path that :func:`mxopt.plot.plot_trajectories` can draw over the loss
    surface.
    """
    return _minibatch_descent(
        opt_or_step, problem, epochs, batch_size, seed, start, dtype, limit, copy_optimizer, replacement
    )[0]


# ---------------------------------------------------------------------------
# Measurements of runs
# ---------------------------------------------------------------------------


def _path2d(path, name: str = "path") -> np.ndarray:
    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 2 or path.shape[0] < 1:
        raise ValueError(f"{name} must be an array of shape (steps + 1, n), got shape {path.shape}")
    return path


def left_bounds(path, problem) -> bool:
    r"""Whether any point of ``path`` lies outside ``problem.bounds`` (the plotted region).

    With bounds :math:`[x_0, x_1] \times [y_0, y_1]` this is true iff some row
    :math:`(x_k, y_k)` has :math:`x_k \notin [x_0, x_1]` or :math:`y_k \notin [y_0, y_1]`.
    A learning-rate sweep discards such runs (:func:`sweep_learning_rates`): a
    run that wandered off the picture and came back may end low by luck.
    A NaN coordinate counts as outside.

    Example::

        >>> q = Quadratic()                       # bounds (-4.5, 4.5) x (-2, 2)
        >>> left_bounds(np.array([[-4.0, 1.5], [0.0, 0.0]]), q), left_bounds(np.array([[0.0, 2.5]]), q)
        (False, True)
    """
    path = _path2d(path)
    (x0, x1), (y0, y1) = problem.bounds
    inside = (x0 <= path[:, 0]) & (path[:, 0] <= x1) & (y0 <= path[:, 1]) & (path[:, 1] <= y1)
    return not bool(inside.all())


def final_gap(problem, path) -> float:
    r"""How far a run got: :math:`f(w_T) - f(w^\star)` at the last row of ``path``.

    For a problem without a minimum (``problem.minimum is None``, the
    :class:`Saddle`) it is instead :math:`|y_T|`, how far the escaping
    coordinate got from the saddle point.

    Example::

        >>> final_gap(Quadratic(), np.array([[-4.0, 1.5], [1.0, 0.0]])), final_gap(Saddle(), np.array([[0.0, -2.0]]))
        (0.5, 2.0)
    """
    path = _path2d(path)
    if problem.minimum is None:
        return float(abs(path[-1, 1]))
    return problem.value(path[-1]) - problem.value(problem.minimum)


def distance_to_minimum(problem, path) -> float:
    r"""Euclidean distance :math:`\lVert w_T - w^\star \rVert` from the last row of ``path`` to ``problem.minimum``.

    Example::

        >>> distance_to_minimum(Rosenbrock(), np.array([[-1.5, 1.5], [1.0, 4.0]]))
        3.0
    """
    path = _path2d(path)
    if problem.minimum is None:
        raise ValueError(f"problem {problem.name!r} has no minimum (use escape_step for a saddle)")
    return float(np.linalg.norm(path[-1] - problem.minimum))


def escape_step(path, threshold: float = 1.0) -> int | None:
    r"""First step ``k`` with :math:`|y_k| >` ``threshold`` (the saddle's escaping coordinate), or None if never.

    On the :class:`Saddle` :math:`x^2 - y^2` gradient descent multiplies
    :math:`y` by :math:`1 + 2\eta` per step, so from :math:`y_0 = 10^{-3}` it
    needs :math:`\lceil \ln(10^3) / \ln(1 + 2\eta) \rceil` steps to pass
    :math:`|y| = 1`.

    Example::

        >>> from mxopt import SGD
        >>> path = run_optimizer(SGD(learning_rate=0.1), Saddle(), steps=60)
        >>> escape_step(path), int(np.ceil(np.log(1e3) / np.log(1.2)))
        (38, 38)
    """
    beyond = np.abs(_path2d(path)[:, 1]) > threshold
    return int(np.argmax(beyond)) if beyond.any() else None


@dataclass(frozen=True)
class LearningRateSweep:
    """The runs of one optimizer at each learning rate of a grid (see :func:`sweep_learning_rates`).

    ``gaps[i]`` is :func:`final_gap` of ``paths[i]``, the run at
    ``learning_rates[i]``, or ``inf`` for a run discarded because it left the
    plotted region.
    """

    learning_rates: np.ndarray
    paths: tuple
    gaps: np.ndarray

    @property
    def best_index(self) -> int:
        """Index of the smallest gap (the first one on a tie)."""
        return int(np.argmin(self.gaps))

    @property
    def best_rate(self) -> float:
        return self.learning_rates[self.best_index]

    @property
    def best_gap(self) -> float:
        return self.gaps[self.best_index]

    @property
    def best_path(self) -> np.ndarray:
        return self.paths[self.best_index]


def sweep_learning_rates(
    make: Callable[[float], object], problem, learning_rates, steps: int = 200, *, within_bounds: bool = True
) -> LearningRateSweep:
    r"""Run ``make(lr)`` on ``problem`` for ``steps`` steps at every rate of ``learning_rates``; keep what each reached.

    Each run is :func:`run_optimizer` ``(make(lr), problem, steps=steps)``; its
    score is :func:`final_gap` :math:`f(w_T) - f^\star`.  With
    ``within_bounds`` (the default) a run that :func:`left_bounds` scores
    ``inf``, so the best rate is the best among the runs that stayed in the
    picture — the rate one would pick by looking at the plots.

    Example::

        >>> from mxopt import SGD
        >>> s = sweep_learning_rates(lambda lr: SGD(learning_rate=lr), Quadratic(), [0.01, 0.05, 0.09, 0.2], steps=50)
        >>> float(s.best_rate), bool(np.isinf(s.gaps[-1]))      # 0.2 > 2 / h_max = 0.1: it diverges
        (0.09, True)
    """
    learning_rates = np.asarray(learning_rates, dtype=np.float64).reshape(-1)
    if learning_rates.size == 0:
        raise ValueError("learning_rates must hold at least one rate")
    paths = tuple(run_optimizer(make(lr), problem, steps=steps) for lr in learning_rates)
    gaps = np.array([np.inf if within_bounds and left_bounds(p, problem) else final_gap(problem, p) for p in paths])
    return LearningRateSweep(learning_rates, paths, gaps)


def ewa(x, beta: float) -> np.ndarray:
    r"""Exponentially weighted average along the last axis of ``x``, started at zero.

    .. math::
        s_t = \beta\, s_{t-1} + (1 - \beta)\, x_t, \qquad s_0 = 0,
        \qquad\text{so}\qquad s_t = (1 - \beta) \sum_{i=1}^{t} \beta^{t-i} x_i .

    Entry ``t - 1`` of the result is :math:`s_t`.  For a constant
    :math:`x_t = c` it is :math:`(1 - \beta^t)\, c`: the bias towards zero that
    Adam's correction removes (Kingma & Ba, "Adam: A Method for Stochastic
    Optimization", ICLR 2015, §3).

    Example::

        >>> ewa(np.full(3, 2.0), 0.5)                      # (1 - 0.5^t) * 2
        array([1.  , 1.5 , 1.75])
    """
    beta = float(beta)
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    x = np.asarray(x, dtype=np.float64)
    s = np.zeros(x.shape[:-1])
    out = np.empty_like(x)
    for t in range(x.shape[-1]):
        s = beta * s + (1 - beta) * x[..., t]
        out[..., t] = s
    return out


def step_lengths(opt, grads) -> np.ndarray:
    r"""Step lengths :math:`|w_t - w_{t-1}|` of ``opt`` on one coordinate fed the gradients ``grads`` in turn.

    The weight is a float64 array of one entry, started at 0; update ``t``
    (entry ``t - 1`` of the result) receives ``grads[t - 1]`` whatever the
    weight is, so this isolates how an optimizer turns a gradient *sequence*
    into steps (a constant gradient, a drop, a spike).  ``opt`` is used as
    given (its update counter advances).

    Example::

        >>> from mxopt import SGD
        >>> step_lengths(SGD(learning_rate=0.1), [1.0, -2.0, 0.5])
        array([0.1 , 0.2 , 0.05])
    """
    grads = np.asarray(grads, dtype=np.float64).reshape(-1)
    w = np.zeros(1)
    state = opt.create_state(0, w)
    out = np.empty(len(grads))
    for i, g in enumerate(grads):
        before = w[0]
        opt.update(0, w, np.array([g]), state)
        out[i] = abs(w[0] - before)
    return out


def _epochs(history, steps_per_epoch: int) -> np.ndarray:
    history = np.asarray(history, dtype=np.float64).reshape(-1)
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch}")
    if (len(history) - 1) % steps_per_epoch:
        raise ValueError(f"history must hold 1 + a whole number of epochs of {steps_per_epoch} steps, got {len(history)} entries")
    return history


def epoch_means(history, steps_per_epoch: int) -> np.ndarray:
    r"""Mean of a per-step loss history over each epoch: entry ``e`` is the mean of entries ``1 + e n .. (e + 1) n``.

    ``history`` is what :func:`train_regression` returns (entry 0, the loss at
    the start, belongs to no epoch) and ``n = steps_per_epoch``.  Averaging
    over an epoch smooths out the mini-batch noise of the per-step values.

    Example::

        >>> epoch_means([9.0, 4.0, 2.0, 1.0, 1.0], 2)
        array([3., 1.])
    """
    history = _epochs(history, steps_per_epoch)
    return history[1:].reshape(-1, int(steps_per_epoch)).mean(axis=1)


def last_epoch_gap(history, steps_per_epoch: int, f_star: float) -> float:
    r"""Mean loss over the last epoch minus the optimum :math:`f^\star`, or ``inf`` if the run diverged.

    This is the score a learning-rate search on :func:`train_regression`
    minimises: :math:`\frac1n \sum_{k=T-n+1}^{T} f(w_k) - f^\star` with
    ``n = steps_per_epoch``; a diverged run (NaN entries) scores ``inf``.

    Example::

        >>> last_epoch_gap([9.0, 4.0, 2.0, 1.5, 0.5], 2, 0.5), last_epoch_gap([9.0, np.nan, np.nan], 1, 0.0)
        (0.5, inf)
    """
    history = _epochs(history, steps_per_epoch)
    gap = float(np.mean(history[-int(steps_per_epoch) :]) - f_star)
    return gap if np.isfinite(gap) else np.inf
