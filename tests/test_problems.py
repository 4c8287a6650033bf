"""Tests of mxopt.problems: exact gradients, the regression problem, and the drivers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxopt.problems import (
    DIVERGENCE_LIMIT,
    TEST_FUNCTIONS,
    Beale,
    LinearRegression,
    Quadratic,
    Rosenbrock,
    Saddle,
    make_regression,
    regression_trajectory,
    run_optimizer,
    train_regression,
    trajectory,
)

# Any warning (overflow, invalid value, ...) fails a test: diverging runs must stop cleanly.
pytestmark = pytest.mark.filterwarnings("error")

FUNCTIONS = TEST_FUNCTIONS + (Quadratic(a=2.0, b=7.0), Rosenbrock(a=0.5, b=10.0), Rosenbrock(a=-1.0))


def central_difference(fun, p, h=1e-6):
    """Central-difference gradient of ``fun`` at ``p``, error O(h^2)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = h
        out[i] = (fun(p + e) - fun(p - e)) / (2 * h)
    return out


def numerical_hessian(grad, p, h=1e-5):
    """Symmetrised central-difference Jacobian of ``grad`` at ``p``."""
    p = np.asarray(p, dtype=np.float64)
    cols = [(grad(p + h * e) - grad(p - h * e)) / (2 * h) for e in np.eye(p.size)]
    H = np.column_stack(cols)
    return 0.5 * (H + H.T)


def gradient_descent(lr):
    def step(p, g):
        p -= lr * g

    return step


class MomentumStandIn:
    """Stand-in for an mxopt optimizer: heavy-ball momentum through the MXNet update API."""

    def __init__(self, learning_rate, momentum=0.0):
        self.lr = learning_rate
        self.momentum = momentum
        self.num_update = 0

    def create_state(self, index, weight):
        return np.zeros_like(weight)

    def update(self, index, weight, grad, state):
        self.num_update += 1
        state *= self.momentum
        state -= self.lr * grad
        weight += state


def momentum_step(lr, momentum):
    """The same method as MomentumStandIn, written as a from-scratch step function."""
    v = None

    def step(p, g):
        nonlocal v
        v = np.zeros_like(p) if v is None else v
        v *= momentum
        v -= lr * g
        p += v

    return step


# --- 2-D test functions ------------------------------------------------------


@pytest.mark.parametrize("fn", FUNCTIONS, ids=repr)
@settings(max_examples=60, deadline=None)
@given(u=st.floats(0.0, 1.0), v=st.floats(0.0, 1.0))
def test_gradient_matches_central_differences(fn, u, v):
    (xmin, xmax), (ymin, ymax) = fn.bounds
    p = np.array([xmin + u * (xmax - xmin), ymin + v * (ymax - ymin)])
    expected = central_difference(fn.value, p)
    scale = 1.0 + abs(fn.value(p))
    np.testing.assert_allclose(fn.grad(p), expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=repr)
def test_vectorised_f_and_df_agree_with_pointwise(fn):
    rng = np.random.default_rng(1)
    (xmin, xmax), (ymin, ymax) = fn.bounds
    X = rng.uniform(xmin, xmax, size=(3, 4))
    Y = rng.uniform(ymin, ymax, size=(3, 4))
    Z = fn.f(X, Y)
    dX, dY = fn.df(X, Y)
    assert Z.shape == dX.shape == dY.shape == (3, 4)
    for i, j in np.ndindex(3, 4):
        p = np.array([X[i, j], Y[i, j]])
        assert Z[i, j] == pytest.approx(fn.value(p), rel=1e-12)
        np.testing.assert_allclose(fn.grad(p), [dX[i, j], dY[i, j]], rtol=1e-12)


@pytest.mark.parametrize("fn", FUNCTIONS, ids=repr)
def test_grad_is_a_fresh_float64_array(fn):
    p = np.asarray(fn.start, dtype=np.float32)
    g = fn.grad(p)
    assert g.dtype == np.float64 and g.shape == (2,)
    assert isinstance(fn.value(p), float)


