"""The counter-based generator of mxopt._random: Philox-4x32-10's published answers, the
quality of its uniforms and normals, their independence across elements, steps and keys,
and the same bits from the Python function, the CPU kernel and a CUDA kernel."""
import math

import numpy as np
import pytest
from numba import cuda
from scipy import stats

from mxopt import _random as R
from mxopt._engine import _compile

N = 2_000_000
KEY = R.stream_key(2024, "fc_weight")
U64 = np.uint64


def words(*args):
    return [int(x) for x in R.philox4x32(*(U64(a) for a in args))]


def test_philox_known_answers():
    # Random123's kat_vectors for philox4x32_10: (counter, key) -> output.
    assert words(0, 0, 0, 0, 0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    f = 0xFFFFFFFF
    assert words(f, f, f, f, f, f) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    pi = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)
    assert words(*pi) == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def test_philox_avalanche():
    """Flipping one bit of the counter or the key flips each output bit with probability 1/2."""
    philox = _compile(R.philox4x32, "cpu")
    rng = np.random.default_rng(0)
    flips = []
    for _ in range(100):
        x = [U64(v) for v in rng.integers(0, 2**32, 6)]
        base = np.array(philox(*x), np.uint64)
        for word in range(6):
            y = list(x)
            y[word] = x[word] ^ U64(1 << int(rng.integers(32)))
            diff = np.array(philox(*y), np.uint64) ^ base
            flips.append(sum(bin(int(d)).count("1") for d in diff))
    flips = np.array(flips)
    # 128 bits each flipping with p = 1/2: mean 64, sd 5.66 per trial, 600 trials
    assert abs(flips.mean() - 64) < 4 * 5.66 / math.sqrt(flips.size)
    assert abs(flips.std() - 5.66) < 0.8
    assert flips.min() > 30


def test_uniform_and_normal_pass_kolmogorov_smirnov():
    u = R.uniforms(KEY, 1, N)
    z = R.normals(KEY, 1, N)
    assert 0 < u.min() and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # moments within 5 standard errors of N(0, 1)'s: mean, variance, skewness, excess kurtosis
    se = 1 / math.sqrt(N)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(stats.skew(z)) < 5 * math.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24) * se
    # the tails: P(|z| > 3) = 0.0027
    tail = np.mean(np.abs(z) > 3)
    assert abs(tail - 2 * stats.norm.sf(3)) < 5 * math.sqrt(0.0027 / N)


def test_no_correlation_between_elements_steps_and_parameters():
    n = N // 4
    bound = 4 / math.sqrt(n)
    z1 = R.normals(KEY, 1, n + 1)
    z2 = R.normals(KEY, 2, n)
    other = R.normals(R.stream_key(2024, "fc_bias"), 1, n)
    reseeded = R.normals(R.stream_key(2025, "fc_weight"), 1, n)
    for a, b in [(z1[:-1], z1[1:]), (z1[:n], z2), (z1[:n], other), (z1[:n], reseeded),
                 (z1[:n] ** 2, z2 ** 2), (z1[:-1] ** 2, z1[1:] ** 2)]:
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
    # elements far apart in the counter (the high word) are independent too
    far = R.normals(KEY, 1, n, first=1 << 40)
    assert abs(np.corrcoef(z1[:n], far)[0, 1]) < bound


def test_the_same_arguments_give_the_same_bits():
    a = R.normals(KEY, 5, 1000)
    np.testing.assert_array_equal(a, R.normals(KEY, 5, 1000))
    np.testing.assert_array_equal(a[10:20], R.normals(KEY, 5, 10, first=10))
    # the Python function (the rule's own source, run by the interpreter) gives the compiled bits
    py = [R.normal(U64(KEY), U64(5), U64(e)) for e in range(0, 1000, 97)]
    np.testing.assert_array_equal(np.array(py), a[::97])
    assert not np.array_equal(a, R.normals(KEY, 6, 1000))


def test_stream_keys_mix_seed_and_name():
    assert R.stream_key(0, "w") == R.stream_key(0, "w")
    keys = {R.stream_key(s, n) for s in range(50) for n in ("w", "b", "0", "1", "fc_weight")}
    assert len(keys) == 250
    assert all(0 <= k < 2**64 for k in keys)


def test_logarithm_uses_no_libm_and_is_accurate():
    rng = np.random.default_rng(1)
    log = _compile(R.log_scaled, "cpu")
    for s in [1, 2, 3, 255, 256, 257, 2**26, 2**52 - 1, 2**52 + 1, 2**53 - 1, *rng.integers(1, 2**53, 2000)]:
        got = log(U64(s))
        want = math.log(s * 2.0**-53)  # s·2⁻⁵³ is exact; libm's log is within an ulp
        assert abs(got - want) <= 4 * math.ulp(want), s
        assert got == R.log_scaled(U64(s))  # Python and compiled agree bit for bit


def test_exact_float_converts_integers_below_2_to_the_53_exactly():
    exact_float = _compile(R.exact_float, "cpu")
    for x in [0, 1, 2**32 - 1, 2**32, 2**32 + 1, 2**52, 2**53 - 1, *np.random.default_rng(3).integers(0, 2**53, 1000)]:
        assert exact_float(U64(x)) == float(int(x)) == R.exact_float(U64(x)), x


def test_sine_and_cosine_use_no_libm_and_are_accurate():
    sin_cos = _compile(R.sin_cos, "cpu")
    for psi in [0.0, 1e-9, 0.1, 0.5, R.PI_4, *np.random.default_rng(2).uniform(0, R.PI_4, 2000)]:
        s, c = sin_cos(psi)
        assert abs(s - math.sin(psi)) <= 2 * math.ulp(math.sin(psi)) + 1e-300, psi
        assert abs(c - math.cos(psi)) <= 2 * math.ulp(math.cos(psi)), psi
        assert (s, c) == R.sin_cos(psi)  # Python and compiled agree bit for bit


# The compiled GPU code of the deviate (inside SGLD's kernel) is checked for fused multiply-adds in
# tests/test_sgld.py::test_cuda_kernel_compiles_and_adds_the_noise_unfused (one PTX compilation for both).


@pytest.mark.cuda
def test_cuda_kernel_draws_the_cpu_bits():
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    dev = _compile(R.normal, "cuda")

    @cuda.jit
    def fill(out, key, t, first):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i] = dev(key, t, first + np.uint64(i))

    out = cuda.to_device(np.zeros(40))
    fill[1, 8](out, U64(KEY), U64(3), U64(1 << 33))
    np.testing.assert_array_equal(out.copy_to_host(), R.normals(KEY, 3, 40, first=1 << 33))
