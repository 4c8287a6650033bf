"""The counter-based generator of mxopt._random: Philox-4x32-10's published answers, the
uniformity of its words, the quality of its normal deviates, their independence across
elements, steps, keys and within a block, the layout of a parameter's deviates, and the same
bits from the Python function, the CPU kernels and a CUDA kernel."""
import math

import numba
import numpy as np
import pytest
from numba import cuda
from scipy import stats

from mxopt import _random as R
from mxopt._engine import _compile

N = 2_000_000
KEY = R.stream_key(2024, "fc_weight")
U64 = np.uint64
F32 = np.float32


def words(*args):
    return [int(x) for x in R.philox4x32(*(U64(a) for a in args))]


_PHILOX = _compile(R.philox4x32, "cpu")
_NORMAL4 = _compile(R.normal4, "cpu")
_M32 = U64(0xFFFFFFFF)


@numba.njit
def block_words(key, t, first, n):
    """The words of blocks first … first + n − 1, (n, 4) uint64."""
    out = np.empty((n, 4), np.uint64)
    for i in range(n):
        b = first + np.uint64(i)
        out[i] = _PHILOX(b & _M32, b >> U64(32), t & _M32, t >> U64(32), key & _M32, key >> U64(32))
    return out


@numba.njit
def block_normals(key, t, first, n):
    """The deviates of blocks first … first + n − 1, (n, 4) float32."""
    out = np.empty((n, 4), np.float32)
    for i in range(n):
        out[i] = _NORMAL4(key, t, first + np.uint64(i))
    return out


def test_philox_known_answers():
    # Random123's kat_vectors for philox4x32_10: (counter, key) -> output.
    assert words(0, 0, 0, 0, 0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    f = 0xFFFFFFFF
    assert words(f, f, f, f, f, f) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    pi = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0)
    assert words(*pi) == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    assert [int(x) for x in _PHILOX(*(U64(a) for a in pi))] == words(*pi)  # compiled = interpreted


def test_philox_avalanche():
    """Flipping one bit of the counter or the key flips each output bit with probability 1/2."""
    rng = np.random.default_rng(0)
    flips = []
    for _ in range(100):
        x = [U64(v) for v in rng.integers(0, 2**32, 6)]
        base = np.array(_PHILOX(*x), np.uint64)
        for word in range(6):
            y = list(x)
            y[word] = x[word] ^ U64(1 << int(rng.integers(32)))
            diff = np.array(_PHILOX(*y), np.uint64) ^ base
            flips.append(sum(bin(int(d)).count("1") for d in diff))
    flips = np.array(flips)
    # 128 bits each flipping with p = 1/2: mean 64, sd 5.66 per trial, 600 trials
    assert abs(flips.mean() - 64) < 4 * 5.66 / math.sqrt(flips.size)
    assert abs(flips.std() - 5.66) < 0.8
    assert flips.min() > 30


def test_words_are_uniform():
    x = block_words(U64(KEY), U64(1), U64(0), N // 4)
    for column in x.T:  # each of the four words, and all bits of them
        assert stats.kstest((column + 0.5) / 2.0**32, "uniform").pvalue > 1e-3
    bits = np.unpackbits(x.astype("<u4").view(np.uint8)).reshape(-1, 32).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 5 * 0.5 / math.sqrt(N))