@pytest.mark.parametrize("fn", [fn for fn in FUNCTIONS if fn.minimum is not None], ids=repr)
def test_minimum_is_stationary_with_value_zero(fn):
    assert fn.value(fn.minimum) == 0.0
    np.testing.assert_array_equal(fn.grad(fn.minimum), [0.0, 0.0])
    # a strict local minimum: every nearby point is higher
    for d in np.random.default_rng(0).normal(size=(16, 2)) * 1e-3:
        assert fn.value(fn.minimum + d) > 0.0


def test_documented_minima_and_starts():
    np.testing.assert_array_equal(Beale().minimum, [3.0, 0.5])
    np.testing.assert_array_equal(Beale().start, [3.0, 4.0])
    for a in (1.0, 0.5, -1.0):
        np.testing.assert_array_equal(Rosenbrock(a=a).minimum, [a, a**2])
    assert Quadratic(a=1.0, b=20.0).condition_number == 20.0
    assert Saddle().minimum is None


def test_saddle_hessian_is_indefinite():
    s = Saddle()
    np.testing.assert_array_equal(s.grad(s.saddle_point), [0.0, 0.0])
    eig = np.linalg.eigvalsh(numerical_hessian(s.grad, s.saddle_point))
    assert eig.min() < 0 < eig.max()
    np.testing.assert_allclose(sorted(eig), [-2.0, 2.0], rtol=1e-6)


def test_quadratic_hessian_gives_condition_number():
    q = Quadratic(a=0.5, b=10.0)
    eig = np.linalg.eigvalsh(numerical_hessian(q.grad, [0.3, -0.2]))
    assert eig.max() / eig.min() == pytest.approx(q.condition_number, rel=1e-6)


def test_test_functions_are_listed_and_framed():
    assert [fn.name for fn in TEST_FUNCTIONS] == ["Quadratic", "Rosenbrock", "Beale", "Saddle"]
    for fn in FUNCTIONS:
        (xmin, xmax), (ymin, ymax) = fn.bounds
        for point in (fn.start, fn.minimum):
            if point is not None:
                assert xmin < point[0] < xmax and ymin < point[1] < ymax
        assert isinstance(fn.log_levels, bool)


# --- linear regression -------------------------------------------------------


@pytest.fixture(scope="module")
def regression():
    return make_regression(n_samples=200, n_features=3, noise=0.1, seed=3)


def test_make_regression_shapes_and_determinism(regression):
    r = regression
    assert r.X.shape == (200, 3) and r.y.shape == (200,) and r.true_weights.shape == (4,)
    assert r.n_params == 4 and r.n_samples == 200
    np.testing.assert_array_equal(r.A[:, -1], 1.0)  # the bias column
    again = make_regression(n_samples=200, n_features=3, noise=0.1, seed=3)
    np.testing.assert_array_equal(again.X, r.X)
    np.testing.assert_array_equal(again.y, r.y)
    other = make_regression(n_samples=200, n_features=3, noise=0.1, seed=4)
    assert not np.array_equal(other.y, r.y)


def test_regression_loss_is_half_mean_squared_error(regression):
    r = regression
    w = np.arange(4.0)
    residual = r.X @ w[:3] + w[3] - r.y
    assert r.loss(w) == pytest.approx(0.5 * np.mean(residual**2), rel=1e-12)
    assert r.value(w) == r.loss(w)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 50))
def test_regression_gradient_matches_central_differences(regression, seed, size):
    r = regression
    rng = np.random.default_rng(seed)
    w = rng.normal(scale=3.0, size=r.n_params)
    np.testing.assert_allclose(r.grad(w), central_difference(r.loss, w), rtol=1e-6, atol=1e-7)
    idx = rng.choice(r.n_samples, size=size, replace=False)
    batch = LinearRegression(r.X[idx], r.y[idx], r.true_weights)
    np.testing.assert_allclose(r.grad(w, idx), central_difference(batch.loss, w), rtol=1e-6, atol=1e-7)


def test_solution_has_zero_gradient_and_recovers_true_weights(regression):
    r = regression
    w_star = r.solution()
    np.testing.assert_allclose(r.grad(w_star), 0.0, atol=1e-12)
    np.testing.assert_allclose(w_star, r.true_weights, atol=0.05)
    assert r.loss(w_star) < r.loss(w_star + 1e-3)


