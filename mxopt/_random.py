"""Counter-based random numbers that update rules can draw, the same bits on the CPU and on CUDA.

A rule that needs noise (SGLD) cannot keep a random state per element: the
state would cost memory traffic, a checkpoint would have to carry it, and
the CPU and CUDA kernels would need two generators that agree. A
*counter-based* generator has no state at all: the random word is a fixed
function of a key and a counter,

    (x₀, x₁, x₂, x₃) = Philox-4x32-10_k(c₀, c₁, c₂, c₃),

a keyed bijection of 128-bit counters (Salmon, Moraes, Dror & Shaw, 2011,
"Parallel random numbers: as easy as 1, 2, 3", SC'11). Ten rounds of a
multiply-xor network give words that pass the BigCrush battery for every
key. mxopt's counter is (element index, update count): element ``e`` of a
parameter at update ``t`` reads

    c = (e mod 2³², ⌊e / 2³²⌋ + 2²⁴·a, t mod 2³², ⌊t / 2³²⌋),   k = (key mod 2³², ⌊key / 2³²⌋)

where ``key`` mixes the optimizer's seed with the parameter's name and
``a`` numbers the attempts of the rejection loop below (``e < 2⁵⁶``).

Normal deviates by Marsaglia's polar method (Marsaglia & Bray, 1964, "A
convenient method for generating normal variables", SIAM Review 6): a
point ``(u, v)`` uniform in the square ``(−1, 1)²`` is kept if
``s = u² + v²`` is below 1, and then ``z = u·√(−2·ln s / s)`` is a standard
normal deviate. One Philox block gives two points; up to :data:`BLOCKS`
blocks are tried, so all fail with probability ``(1 − π/4)^(2·BLOCKS)``
(about 4·10⁻¹⁴), and then ``z = 0``.

Why not Box–Muller with ``math.log`` and ``math.cos``: glibc and CUDA's
libdevice may round those differently in the last bit, and CUDA fuses
``a*b + c`` into one fused multiply-add, which rounds once instead of
twice. Here every step is either integer arithmetic (``u`` and ``v`` are
26-bit integers, ``s`` an exact integer below 2⁵³), or one of the IEEE
operations that both targets round correctly (``+``, ``−``, ``/``, ``√``),
or a product through :func:`mul_rn`, which the engine compiles to CUDA's
``__dmul_rn`` (a product that is never fused). ``ln s`` is computed by
:func:`log_scaled` from ``s``'s exponent and a series, with those
operations only. So the deviate has the same bits on both targets.
"""
import math

import numpy as np

#: Philox-4x32's multipliers and Weyl key increments (Salmon et al., 2011).
PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)

_MASK32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)
_U24 = np.uint64(24)
_U6 = np.uint64(6)

#: Philox blocks (two candidate points each) the polar method tries before giving up.
BLOCKS = 10
#: Largest element index the counter holds (the attempt number takes the top 8 bits of c₁).
MAX_ELEMENT = (1 << 56) - 1
#: ln 2, the nearest float64.
LN2 = 0.6931471805599453
#: √2, the nearest float64.
SQRT2 = 1.4142135623730951
#: Terms of the series ln m = 2·atanh(f) = 2·Σ f^(2j+1)/(2j+1), for |f| ≤ 3 − 2√2.
LOG_TERMS = 12


def mul_rn(a, b):
    """``a·b`` rounded on its own: never fused with a following addition.

    CUDA contracts ``a*b + c`` into a fused multiply-add, which rounds once
    where the CPU rounds twice; the engine compiles this helper to
    libdevice's ``fmul_rn`` (float32) or ``dmul_rn`` (float64) there, so
    the product is rounded as on the CPU.
    """
    return a * b


_CUDA_MUL_RN = []


def _mul_rn_cuda():
    """A stand-in for :func:`mul_rn` whose CUDA overload is ``fmul_rn``/``dmul_rn`` by type (made once)."""
    if not _CUDA_MUL_RN:
        from numba.core import types
        from numba.cuda import libdevice
        from numba.cuda.extending import overload

        def mul_rn_cuda(a, b):
            return a * b

        @overload(mul_rn_cuda, target="cuda")
        def _typed(a, b):
            if a == types.float32 and b == types.float32:
                return lambda a, b: libdevice.fmul_rn(a, b)
            return lambda a, b: libdevice.dmul_rn(a, b)

        _CUDA_MUL_RN.append(mul_rn_cuda)
    return _CUDA_MUL_RN[0]


#: The engine compiles :func:`mul_rn` to this on CUDA.
mul_rn.cuda_implementation = _mul_rn_cuda