def test_normals_pass_kolmogorov_smirnov_and_have_normal_moments():
    z = R.normals(KEY, 1, N)
    assert z.dtype == np.float64 and np.array_equal(z, z.astype(np.float32))  # float32 deviates, widened
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # moments within 5 standard errors of N(0, 1)'s: mean, variance, skewness, excess kurtosis
    se = 1 / math.sqrt(N)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(stats.skew(z)) < 5 * math.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 5 * math.sqrt(24) * se
    # the tails: P(|z| > 3) = 0.0027 and P(|z| > 4) = 6.3e-5
    for c in (3, 4):
        p = 2 * stats.norm.sf(c)
        assert abs(np.mean(np.abs(z) > c) - p) < 5 * math.sqrt(p / N)
    # each of the four deviates of a block (the four quarters of the parameter) is N(0, 1) on its own
    for quarter in z[: N // 4 * 4].reshape(4, -1):
        assert stats.kstest(quarter, "norm").pvalue > 1e-3


def test_the_largest_deviate_is_that_of_the_smallest_uniform():
    # u = 2⁻³² for the radius word 0 or 1: |z| ≤ √(64·ln 2) for every deviate; u = 1 at the top gives 0
    assert R.log_unit(U64(0)) == R.log_unit(U64(1)) == F32(-32 * math.log(2))
    assert R.log_unit(U64(0xFFFFFFFF)) == 0
    z = R.normals(KEY, 1, N)
    assert np.abs(z).max() <= math.sqrt(64 * math.log(2))


def test_no_correlation_between_elements_steps_parameters_and_within_a_block():
    n = N // 4
    bound = 4 / math.sqrt(n)
    z1 = R.normals(KEY, 1, 4 * n)
    z2 = R.normals(KEY, 2, 4 * n)
    other = R.normals(R.stream_key(2024, "fc_bias"), 1, 4 * n)
    reseeded = R.normals(R.stream_key(2025, "fc_weight"), 1, 4 * n)
    a, b, c, d = z1.reshape(4, n)  # the four deviates of each block: a Box–Muller pair each (a, b) and (c, d)
    pairs = [(a[:-1], a[1:]), (a, z2[:n]), (a, other[:n]), (a, reseeded[:n]),
             (a, b), (c, d), (a, c), (b, d), (a ** 2, b ** 2), (c ** 2, d ** 2), (a ** 2, c ** 2),
             (a ** 2, z2[:n] ** 2), (a[:-1] ** 2, a[1:] ** 2)]
    for x, y in pairs:
        assert abs(np.corrcoef(x, y)[0, 1]) < bound
    # blocks far apart in the counter (its high word) are independent too
    near = block_normals(U64(KEY), U64(1), U64(0), n // 4).astype(np.float64)
    far = block_normals(U64(KEY), U64(1), U64(1 << 40), n // 4).astype(np.float64)
    assert abs(np.corrcoef(near.ravel(), far.ravel())[0, 1]) < 4 / math.sqrt(near.size)
    assert stats.kstest(far.ravel(), "norm").pvalue > 1e-3


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13, 1001])
def test_layout_of_a_parameters_deviates(n):
    """Element j·q + b takes deviate j of block b (q = ⌊n/4⌋); the last n mod 4 take block q's in order."""
    z = R.normals(KEY, 9, n)
    q = n // 4
    blocks = block_normals(U64(KEY), U64(9), U64(0), q + 1).astype(np.float64)
    want = np.concatenate([blocks[:q, j] for j in range(4)] + [blocks[q, : n - 4 * q]])
    np.testing.assert_array_equal(z, want)
    assert len(set(z.tolist())) == n  # every element its own deviate


def test_the_same_arguments_give_the_same_bits():
    a = R.normals(KEY, 5, 1000)
    np.testing.assert_array_equal(a, R.normals(KEY, 5, 1000))
    # the Python function (the rule's own source, run by the interpreter) gives the compiled bits
    for b in (0, 1, 97, 249):
        python = R.normal4(U64(KEY), U64(5), U64(b))
        assert all(type(x) is np.float32 for x in python)
        np.testing.assert_array_equal(np.array(python, np.float64), a[[b, 250 + b, 500 + b, 750 + b]])
    assert not np.array_equal(a, R.normals(KEY, 6, 1000))


def test_stream_keys_mix_seed_and_name():
    assert R.stream_key(0, "w") == R.stream_key(0, "w")
    keys = {R.stream_key(s, n) for s in range(50) for n in ("w", "b", "0", "1", "fc_weight")}
    assert len(keys) == 250
    assert all(0 <= k < 2**64 for k in keys)


def uniform_of(x):
    """The float64 of the uniform that log_unit reads from the word x (the same roundings, in NumPy)."""
    return float(F32(F32(int(x) >> 1) * F32(2.0**-31)) + F32(2.0**-32))


def test_logarithm_uses_no_libm_and_is_accurate():
    rng = np.random.default_rng(1)
    log = _compile(R.log_unit, "cpu")
    for x in [0, 1, 2, 3, 255, 256, 2**23, 2**24 + 5, 2**31, 2**32 - 2, 2**32 - 1, *rng.integers(0, 2**32, 3000)]:
        got = log(U64(x))
        assert type(got) in (float, np.float32) and got == R.log_unit(U64(x))  # Python and compiled agree bit for bit
        want = math.log(uniform_of(x))
        assert abs(got - want) <= 3 * np.spacing(F32(abs(want))) + 1e-12, x  # a few float32 ulps


def test_sine_and_cosine_use_no_libm_and_are_accurate():
    sin_cos = _compile(R.sin_cos, "cpu")
    for psi in [F32(0), F32(1e-9), F32(0.1), F32(0.5), R.PI_4, *np.random.default_rng(2).uniform(0, R.PI_4, 3000).astype(F32)]:
        s, c = sin_cos(psi)
        assert abs(s - math.sin(psi)) <= 2 * np.spacing(F32(math.sin(psi))) + 1e-30, psi
        assert abs(c - math.cos(psi)) <= 2 * np.spacing(F32(math.cos(psi))), psi
        assert (s, c) == R.sin_cos(psi)  # Python and compiled agree bit for bit


def test_box_muller_is_the_exact_transform_up_to_float32_roundings():
    rng = np.random.default_rng(3)
    for x, y in rng.integers(0, 2**32, (2000, 2)):
        z0, z1 = R.box_muller(U64(x), U64(y))
        r = math.sqrt(-2 * math.log(uniform_of(x)))
        psi = (2 * (int(y) & 0x7FFFFF) + 1) * 2.0**-24 * math.pi / 4
        a, b = (math.sin(psi), math.cos(psi)) if (int(y) >> 23) & 1 else (math.cos(psi), math.sin(psi))
        a, b = (-a if (int(y) >> 24) & 1 else a), (-b if (int(y) >> 25) & 1 else b)
        for got, want in ((z0, r * a), (z1, r * b)):
            assert abs(got - want) <= 6 * np.spacing(F32(abs(want))) + 1e-7 * r, (x, y)


# The compiled GPU code of the deviates (inside SGLD's kernel) is checked for fused multiply-adds in
# tests/test_sgld.py::test_cuda_kernel_compiles_and_adds_the_noise_unfused (one PTX compilation for both).


@pytest.mark.cuda
def test_cuda_kernel_draws_the_cpu_bits():
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    dev = _compile(R.normal4, "cuda")

    @cuda.jit
    def fill(out, key, t, first):
        for i in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
            out[i, 0], out[i, 1], out[i, 2], out[i, 3] = dev(key, t, first + np.uint64(i))

    out = cuda.to_device(np.zeros((10, 4), np.float32))
    fill[1, 8](out, U64(KEY), U64(3), U64(1 << 33))
    np.testing.assert_array_equal(out.copy_to_host(), block_normals(U64(KEY), U64(3), U64(1 << 33), 10))