@pytest.mark.parametrize("batch_size", [1, 7, 50, 200, 500])
def test_batches_cover_every_sample_once(regression, batch_size):
    batches = list(regression.batches(batch_size, np.random.default_rng(0)))
    assert len(batches) == regression.n_batches(batch_size)
    assert all(len(b) == batch_size for b in batches[:-1]) and 1 <= len(batches[-1]) <= batch_size
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(regression.n_samples))


def test_batches_are_reproducible_and_reshuffled(regression):
    def epochs(seed):
        rng = np.random.default_rng(seed)
        return [np.concatenate(list(regression.batches(16, rng))) for _ in range(2)]

    first, second = epochs(5)
    again = epochs(5)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError):
        next(regression.batches(0, np.random.default_rng(0)))


def test_one_feature_regression_is_a_2d_problem():
    r = make_regression()
    assert r.n_params == 2
    X, Y = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-2, 0, 4))
    Z = r.f(X, Y)
    for i, j in np.ndindex(Z.shape):
        assert Z[i, j] == pytest.approx(r.loss([X[i, j], Y[i, j]]), rel=1e-10)
    (xmin, xmax), (ymin, ymax) = r.bounds
    for point in (r.start, r.minimum):
        assert xmin < point[0] < xmax and ymin < point[1] < ymax
    with pytest.raises(ValueError):
        make_regression(n_features=2).f(0.0, 0.0)


# --- drivers -----------------------------------------------------------------


def test_gradient_descent_converges_on_the_quadratic():
    q = Quadratic()
    path = trajectory(gradient_descent(0.09), q, steps=300)
    assert path.shape == (301, 2) and path.dtype == np.float64
    np.testing.assert_array_equal(path[0], q.start)
    np.testing.assert_allclose(path[-1], q.minimum, atol=1e-10)
    # the steep coordinate zig-zags: it changes sign at every step
    assert np.all(np.sign(path[1:20, 1]) == -np.sign(path[:19, 1]))


def test_trajectory_respects_start_and_does_not_modify_it():
    start = np.array([1.0, 1.0])
    path = trajectory(gradient_descent(0.01), Rosenbrock(), start=start, steps=5)
    np.testing.assert_array_equal(path[0], [1.0, 1.0])
    np.testing.assert_array_equal(path[-1], [1.0, 1.0])  # the minimum is a fixed point
    np.testing.assert_array_equal(start, [1.0, 1.0])


@pytest.mark.parametrize(
    "fn, lr",
    [(Quadratic(), 0.11), (Beale(), 0.01), (Rosenbrock(), 0.1), (Saddle(), 0.5)],
    ids=["quadratic", "beale", "rosenbrock", "saddle"],
)
def test_divergence_is_stopped_cleanly(fn, lr):
    path = trajectory(gradient_descent(lr), fn, steps=500)
    assert path.shape == (501, 2)
    assert np.all(np.isfinite(path))
    stop = int(np.argmax(np.abs(path).max(axis=1) > DIVERGENCE_LIMIT))
    assert 0 < stop < 500
    np.testing.assert_array_equal(path[stop:], np.broadcast_to(path[stop], path[stop:].shape))


def test_non_finite_step_keeps_the_last_finite_point():
    calls = []

    def explode(p, g):
        calls.append(1)
        p[:] = np.inf if len(calls) == 3 else p - 0.1 * g

    path = trajectory(explode, Quadratic(), steps=10)
    assert len(calls) == 3 and np.all(np.isfinite(path))
    np.testing.assert_array_equal(path[2:], np.broadcast_to(path[2], (9, 2)))


def test_step_must_work_in_place():
    with pytest.raises(TypeError, match="in place"):
        trajectory(lambda p, g: p - 0.1 * g, Quadratic(), steps=3)


