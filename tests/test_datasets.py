"""mxopt.datasets: the bundled real data sets, the Zipf stream and Reddi et al.'s counterexample."""
import math

import numpy as np
import pytest

import mxopt
from mxopt import datasets

sklearn_datasets = pytest.importorskip("sklearn.datasets")


# -- digits and breast cancer ---------------------------------------------------------

@pytest.mark.parametrize("loader, raw, n_classes", [
    (datasets.digits, sklearn_datasets.load_digits, 10),
    (datasets.breast_cancer, sklearn_datasets.load_breast_cancer, 2),
])
def test_split_is_stratified_and_standardised_with_training_statistics(loader, raw, n_classes):
    data = loader(test_fraction=0.25, seed=3, dtype=np.float64)
    source = raw()
    X, y = source.data, source.target
    assert data.n_classes == n_classes
    assert data.n_train + data.n_test == len(y)
    assert data.X_train.dtype == data.X_test.dtype == np.float64
    assert data.y_train.dtype == data.y_test.dtype == np.int64
    # stratified: each class puts round(f * n_c) examples into the test split
    for c in range(n_classes):
        n_c = int(np.sum(y == c))
        assert np.sum(data.y_test == c) == round(0.25 * n_c)
        assert np.sum(data.y_train == c) == n_c - round(0.25 * n_c)
    # the same split, recomputed from the raw data: standardised with the training split's mean and std
    train, test = datasets.stratified_split(y, 0.25, seed=3)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    mean, std = X[train].mean(0), X[train].std(0)
    scale = np.where(std == 0, 1.0, std)
    np.testing.assert_allclose(data.X_train, (X[train] - mean) / scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(data.X_test, (X[test] - mean) / scale, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(data.y_train, y[train])
    # so the training features have mean 0 and std 1 (0 for features constant on the training split)
    np.testing.assert_allclose(data.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(0), np.where(std == 0, 0.0, 1.0), atol=1e-12)
    # and the test split does not: its statistics were not used
    assert np.abs(data.X_test.mean(0)).max() > 1e-3
    # each split is shuffled, not grouped by class
    assert np.any(np.diff(data.y_train) < 0)


def test_split_is_deterministic_and_depends_on_the_seed():
    a, b, c = datasets.digits(seed=0), datasets.digits(seed=0), datasets.digits(seed=1)
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.y_test, c.y_test)


def test_float32_by_default_and_unpacks_into_five():
    X_train, y_train, X_test, y_test, n_classes = datasets.digits(test_fraction=0.5)
    assert X_train.dtype == np.float32 and X_train.shape[1] == 64 and n_classes == 10
    assert abs(len(y_test) - len(y_train)) <= 10  # round(0.5 n_c) per class


@pytest.mark.parametrize("kwargs, error", [
    ({"test_fraction": 0.0}, ValueError), ({"test_fraction": 1.0}, ValueError),
    ({"test_fraction": float("nan")}, ValueError), ({"test_fraction": "0.2"}, TypeError),
    ({"test_fraction": 0.0001}, ValueError),  # rounds to no test example in a class
    ({"dtype": np.int32}, ValueError), ({"dtype": "float16"}, ValueError), ({"dtype": "nonsense"}, TypeError),
])
def test_bad_split_arguments(kwargs, error):
    with pytest.raises(error, match="test_fraction|dtype"):
        datasets.digits(**kwargs)


def test_stratified_split_refuses_non_integer_labels():
    with pytest.raises(TypeError, match="integer labels"):
        datasets.stratified_split(np.array([0.0, 1.0]))


# -- the Zipf stream ------------------------------------------------------------------

@pytest.mark.parametrize("s", [0.7, 1.0, 1.5])
def test_feature_frequencies_follow_the_zipf_law(s):
    data = datasets.sparse_logistic(n_samples=20_000, n_features=500, zipf_exponent=s, top_frequency=0.9, seed=1)
    np.testing.assert_array_equal(data.frequency, data.X.mean(0, dtype=np.float64))
    np.testing.assert_allclose(data.probability, 0.9 * np.arange(1, 501.0) ** -s)
    # fit log(frequency) = a - slope * log(rank) over the features seen at least 100 times (counts
    # of 100+ have a relative standard error of at most 10%)
    rank = np.arange(1, 501)
    seen = data.frequency * data.n_samples >= 100
    assert seen.sum() >= 20
    slope = np.polyfit(np.log(rank[seen]), np.log(data.frequency[seen]), 1)[0]
    assert abs(slope + s) < 0.05, slope
    # each frequency is within 5 binomial standard errors of its probability
    p = data.probability
    assert np.all(np.abs(data.frequency - p) <= 5 * np.sqrt(p * (1 - p) / data.n_samples) + 1 / data.n_samples)
    # a few features in almost every example, most in hardly any
    assert data.frequency[0] > 0.88
    if s >= 1:
        assert np.mean(data.frequency < 0.01) > 0.5


def test_stream_labels_come_from_the_true_model():
    data = datasets.sparse_logistic(n_samples=20_000, n_features=300, weight_density=0.1, seed=2,
                                    dtype=np.float64)
    assert data.X.dtype == np.float64 and set(np.unique(data.X)) == {0.0, 1.0}
    assert data.y.dtype == np.int64 and set(np.unique(data.y)) == {0, 1}
    assert np.count_nonzero(data.true_weight) == 30
    # the bias makes the mean logit 0 over the feature distribution
    assert abs(data.probability @ data.true_weight + data.true_bias) < 1e-12
    # the true model explains the labels better than a constant
    z = data.X @ data.true_weight + data.true_bias
    nll = np.logaddexp(0, z) - data.y * z
    q = data.y.mean()
    nll_const = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert nll.mean() < nll_const - 0.01
    # labels drawn from sigma(z): the mean negative log-likelihood is the mean entropy of sigma(z),
    # within 4 standard errors
    p = 1 / (1 + np.exp(-z))
    entropy = -(p * np.log(p) + (1 - p) * np.log1p(-p))
    assert abs(nll.mean() - entropy.mean()) < 4 * nll.std() / math.sqrt(len(nll))
    # and its predicted probabilities are calibrated: mean of sigma(z) matches the label rate
    assert abs(np.mean(1 / (1 + np.exp(-z))) - q) < 0.02


def test_stream_is_deterministic_and_split_in_order():
    a = datasets.sparse_logistic(n_samples=1000, n_features=50, seed=5)
    b = datasets.sparse_logistic(n_samples=1000, n_features=50, seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.true_weight, b.true_weight)
    assert not np.array_equal(a.X, datasets.sparse_logistic(n_samples=1000, n_features=50, seed=6).X)
    split = a.split(0.2)
    assert split.n_train == 800 and split.n_classes == 2
    np.testing.assert_array_equal(split.X_test, a.X[800:])


@pytest.mark.parametrize("kwargs, error", [
    ({"n_samples": 0}, ValueError), ({"n_features": 2.5}, TypeError), ({"zipf_exponent": -1}, ValueError),
    ({"top_frequency": 0}, ValueError), ({"top_frequency": 1.5}, ValueError), ({"weight_density": 2}, ValueError),
    ({"weight_scale": float("inf")}, ValueError), ({"dtype": np.int8}, ValueError),
])
def test_bad_stream_arguments(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=name):
        datasets.sparse_logistic(**{"n_samples": 10, "n_features": 5, **kwargs})


# -- Reddi, Kale & Kumar's counterexample -------------------------------------------

def test_reddi_losses_projection_and_regret():
    problem = datasets.reddi_counterexample(C=3)
    assert problem.beta1 == 0 and problem.beta2 == pytest.approx(0.1)
    assert problem.max_alpha == pytest.approx(math.sqrt(0.9))
    np.testing.assert_array_equal(problem.coefficient(np.arange(1, 7)), [3, -1, -1, 3, -1, -1])
    assert problem.value(0.5, 1) == 1.5 and problem.value(0.5, 2) == -0.5
    g = problem.grad(np.array([0.25], np.float32), 4)
    assert g.dtype == np.float32 and g.tolist() == [3.0]
    x = np.array([-3.0, 0.2, 7.0])
    assert problem.project(x) is x and x.tolist() == [-1.0, 0.2, 1.0]
    # the regret against a brute-force best fixed point
    rng = np.random.default_rng(0)
    path = rng.uniform(-1, 1, 11)
    grid = np.linspace(-1, 1, 2001)
    for T in (1, 2, 3, 7, 10):
        losses = sum(problem.value(path[t - 1], t) for t in range(1, T + 1))
        best = min(sum(problem.value(grid, t) for t in range(1, T + 1)))
        assert problem.regret(path)[T - 1] == pytest.approx(losses - best, abs=1e-12)
    # the best point in hindsight is -1: it has negative loss per period, +1 positive
    assert problem.value(problem.minimum, np.arange(1, 4)).sum() == 2 - 3
    assert problem.value(problem.worst, np.arange(1, 4)).sum() == 3 - 2


def _paper_adam(alpha, beta2, max_v=False):
    """Reddi et al.'s Adam (beta1 = 0, no bias correction, no epsilon) or AMSGrad, as a from-scratch step."""
    state = {"t": 0, "v": 0.0, "vmax": 0.0}

    def step(x, g):
        state["t"] += 1
        state["v"] = beta2 * state["v"] + (1 - beta2) * g[0] ** 2
        state["vmax"] = max(state["vmax"], state["v"])
        x -= alpha / math.sqrt(state["t"]) * g / math.sqrt(state["vmax"] if max_v else state["v"])

    return step


@pytest.mark.parametrize("C", [3.0, 10.0])
def test_adam_converges_to_the_worst_point_and_amsgrad_to_the_best(C):
    """Theorem 1's setting: beta1 = 0, beta2 = 1/(1 + C^2), alpha_t = alpha/sqrt(t), alpha < sqrt(1 - beta2)."""
    problem = datasets.reddi_counterexample(C)
    alpha = 0.5 * problem.max_alpha
    T = 3000
    runs = {
        "mxopt adam": problem.run(mxopt.create("adam", beta1=0.0, beta2=problem.beta2,
                                               lr_scheduler=problem.learning_rate(alpha)), T),
        "mxopt amsgrad": problem.run(mxopt.create("amsgrad", beta1=0.0, beta2=problem.beta2,
                                                  lr_scheduler=problem.learning_rate(alpha)), T),
        "paper adam": problem.run(_paper_adam(alpha, problem.beta2), T),
        "paper amsgrad": problem.run(_paper_adam(alpha, problem.beta2, max_v=True), T),
    }
    for name, path in runs.items():
        tail = path[-300:]
        average = problem.average_regret(path)
        if name.endswith(" adam"):
            # stuck near +1: each period costs about (C - 2) while -1 would have earned (C - 2)
            assert tail.min() > 0.95, name
            assert average == pytest.approx(2 * (C - 2) / 3, rel=0.05), name
        else:
            assert tail.max() < -0.95, name
            assert 0 < average < 0.1 * 2 * (C - 2) / 3, name  # a tenth of Adam's, and falling (below)
    # the regret of Adam grows linearly; AMSGrad's sublinearly
    for name in ("mxopt adam", "mxopt amsgrad"):
        regret = problem.regret(runs[name])
        growth = regret[-1] / regret[T // 2 - 1]
        assert (growth > 1.9) if name == "mxopt adam" else (growth < 1.5), (name, growth)


def test_reddi_conditions_are_checked():
    with pytest.raises(ValueError, match="C must be"):
        datasets.reddi_counterexample(C=2)
    with pytest.raises(TypeError, match="C must be"):
        datasets.reddi_counterexample(C="3")
    problem = datasets.reddi_counterexample(C=3)
    with pytest.raises(ValueError, match="alpha"):
        problem.learning_rate(problem.max_alpha)
    with pytest.raises(ValueError, match="steps"):
        problem.run(mxopt.create("adam"), 0)
