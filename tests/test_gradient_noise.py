"""mxopt.GradientNoise: the annealed variance η/(1+t)^γ of Neelakantan et al. (2015), seeded and reproducible."""
import math
import types

import numpy as np
import pytest

import mxopt
from mxopt import _random, datasets, models
from mxopt.gradient_noise import GradientNoise

N = 200_000   # deviates per statistical check: the sample variance's relative standard error is √(2/N) ≈ 0.0032


@pytest.mark.parametrize("eta", [0.01, 0.3, 1.0])
@pytest.mark.parametrize("t", [0, 9, 999])
def test_variance_schedule_statistically(eta, t):
    noise = GradientNoise(eta, gamma=0.55, seed=3)
    sigma2 = eta / (1 + t) ** 0.55
    assert noise.variance(t) == pytest.approx(sigma2, rel=1e-15)
    g = np.zeros(N)
    added = noise(g, t, "w")
    assert added is g                                    # in place, and returned
    # Sample mean within 5 standard errors of 0; sample variance within 5 relative standard errors of σ_t².
    assert abs(g.mean()) < 5 * math.sqrt(sigma2 / N)
    assert abs(g.var() / sigma2 - 1) < 5 * math.sqrt(2 / N)
    # Gaussian, not just the right variance: the fourth standardised moment is 3 (its standard error is √(96/N)).
    assert abs(np.mean(g ** 4) / g.var() ** 2 - 3) < 5 * math.sqrt(96 / N)


def test_variance_decays_as_a_power_of_one_plus_t():
    noise = GradientNoise(1.0, gamma=0.55)
    t = np.array([0, 1, 10, 100, 10_000])
    v = np.array([noise.variance(int(k)) for k in t])
    slope = np.diff(np.log(v)) / np.diff(np.log1p(t))
    np.testing.assert_allclose(slope, -0.55, rtol=1e-12)
    assert GradientNoise(0.3, gamma=0.0).variance(10 ** 6) == 0.3         # γ = 0: constant variance


def test_deviates_are_the_package_counter_based_stream():
    noise = GradientNoise(0.3, seed=11)
    expected = _random.normals(_random.stream_key(11, "fc1_weight"), 42, 6)
    np.testing.assert_array_equal(noise.deviates(42, 6, "fc1_weight"), expected)
    g = np.zeros((2, 3))
    noise(g, 42, "fc1_weight")
    np.testing.assert_array_equal(g.ravel(), math.sqrt(noise.variance(42)) * expected)   # C order, element index e


def test_reproducible_and_independent_of_call_order():
    a, b = GradientNoise(1.0, seed=5), GradientNoise(1.0, seed=5)
    first = a(np.zeros(1000), 7, "w").copy()
    b(np.zeros(1000), 8, "w")                            # another draw in between changes nothing
    np.testing.assert_array_equal(b(np.zeros(1000), 7, "w"), first)
    others = [GradientNoise(1.0, seed=6)(np.zeros(1000), 7, "w"), a(np.zeros(1000), 8, "w"),
              a(np.zeros(1000), 7, "b")]
    for other in others:                                 # another seed, step or name: another, uncorrelated stream
        assert abs(np.corrcoef(first, other)[0, 1]) < 0.15     # 4.7 standard errors of a correlation over 1000


def test_float32_gradient_rounded_once_and_eta_zero_adds_nothing():
    g32 = np.linspace(-1, 1, 1000, dtype=np.float32)
    expected = (g32.astype(np.float64) + math.sqrt(0.3 / 4 ** 0.55) * GradientNoise(0.3).deviates(3, 1000)).astype(
        np.float32)
    out = GradientNoise(0.3)(g32, 3)
    assert out.dtype == np.float32 and out is g32
    np.testing.assert_array_equal(out, expected)
    g = np.arange(5.0)
    GradientNoise(0.0)(g, 0)
    np.testing.assert_array_equal(g, np.arange(5.0))


@pytest.mark.parametrize("kwargs, error, word", [
    ({"eta": -0.1}, ValueError, "eta"), ({"eta": math.nan}, ValueError, "eta"), ({"eta": math.inf}, ValueError, "eta"),
    ({"eta": "0.3"}, TypeError, "eta"), ({"eta": True}, TypeError, "eta"),
    ({"eta": 0.3, "gamma": -1}, ValueError, "gamma"), ({"eta": 0.3, "gamma": None}, TypeError, "gamma"),
    ({"eta": 0.3, "seed": -1}, ValueError, "seed"), ({"eta": 0.3, "seed": 1.0}, TypeError, "seed"),
    ({"eta": 0.3, "seed": 1 << 64}, ValueError, "seed"),
])
def test_bad_constructor_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        GradientNoise(**kwargs)


def _read_only():
    g = np.zeros(3)
    g.flags.writeable = False
    return g


@pytest.mark.parametrize("grad, t, name, error, word", [
    ([0.0, 1.0], 0, "", TypeError, "grad"),
    (np.arange(3), 0, "", TypeError, "grad"),                    # integers cannot hold noise
    (_read_only(), 0, "", ValueError, "grad"),
    (np.zeros(3), -1, "", ValueError, "t"),
    (np.zeros(3), 1.0, "", TypeError, "t"),
    (np.zeros(3), True, "", TypeError, "t"),
    (np.zeros(3), 0, 5, TypeError, "name"),
])
def test_bad_call_arguments_change_nothing(grad, t, name, error, word):
    before = np.array(grad, copy=True)
    with pytest.raises(error, match=word):
        GradientNoise(0.3)(grad, t, name)
    np.testing.assert_array_equal(np.asarray(grad), before)


def test_fit_hook_adds_batch_size_times_sigma_to_the_summed_gradient():
    noise = GradientNoise(0.5, seed=2)
    hook = noise.fit_hook(batch_size=4, n_train=10)      # batches of 4, 4, 2 per epoch
    trainer = types.SimpleNamespace(grads={"w": np.zeros(3), "b": np.zeros(2)})
    for step, size in [(1, 4), (3, 2), (4, 4), (6, 2)]:
        for g in trainer.grads.values():
            g[...] = 0
        hook(trainer, step)
        for name, g in trainer.grads.items():
            np.testing.assert_allclose(g, size * math.sqrt(noise.variance(step - 1)) * noise.deviates(step - 1, g.size, name),
                                       rtol=1e-15)
    with pytest.raises(ValueError, match="batch_size"):
        noise.fit_hook(0, 10)
    with pytest.raises(ValueError, match="step"):
        hook(trainer, 0)


def test_fit_with_noise_is_reproducible_and_eta_zero_is_plain_fit():
    data = datasets.digits()
    model = models.softmax_regression(data.n_features, data.n_classes)
    args = (model, None, data, "sgd", {"learning_rate": 0.1})
    plain = models.fit(*args, epochs=1, batch_size=100)
    zero = models.fit(*args, epochs=1, batch_size=100, before_step=GradientNoise(0.0).fit_hook(100, data.n_train))
    np.testing.assert_array_equal(zero.trainer.data, plain.trainer.data)
    runs = [models.fit(*args, epochs=1, batch_size=100, before_step=GradientNoise(0.3, seed=1).fit_hook(100, data.n_train))
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].trainer.data, runs[1].trainer.data)
    assert not np.array_equal(runs[0].trainer.data, plain.trainer.data)


def test_exported():
    assert mxopt.GradientNoise is GradientNoise