@pytest.mark.parametrize("fn", TEST_FUNCTIONS, ids=repr)
def test_run_optimizer_matches_the_from_scratch_step(fn):
    expected = trajectory(momentum_step(1e-3, 0.9), fn, steps=50)
    path = run_optimizer(MomentumStandIn(1e-3, 0.9), fn, steps=50)
    np.testing.assert_array_equal(path, expected)


def test_run_optimizer_in_float32():
    q = Quadratic()
    path = run_optimizer(MomentumStandIn(0.02, 0.9), q, steps=200, dtype=np.float32)
    assert path.dtype == np.float64 and path.shape == (201, 2)
    np.testing.assert_array_equal(path[0], q.start)
    np.testing.assert_allclose(path, trajectory(momentum_step(0.02, 0.9), q, steps=200), atol=1e-5)
    diverged = run_optimizer(MomentumStandIn(0.5), Beale(), steps=100, dtype=np.float32)
    assert np.all(np.isfinite(diverged))


def test_run_optimizer_copies_the_optimizer_unless_asked_not_to():
    opt = MomentumStandIn(0.05, 0.5)
    first = run_optimizer(opt, Quadratic(), steps=20)
    assert opt.num_update == 0
    np.testing.assert_array_equal(run_optimizer(opt, Quadratic(), steps=20), first)
    run_optimizer(opt, Quadratic(), steps=20, copy_optimizer=False)
    assert opt.num_update == 20


def test_train_regression_history():
    r = make_regression(n_samples=300, seed=1)
    losses = train_regression(gradient_descent(0.05), r, epochs=4, batch_size=32, seed=0)
    assert losses.shape == (4 * r.n_batches(32) + 1,) == (4 * 10 + 1,)
    assert losses[0] == r.loss(r.start)
    assert losses[-1] < 0.05 * losses[0]
    assert losses.min() >= r.loss(r.solution())
    np.testing.assert_array_equal(losses, train_regression(gradient_descent(0.05), r, epochs=4, batch_size=32, seed=0))
    assert not np.array_equal(losses, train_regression(gradient_descent(0.05), r, epochs=4, batch_size=32, seed=1))


def test_train_regression_accepts_both_protocols():
    r = make_regression(n_samples=100, n_features=2, seed=2)
    by_step = train_regression(momentum_step(0.05, 0.9), r, epochs=3, batch_size=10, seed=7)
    by_opt = train_regression(MomentumStandIn(0.05, 0.9), r, epochs=3, batch_size=10, seed=7)
    np.testing.assert_array_equal(by_opt, by_step)
    in_float32 = train_regression(MomentumStandIn(0.05, 0.9), r, epochs=3, batch_size=10, seed=7, dtype=np.float32)
    np.testing.assert_allclose(in_float32, by_step, rtol=1e-4)


def test_full_batch_training_is_gradient_descent():
    r = make_regression(n_samples=100, seed=4)
    losses = train_regression(gradient_descent(0.3), r, epochs=25, batch_size=None)
    path = trajectory(gradient_descent(0.3), r, steps=25)
    np.testing.assert_allclose(losses, [r.loss(w) for w in path], rtol=1e-12)
    np.testing.assert_allclose(regression_trajectory(gradient_descent(0.3), r, epochs=25, batch_size=None), path, rtol=1e-12, atol=1e-15)


def test_regression_trajectory_is_the_same_run():
    r = make_regression(n_samples=64, seed=5)
    weights = regression_trajectory(gradient_descent(0.1), r, epochs=2, batch_size=8, seed=3)
    losses = train_regression(gradient_descent(0.1), r, epochs=2, batch_size=8, seed=3)
    assert weights.shape == (2 * 8 + 1, 2)
    np.testing.assert_array_equal(losses, [r.loss(w) for w in weights])


def test_diverging_training_ends_in_nan_without_warnings():
    r = make_regression(n_samples=100, seed=6)
    losses = train_regression(gradient_descent(5.0), r, epochs=20, batch_size=None)
    assert losses.shape == (21,)
    done = np.isfinite(losses)
    assert done[0] and not done[-1]
    assert np.all(done[: done.sum()])  # finite prefix, NaN tail
    weights = regression_trajectory(gradient_descent(5.0), r, epochs=20, batch_size=None)
    assert np.all(np.isfinite(weights)) and np.abs(weights[-1]).max() > DIVERGENCE_LIMIT


