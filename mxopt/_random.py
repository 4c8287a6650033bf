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
parameter at update ``t`` reads the block

    c = (e mod 2³², ⌊e / 2³²⌋, t mod 2³², ⌊t / 2³²⌋),   k = (key mod 2³², ⌊key / 2³²⌋)

where ``key`` mixes the optimizer's seed with the parameter's name.

Normal deviates by the Box–Muller transform (Box & Muller, 1958, "A note on
the generation of random normal deviates", Ann. Math. Stat. 29): for ``u``
uniform in (0, 1] and an angle ``θ`` uniform in [0, 2π), ``√(−2·ln u)·cos θ``
is a standard normal deviate. Here ``u = (2k + 1)·2⁻⁵³`` from 52 bits of
the block (x₀ and the top 20 bits of x₁), and ``cos θ`` is built from
x₂ without any range reduction: its top bit is the sign, the next one
chooses ``sin ψ`` or ``cos ψ``, and the low 30 bits give
``ψ = (2j + 1)·2⁻³¹·π/4`` in (0, π/4); ``±sin ψ`` and ``±cos ψ`` with
equal probability have the distribution of ``cos θ``. Every element costs
one block and no branch (x₃ is unused), so a kernel's loop over the
elements vectorises; the largest ``|z|`` is ``√(2·53·ln 2)`` ≈ 8.6.

Why not ``math.log`` and ``math.cos``: glibc and CUDA's libdevice may round
those differently in the last bit, and CUDA fuses ``a*b + c`` into one fused
multiply-add, which rounds once instead of twice. Here every step is either
integer arithmetic, or one of the IEEE operations that both targets round
correctly (``+``, ``−``, ``/``, ``√``, a scaling by a power of two), or a
product through :func:`mul_rn`, which the engine compiles to CUDA's
``__dmul_rn`` (a product that is never fused). ``ln u`` is computed by
:func:`log_scaled` from ``u``'s exponent and a series, ``sin ψ`` and ``cos ψ``
by :func:`sin_cos` from their Taylor polynomials, with those operations only.
So the deviate has the same bits on both targets.
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
_U20 = np.uint64(20)
_U12 = np.uint64(12)

#: Largest element index the counter holds (its two low words).
MAX_ELEMENT = (1 << 64) - 1
#: ln 2, the nearest float64.
LN2 = 0.6931471805599453
#: √2, the nearest float64.
SQRT2 = 1.4142135623730951
#: Terms of the series ln m = 2·atanh(f) = 2·Σ f^(2j+1)/(2j+1), for |f| ≤ 3 − 2√2.
LOG_TERMS = 12
#: π/4, the nearest float64.
PI_4 = 0.7853981633974483
#: 1/(2j + 1), the series' coefficients (each correctly rounded).
_ATANH = tuple(1.0 / (2 * j + 1) for j in range(LOG_TERMS))
#: Taylor coefficients (−1)ʲ/(2j + 1)! of sin and (−1)ʲ/(2j)! of cos (each correctly rounded).
_SIN = tuple((-1) ** j / math.factorial(2 * j + 1) for j in range(9))
_COS = tuple((-1) ** j / math.factorial(2 * j) for j in range(10))


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


def exact_float(x):
    """The float64 of an integer ``0 ≤ x < 2⁵³`` (uint64), exactly, from its two 32-bit halves.

    The same number as ``np.float64(x)``; but a vector of 64-bit integers has
    no conversion instruction before AVX-512, and LLVM converts it one lane
    at a time, while 32-bit halves convert four at a time (and ``h·2³² + l``
    is exact below 2⁵³; the product goes through :func:`mul_rn` only so
    that CUDA's code has no ``fma`` at all, which the tests check).
    """
    return mul_rn(np.float64(np.uint32(x >> _U32)), 4294967296.0) + np.float64(np.uint32(x & _MASK32))  # no fma


def log_scaled(s):
    """``ln(s·2⁻⁵³)`` for an integer ``1 ≤ s < 2⁵³`` (uint64), with +, −, /, :func:`mul_rn` only, and no branch.

    With ``s = m·2ᵉ``, ``m ∈ [√½, √2)``: ``ln = (e − 53)·ln 2 + 2·atanh(f)``,
    ``f = (m − 1)/(m + 1)``; the series' terms fall below 10⁻¹⁷ after
    :data:`LOG_TERMS`. Relative error a few float64 ulps. ``e`` is found by
    a binary search whose steps are selects, not jumps, so a loop over
    elements that calls this vectorises.
    """
    x = np.int64(s)
    e = np.int64(0)
    big = x >= 4294967296
    x, e = (x >> 32, e + 32) if big else (x, e)
    big = x >= 65536
    x, e = (x >> 16, e + 16) if big else (x, e)
    big = x >= 256
    x, e = (x >> 8, e + 8) if big else (x, e)
    big = x >= 16
    x, e = (x >> 4, e + 4) if big else (x, e)
    big = x >= 4
    x, e = (x >> 2, e + 2) if big else (x, e)
    e = e + 1 if x >= 2 else e  # now 2ᵉ ≤ s < 2ᵉ⁺¹
    m = exact_float(np.uint64(np.int64(s) << (52 - e))) * 2.220446049250313e-16  # s·2⁻ᵉ ∈ [1, 2): exact (·2⁻⁵²)
    high = m > SQRT2
    m = m * 0.5 if high else m  # exact
    f = (m - 1.0) / (m + 1.0)
    f2 = mul_rn(f, f)
    p = _ATANH[11]
    p = _ATANH[10] + mul_rn(f2, p)
    p = _ATANH[9] + mul_rn(f2, p)
    p = _ATANH[8] + mul_rn(f2, p)
    p = _ATANH[7] + mul_rn(f2, p)
    p = _ATANH[6] + mul_rn(f2, p)
    p = _ATANH[5] + mul_rn(f2, p)
    p = _ATANH[4] + mul_rn(f2, p)
    p = _ATANH[3] + mul_rn(f2, p)
    p = _ATANH[2] + mul_rn(f2, p)
    p = _ATANH[1] + mul_rn(f2, p)
    p = _ATANH[0] + mul_rn(f2, p)
    exponent = np.float64(np.int32(e + (1 if high else 0) - 53))
    return mul_rn(exponent, LN2) + mul_rn(f + f, p)


def sin_cos(psi):
    """``(sin ψ, cos ψ)`` for ``0 ≤ ψ ≤ π/4`` by their Taylor polynomials (to ψ¹⁷/17! and ψ¹⁸/18!), :func:`mul_rn` only.

    The first omitted terms are below 10⁻¹⁹; the error is the rounding of
    Horner's scheme, a few float64 ulps.
    """
    x2 = mul_rn(psi, psi)
    s = _SIN[8]
    s = _SIN[7] + mul_rn(x2, s)
    s = _SIN[6] + mul_rn(x2, s)
    s = _SIN[5] + mul_rn(x2, s)
    s = _SIN[4] + mul_rn(x2, s)
    s = _SIN[3] + mul_rn(x2, s)
    s = _SIN[2] + mul_rn(x2, s)
    s = _SIN[1] + mul_rn(x2, s)
    c = _COS[9]
    c = _COS[8] + mul_rn(x2, c)
    c = _COS[7] + mul_rn(x2, c)
    c = _COS[6] + mul_rn(x2, c)
    c = _COS[5] + mul_rn(x2, c)
    c = _COS[4] + mul_rn(x2, c)
    c = _COS[3] + mul_rn(x2, c)
    c = _COS[2] + mul_rn(x2, c)
    c = _COS[1] + mul_rn(x2, c)
    return psi + mul_rn(mul_rn(psi, x2), s), 1.0 + mul_rn(x2, c)


def normal(key, t, e):
    """The standard normal deviate of element ``e`` at update ``t`` under ``key`` (uint64 each).

    Deterministic: the same arguments give the same float64 on every call
    and on both targets; no state is read or written. One Philox block
    ``(x₀, x₁, x₂, x₃)`` of counter ``(e, t)``; Box–Muller on
    ``u = (2k + 1)·2⁻⁵³`` (``k``: the 32 bits of x₀ and the top 20 of x₁)
    and the angle word x₂: ``z = ±√(−2·ln u)·(sin ψ or cos ψ)`` with
    ``ψ = (2j + 1)·2⁻³¹·π/4`` (``j``: the low 30 bits of x₂, the sign and
    the choice of sin or cos its top two bits). No branch: a loop over
    elements vectorises.
    """
    x0, x1, x2, x3 = philox4x32(e & _MASK32, e >> _U32, t & _MASK32, t >> _U32, key & _MASK32, key >> _U32)
    s = (((x0 << _U20) | (x1 >> _U12)) << np.uint64(1)) | np.uint64(1)
    radius = math.sqrt(mul_rn(-2.0, log_scaled(s)))
    j = x2 & np.uint64(0x3FFFFFFF)
    psi = mul_rn(np.float64(np.int32((j << np.uint64(1)) | np.uint64(1))) * 4.656612873077393e-10, PI_4)  # ·2⁻³¹ exact
    sin, cos = sin_cos(psi)
    z = mul_rn(radius, sin if (x2 >> np.uint64(30)) & np.uint64(1) else cos)
    return -z if x2 >> np.uint64(31) else z


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


__all__ = ["MAX_ELEMENT", "exact_float", "log_scaled", "mul_rn", "normal", "normals", "philox4x32", "sin_cos", "stream_key", "uniform",
           "uniforms"]