def philox_round(c0, c1, c2, c3, k0, k1):
    """One Philox-4x32 round on 32-bit words held in uint64 (products of two words are exact)."""
    p0 = PHILOX_M0 * c0
    p1 = PHILOX_M1 * c2
    return (p1 >> _U32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _U32) ^ c3 ^ k1, p0 & _MASK32


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox-4x32-10: four 32-bit words (uint64 values below 2³²) from a counter and a key."""
    for _ in range(9):
        c0, c1, c2, c3 = philox_round(c0, c1, c2, c3, k0, k1)
        k0 = (k0 + PHILOX_W0) & _MASK32
        k1 = (k1 + PHILOX_W1) & _MASK32
    return philox_round(c0, c1, c2, c3, k0, k1)


def log_scaled(s):
    """``ln(s·2⁻⁵²)`` for an integer ``2 ≤ s < 2⁵³``, with +, −, /, :func:`mul_rn` only.

    With ``s = m·2ᵉ``, ``m ∈ [√½, √2)``: ``ln = (e − 52)·ln 2 + 2·atanh(f)``,
    ``f = (m − 1)/(m + 1)``; the series' terms fall below 10⁻¹⁷ after
    :data:`LOG_TERMS`. Relative error a few float64 ulps.
    """
    e = 0
    x = s
    if x >= 4294967296:
        x = x >> 32
        e += 32
    if x >= 65536:
        x = x >> 16
        e += 16
    if x >= 256:
        x = x >> 8
        e += 8
    if x >= 16:
        x = x >> 4
        e += 4
    if x >= 4:
        x = x >> 2
        e += 2
    if x >= 2:
        e += 1
    m = np.float64(s) / np.float64(np.int64(1) << e)  # exact: a power-of-two scaling
    if m > SQRT2:
        m = m / 2.0
        e += 1
    f = (m - 1.0) / (m + 1.0)
    f2 = mul_rn(f, f)
    p = 0.0
    for j in range(LOG_TERMS - 1, -1, -1):
        p = 1.0 / np.float64(2 * j + 1) + mul_rn(f2, p)
    return mul_rn(np.float64(e - 52), LN2) + mul_rn(f + f, p)


def centred(x):
    """``2a + 1 − 2²⁶`` from the top 26 bits ``a`` of the word ``x``: an odd integer in (−2²⁶, 2²⁶)."""
    return np.int64(x >> _U6) * 2 + 1 - 67108864


def polar(a, s):
    """Marsaglia's ``z = u·√(−2·ln s / s)`` for ``u = a·2⁻²⁶`` and ``s = (a² + b²)·2⁻⁵² < 1`` (integers in)."""
    u = np.float64(a) / 67108864.0
    q = mul_rn(-2.0, log_scaled(s)) / (np.float64(s) / 4503599627370496.0)
    return mul_rn(u, math.sqrt(q))


def normal(key, t, e):
    """The standard normal deviate of element ``e`` at update ``t`` under ``key`` (uint64 each).

    Deterministic: the same arguments give the same float64 on every call
    and on both targets; no state is read or written. Candidate points
    ``(a, b)`` come from words (x₀, x₁), then (x₂, x₃), of Philox blocks
    ``a = 0, 1, ...``; the first inside the disc (``s < 2⁵²``) gives ``z``.
    """
    k0 = key & _MASK32
    k1 = key >> _U32
    c0 = e & _MASK32
    c1 = e >> _U32
    c2 = t & _MASK32
    c3 = t >> _U32
    x2 = x3 = np.uint64(0)
    for k in range(2 * BLOCKS):
        if k % 2 == 0:
            x0, x1, x2, x3 = philox4x32(c0, c1 | (np.uint64(k // 2) << _U24), c2, c3, k0, k1)
            a = centred(x0)
            b = centred(x1)
        else:
            a = centred(x2)
            b = centred(x3)
        s = a * a + b * b
        if s < 4503599627370496:  # inside the unit disc: s·2⁻⁵² < 1
            return polar(a, s)
    return 0.0


def uniform(key, t, e):
    """The first Philox word of element ``e`` at update ``t``, as a float64 in (0, 1): ``(x + ½)·2⁻³²``."""
    x0, x1, x2, x3 = philox4x32(e & _MASK32, e >> _U32, t & _MASK32, t >> _U32, key & _MASK32, key >> _U32)
    return (np.float64(x0) + 0.5) / 4294967296.0


# -- keys: a parameter's stream ------------------------------------------------------------------
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
_M64 = (1 << 64) - 1


def splitmix64(x):
    """Steele, Lea & Flood's (2014) 64-bit finaliser: a bijection that mixes every bit (Python ints)."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stream_key(seed, name):
    """The 64-bit Philox key of parameter ``name`` under ``seed`` (an int in [0, 2⁶⁴)).

    ``splitmix64(splitmix64(seed) ^ FNV-1a(name))``: the same seed and name
    give the same key in every process (Python's ``hash`` would not).
    """
    h = _FNV_OFFSET
    for byte in str(name).encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & _M64
    return splitmix64(splitmix64(int(seed)) ^ h)


def _host_kernels():
    """CPU kernels that fill arrays with :func:`normal` / :func:`uniform` (tests, the guide)."""
    import numba

    from ._engine import _compile
    from . import _arrays

    norm, unif = _compile(normal, _arrays.CPU), _compile(uniform, _arrays.CPU)

    @numba.njit  # one core: a threaded loop takes seconds more to compile than 10⁶ draws take to run
    def fill_normal(out, key, t, first):
        for i in range(out.shape[0]):
            out[i] = norm(key, t, first + np.uint64(i))

    @numba.njit
    def fill_uniform(out, key, t, first):
        for i in range(out.shape[0]):
            out[i] = unif(key, t, first + np.uint64(i))

    return fill_normal, fill_uniform


_HOST = []


def normals(key, t, n, first=0):
    """``[normal(key, t, e) for e in range(first, first + n)]`` as a float64 array (compiled, CPU)."""
    if not _HOST:
        _HOST.extend(_host_kernels())
    out = np.empty(int(n), np.float64)
    _HOST[0](out, np.uint64(key), np.uint64(t), np.uint64(first))
    return out


def uniforms(key, t, n, first=0):
    """``[uniform(key, t, e) for e in range(first, first + n)]`` as a float64 array (compiled, CPU)."""
    if not _HOST:
        _HOST.extend(_host_kernels())
    out = np.empty(int(n), np.float64)
    _HOST[1](out, np.uint64(key), np.uint64(t), np.uint64(first))
    return out


__all__ = ["BLOCKS", "MAX_ELEMENT", "centred", "log_scaled", "mul_rn", "normal", "normals", "philox4x32", "polar",
           "stream_key", "uniform", "uniforms"]