# --- sampling with replacement and SGD's noise floor -------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 200, 500])
def test_batches_with_replacement_have_the_epoch_shape_and_are_independent_draws(regression, batch_size):
    rng = np.random.default_rng(0)
    batches = list(regression.batches(batch_size, rng, replacement=True))
    reshuffled = list(regression.batches(batch_size, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [len(b) for b in reshuffled]
    assert all(b.dtype.kind == "i" and b.min() >= 0 and b.max() < regression.n_samples for b in batches)
    again = list(regression.batches(batch_size, np.random.default_rng(0), replacement=True))
    for b, c in zip(batches, again):
        np.testing.assert_array_equal(b, c)


def test_sampling_with_replacement_repeats_samples_and_is_uniform(regression):
    rng = np.random.default_rng(1)
    draws = np.concatenate([np.concatenate(list(regression.batches(1, rng, replacement=True))) for _ in range(50)])
    assert draws.size == 50 * regression.n_samples
    # one epoch of 200 draws with replacement misses about 200 (1 - 1/200)^200 = 73 samples
    first_epoch = draws[: regression.n_samples]
    missed = regression.n_samples - np.unique(first_epoch).size
    assert 50 < missed < 100
    counts = np.bincount(draws, minlength=regression.n_samples)
    # 10 000 uniform draws over 200 samples: each count is Binomial(10 000, 1/200), mean 50, sd 7
    assert counts.min() > 15 and counts.max() < 90 and counts.sum() == draws.size


def test_drivers_sample_with_replacement_on_request():
    r = make_regression(n_samples=50, seed=7)
    lr = 0.05
    path = regression_trajectory(gradient_descent(lr), r, epochs=2, batch_size=4, seed=3, replacement=True)
    # the same run by hand: every batch drawn independently with replacement from default_rng(seed)
    rng = np.random.default_rng(3)
    w = r.start.copy()
    expected = [w.copy()]
    for _ in range(2):
        for size in [4] * 12 + [2]:
            w -= lr * r.grad(w, rng.integers(0, r.n_samples, size=size))
            expected.append(w.copy())
    np.testing.assert_array_equal(path, expected)
    losses = train_regression(gradient_descent(lr), r, epochs=2, batch_size=4, seed=3, replacement=True)
    np.testing.assert_array_equal(losses, [r.loss(w) for w in path])
    reshuffled = regression_trajectory(gradient_descent(lr), r, epochs=2, batch_size=4, seed=3)
    assert reshuffled.shape == path.shape and not np.array_equal(reshuffled, path)


def test_gradient_noise_covariance_is_the_per_sample_covariance(regression):
    r = regression
    w = np.array([0.3, -1.0, 2.0, 0.5])
    per_sample = np.array([r.grad(w, [i]) for i in range(r.n_samples)])
    np.testing.assert_allclose(r.gradient_noise_covariance(w), np.cov(per_sample.T, bias=True), rtol=1e-10, atol=1e-14)
    per_sample = np.array([r.grad(r.solution(), [i]) for i in range(r.n_samples)])
    np.testing.assert_allclose(r.gradient_noise_covariance(), np.cov(per_sample.T, bias=True), rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_stationary_covariance_is_the_fixed_point_and_tends_to_the_lyapunov_solution(regression, batch_size):
    r = regression
    H = r.A.T @ r.A / r.n_samples
    Sigma = r.gradient_noise_covariance()
    lr = 0.05
    C = r.sgd_stationary_covariance(lr, batch_size)
    assert np.all(np.linalg.eigvalsh(C) > 0)
    # the fixed point of C -> E[(I - lr Ĥ) C (I - lr Ĥ)] + lr^2 Sigma / B, with E over B rows drawn with replacement
    M = np.mean([np.outer(a, a) @ C @ np.outer(a, a) for a in r.A], axis=0)
    E_HCH = M / batch_size + (1 - 1 / batch_size) * H @ C @ H
    one_step = C - lr * (H @ C + C @ H) + lr**2 * E_HCH + lr**2 / batch_size * Sigma
    np.testing.assert_allclose(one_step, C, rtol=1e-9, atol=1e-15)
    # small learning rates: H C + C H = (lr / B) Sigma, so tr C = lr / (2B) tr(H^-1 Sigma), proportional to lr
    for small in (1e-3, 1e-5):
        C_small = r.sgd_stationary_covariance(small, batch_size)
        lyapunov = small / (2 * batch_size) * np.trace(np.linalg.solve(H, Sigma))
        assert abs(np.trace(C_small) / lyapunov - 1) < 30 * small
        np.testing.assert_allclose(H @ C_small + C_small @ H, small / batch_size * Sigma, rtol=60 * small, atol=1e-18)


def test_stationary_covariance_matches_a_long_sgd_run_with_replacement():
    r = make_regression(n_samples=100, seed=8)
    lr = 0.1
    path = regression_trajectory(gradient_descent(lr), r, epochs=400, batch_size=1, seed=0, start=r.solution(),
                                 replacement=True)
    e = path[1000:] - r.solution()
    measured = e.T @ e / len(e)
    predicted = r.sgd_stationary_covariance(lr)
    # 39 000 correlated steps (correlation time about 1 / (2 lr h_min), 5 steps): a few per cent
    assert abs(np.trace(measured) / np.trace(predicted) - 1) < 0.06


def test_stationary_covariance_rejects_bad_arguments(regression):
    for lr in (0.0, -0.1, np.nan, np.inf):
        with pytest.raises(ValueError, match="lr"):
            regression.sgd_stationary_covariance(lr)
    for B in (0, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            regression.sgd_stationary_covariance(0.1, B)
    with pytest.raises(ValueError, match="stationary"):
        regression.sgd_stationary_covariance(3.0)        # beyond 2/L: the mean itself diverges


# ---------------------------------------------------------------------------
# Measurements of runs (helpers shared by the chapters)
# ---------------------------------------------------------------------------

import mxopt  # noqa: E402
from mxopt import problems  # noqa: E402


def test_left_bounds_checks_every_point_against_the_box():
    q = Quadratic()  # (-4.5, 4.5) x (-2, 2)
    inside = np.array([[-4.5, -2.0], [4.5, 2.0], [0.0, 0.0]])
    assert not problems.left_bounds(inside, q)
    for outside in ([5.0, 0.0], [0.0, -2.1], [-4.6, 0.0], [0.0, np.nan]):
        assert problems.left_bounds(np.vstack([inside, outside]), q), outside
    # out and back in: still counts
    assert problems.left_bounds(np.array([[0.0, 0.0], [0.0, 3.0], [0.0, 0.0]]), q)
    with pytest.raises(ValueError, match="path"):
        problems.left_bounds(np.zeros(2), q)


def test_final_gap_distance_and_escape_step():
    q, s, r = Quadratic(a=1.0, b=20.0), Saddle(), Rosenbrock()
    path = np.array([[-4.0, 1.5], [2.0, 0.1]])
    assert problems.final_gap(q, path) == pytest.approx(0.5 * (4.0 + 20.0 * 0.01))
    assert problems.final_gap(s, np.array([[0.0, 0.0], [1.0, -0.7]])) == 0.7  # no minimum: |y_T|
    assert problems.distance_to_minimum(r, np.array([[0.0, 0.0], [4.0, 5.0]])) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="no minimum"):
        problems.distance_to_minimum(s, path)
    # gradient descent on the saddle: |y| grows by 1 + 2 lr per step from 1e-3
    for lr in (0.05, 0.1, 0.2):
        gd = run_optimizer(mxopt.SGD(learning_rate=lr), s, steps=200)
        expected = int(np.ceil(np.log(1e3) / np.log(1 + 2 * lr)))
        assert problems.escape_step(gd) == expected
        assert problems.escape_step(gd, threshold=1e9) is None


def test_sweep_learning_rates_keeps_paths_and_discards_runs_that_left_the_box():
    q = Quadratic()
    lrs = [0.001, 0.02, 0.09, 0.11]  # 0.11 > 2 / h_max = 0.1 diverges
    sweep = problems.sweep_learning_rates(lambda lr: mxopt.SGD(learning_rate=lr), q, lrs, steps=60)
    assert len(sweep.paths) == 4 and all(p.shape == (61, 2) for p in sweep.paths)
    for lr, path, gap in zip(lrs, sweep.paths, sweep.gaps):
        np.testing.assert_array_equal(path, run_optimizer(mxopt.SGD(learning_rate=lr), q, steps=60))
        assert gap == (np.inf if problems.left_bounds(path, q) else problems.final_gap(q, path))
    assert np.isinf(sweep.gaps[3]) and np.all(np.isfinite(sweep.gaps[:3]))
    assert sweep.best_index == int(np.argmin(sweep.gaps)) == 2 and sweep.best_rate == 0.09
    assert sweep.best_gap == sweep.gaps[2] and sweep.best_path is sweep.paths[2]
    # without the box rule the diverged run is scored by where it stopped
    loose = problems.sweep_learning_rates(lambda lr: mxopt.SGD(learning_rate=lr), q, lrs, steps=60, within_bounds=False)
    assert np.isfinite(loose.gaps).all() and loose.gaps[3] > 1.0
    with pytest.raises(ValueError, match="learning_rates"):
        problems.sweep_learning_rates(lambda lr: mxopt.SGD(learning_rate=lr), q, [])


def test_ewa_matches_the_closed_form_and_works_along_the_last_axis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40))
    beta = 0.9
    s = problems.ewa(x, beta)
    t = np.arange(1, 41)
    closed = np.array([[(1 - beta) * np.sum(beta ** (k - np.arange(1, k + 1)) * row[:k]) for k in t] for row in x])
    np.testing.assert_allclose(s, closed, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(problems.ewa(x[1], beta), s[1])
    np.testing.assert_allclose(problems.ewa(np.full(40, 3.0), 0.999), (1 - 0.999**t) * 3.0, rtol=1e-12)
    np.testing.assert_array_equal(problems.ewa(x, 0.0), x)  # beta = 0: no memory
    with pytest.raises(ValueError, match="beta"):
        problems.ewa(x, 1.5)


def test_step_lengths_of_sgd_and_adam():
    grads = np.array([1.0, -2.0, 0.5, 0.0])
    np.testing.assert_allclose(problems.step_lengths(mxopt.SGD(learning_rate=0.1), grads), 0.1 * np.abs(grads), rtol=1e-15)
    # Adam with eps = 0 under a constant gradient: eta_hat_t * (1 - b1^t) / sqrt(1 - b2^t) = eta at every step
    steps = problems.step_lengths(mxopt.Adam(learning_rate=1e-3, epsilon=0.0), np.full(50, -7.0))
    np.testing.assert_allclose(steps, 1e-3, rtol=1e-12)
    opt = mxopt.SGD(learning_rate=0.1)
    problems.step_lengths(opt, grads)
    assert opt.num_update == len(grads)  # the optimizer itself was driven


def test_epoch_means_and_last_epoch_gap():
    history = np.array([10.0, 4.0, 2.0, 3.0, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(problems.epoch_means(history, 2), [3.0, 2.0, 0.5])
    np.testing.assert_allclose(problems.epoch_means(history, 3), [3.0, 2.0 / 3.0])
    assert problems.last_epoch_gap(history, 2, 0.25) == 0.25
    assert problems.last_epoch_gap(np.array([1.0, np.nan, np.nan]), 2, 0.0) == np.inf
    reg = make_regression(n_samples=64, n_features=2, seed=1)
    h = train_regression(mxopt.SGD(learning_rate=0.05), reg, epochs=3, batch_size=16, seed=0)
    n = reg.n_batches(16)
    np.testing.assert_allclose(problems.epoch_means(h, n)[-1] - 0.1, problems.last_epoch_gap(h, n, 0.1), rtol=1e-12)
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="steps_per_epoch"):
            problems.epoch_means(history, bad)
    with pytest.raises(ValueError, match="whole number of epochs"):
        problems.epoch_means(history, 4)
