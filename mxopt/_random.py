"""Counter-based random numbers that update rules receive, the same bits on the CPU and on CUDA.

A rule that needs noise (SGLD) cannot keep a random state per element: the
state would cost memory traffic, a checkpoint would have to carry it, and
the CPU and CUDA kernels would need two generators that agree. A
*counter-based* generator has no state at all: the random words are a fixed
function of a key and a counter,

    (x₀, x₁, x₂, x₃) = Philox-4x32-10_k(c₀, c₁, c₂, c₃),

a keyed bijection of 128-bit counters (Salmon, Moraes, Dror & Shaw, 2011,
"Parallel random numbers: as easy as 1, 2, 3", SC'11). Ten rounds of a
multiply-xor network give words that pass the BigCrush battery for every
key. mxopt's counter is (block index, update count): block ``b`` of a
parameter at update ``t`` is

    c = (b mod 2³², ⌊b / 2³²⌋, t mod 2³², ⌊t / 2³²⌋),   k = (key mod 2³², ⌊key / 2³²⌋)

where ``key`` mixes the optimizer's seed with the parameter's name
(:func:`stream_key`).

**Four deviates per block.** One block gives two Box–Muller pairs (Box &
Muller, 1958, "A note on the generation of random normal deviates",
Ann. Math. Stat. 29): from a radius word ``x`` and an angle word ``y``,

    r = √(−2·ln u),   (z, z') = (r·cos θ, r·sin θ),

two independent standard normal deviates, for ``u`` uniform in (0, 1] and
``θ`` uniform in [0, 2π). ``(x₀, x₁)`` give the first pair, ``(x₂, x₃)`` the
second (:func:`normal4`). So a deviate costs a quarter of a Philox block,
half a logarithm and half a sine-and-cosine, as with cuRAND's
``curand_normal4`` (the generator PyTorch's CUDA ``randn`` draws from).

How the parameter's ``n`` elements share the blocks (the engine's loop,
:mod:`mxopt._engine`): with ``q = ⌊n/4⌋``, element ``j·q + b`` (``j < 4``,
``b < q``) takes deviate ``j`` of block ``b``, so that the four deviates of
a block go to four contiguous runs of elements and a kernel's loads and
stores stay contiguous (vectorised on the CPU, coalesced on a GPU); the last
``n mod 4`` elements take the deviates of block ``q`` in order. Every element
gets its own deviate.

**The arithmetic is float32, correctly rounded.** ``u = fl(fl(⌊x/2⌋)·2⁻³¹ + 2⁻³²)``
lies in (0, 1] with float32's full relative precision near 0 (the smallest
is 2⁻³², so ``|z| ≤ √(64·ln 2) ≈ 6.66``, as for cuRAND's float deviates);
``ln u`` comes from ``u``'s exponent and mantissa and a series
(:func:`log_unit`), ``cos θ`` and ``sin θ`` from 26 bits of ``y`` and Taylor
polynomials of half the angle (:func:`sin_cos`). Each deviate is within a few
float32 ulps of the exact transform of its ``u`` and ``θ``; a float64 weight
receives the float32 deviate exactly (the noise is then resolved to about
10⁻⁷ of its size, far below any Monte Carlo error).

Why not ``math.log`` and ``math.cos``: glibc and CUDA's libdevice may round
those differently in the last bit, and CUDA fuses ``a*b + c`` into one fused
multiply-add, which rounds once instead of twice. Here every step is integer
arithmetic, a reinterpretation of a float's bits, or one of the IEEE
operations that both targets round correctly (``+``, ``−``, ``/``, ``√``, a
conversion, a scaling by a power of two), or a product through
:func:`mul_rn`, which the engine compiles to CUDA's ``__fmul_rn`` (a product
that is never fused). So a deviate has the same bits on both targets.
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
_U1 = np.uint64(1)
_U23 = np.uint64(23)
_U24 = np.uint64(24)
_U25 = np.uint64(25)
_BITS23 = np.uint64(0x7FFFFF)

_F32 = np.float32
#: Largest element index a parameter may have (the block counter has 64 bits).
MAX_ELEMENT = (1 << 64) - 1
#: ln 2 and √2 rounded to float32 (√2 only splits the mantissa's range).
LN2 = _F32(math.log(2))
SQRT2 = _F32(math.sqrt(2))
#: π/4 rounded to float32.
PI_4 = _F32(math.pi / 4)
#: Coefficients 2/(2j + 1) of ln m = 2·atanh(f) = Σ 2·f^(2j+1)/(2j+1), to f⁷ (|f| ≤ 3 − 2√2: the rest is below 3·10⁻⁸).
_ATANH = tuple(_F32(2 / (2 * j + 1)) for j in range(4))
#: Taylor coefficients (−1)ʲ/(2j + 1)! of sin (to h⁷) and (−1)ʲ/(2j)! of cos (to h⁶), float32, for h ≤ π/8.
_SIN = tuple(_F32((-1) ** j / math.factorial(2 * j + 1)) for j in range(4))
_COS = tuple(_F32((-1) ** j / math.factorial(2 * j)) for j in range(4))
_HALF, _ONE, _TWO = _F32(0.5), _F32(1.0), _F32(2.0)
#: 2⁻³¹, 2⁻³² and 2⁻²⁴ (exact in float32).
_TWO_M31, _TWO_M32, _TWO_M24 = _F32(2.0 ** -31), _F32(2.0 ** -32), _F32(2.0 ** -24)


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


def log_unit(x):
    """``ln u`` of the uniform ``u = fl(fl(⌊x/2⌋)·2⁻³¹ + 2⁻³²)`` in (0, 1] of a 32-bit word ``x`` (float32).

    With ``u = m·2ᵉ``, ``m ∈ [√½, √2)`` read off ``u``'s bits:
    ``ln u = e·ln 2 + 2·atanh(f)``, ``f = (m − 1)/(m + 1)``, the series to
    ``f⁷``. +, −, /, :func:`mul_rn` and selects only (no branch, so a loop
    that calls it vectorises); within three float32 ulps of ``ln u``.
    """
    u = mul_rn(_F32(np.int32(x >> _U1)), _TWO_M31) + _TWO_M32  # the product is exact; the sum rounds (to 1 at the top)
    bits = np.int32(_F32(u).view(np.int32))
    m = np.int32((bits & 0x7FFFFF) | 0x3F800000).view(np.float32)  # u's mantissa, in [1, 2)
    e = np.int32((bits >> 23) - 127)
    high = m > SQRT2
    m = mul_rn(m, _HALF) if high else m  # exact
    e = np.int32(e + 1) if high else e
    f = (m - _ONE) / (m + _ONE)
    f2 = mul_rn(f, f)
    p = _ATANH[3]
    p = _ATANH[2] + mul_rn(f2, p)
    p = _ATANH[1] + mul_rn(f2, p)
    p = _ATANH[0] + mul_rn(f2, p)
    return mul_rn(_F32(e), LN2) + mul_rn(f, p)


def sin_cos(psi):
    """``(sin ψ, cos ψ)`` for float32 ``0 ≤ ψ ≤ π/4``, :func:`mul_rn`, + and − only.

    Taylor polynomials of the half angle ``h = ψ/2 ≤ π/8`` (sin to h⁷, cos
    to h⁶: the omitted terms are below 2·10⁻⁸), then ``sin ψ = 2·sin h·cos h``
    and ``cos ψ = 1 − 2·sin²h``: fewer terms than on (0, π/4) directly. Within
    two float32 ulps of ``sin ψ`` and ``cos ψ``.
    """
    h = mul_rn(psi, _HALF)  # exact
    x2 = mul_rn(h, h)
    s = _SIN[3]
    s = _SIN[2] + mul_rn(x2, s)
    s = _SIN[1] + mul_rn(x2, s)
    s = h + mul_rn(mul_rn(h, x2), s)
    c = _COS[3]
    c = _COS[2] + mul_rn(x2, c)
    c = _COS[1] + mul_rn(x2, c)
    c = _ONE + mul_rn(x2, c)
    return mul_rn(_TWO, mul_rn(s, c)), _ONE - mul_rn(_TWO, mul_rn(s, s))


def box_muller(x, y):
    """Two independent standard normal deviates (float32) from a radius word ``x`` and an angle word ``y``.

    ``r = √(−2·ln u)`` (:func:`log_unit`); the angle ``θ`` is uniform on
    2²⁶ points of the circle without any range reduction: the low 23 bits
    of ``y`` give ``ψ = (2j + 1)·2⁻²⁴·π/4`` in (0, π/4), bit 23 swaps
    ``(cos ψ, sin ψ)`` to ``(sin ψ, cos ψ)`` (the angle ``π/2 − ψ``), bits 24
    and 25 the signs (the quadrant). Returns ``(r·cos θ, r·sin θ)``.
    """
    r = _F32(math.sqrt(mul_rn(_F32(-2.0), log_unit(x))))  # float32 √ (rounding √ of a float32 in float64 to float32 is the same)
    j = np.int32(y & _BITS23)
    psi = mul_rn(mul_rn(_F32(np.int32(2 * j + 1)), _TWO_M24), PI_4)  # the first product is exact
    sin, cos = sin_cos(psi)
    a, b = (sin, cos) if (y >> _U23) & _U1 else (cos, sin)
    a = -a if (y >> _U24) & _U1 else a
    b = -b if (y >> _U25) & _U1 else b
    return mul_rn(r, a), mul_rn(r, b)


def normal4(key, t, b):
    """The four standard normal deviates (float32) of block ``b`` at update ``t`` under ``key`` (uint64 each).

    Deterministic: the same arguments give the same bits on every call and
    on both targets; no state is read or written. Philox-4x32-10 of counter
    ``(b, t)``, then Box–Muller on ``(x₀, x₁)`` and on ``(x₂, x₃)``. No
    branch: a loop over blocks vectorises.
    """
    x0, x1, x2, x3 = philox4x32(b & _MASK32, b >> _U32, t & _MASK32, t >> _U32, key & _MASK32, key >> _U32)
    z0, z1 = box_muller(x0, x1)
    z2, z3 = box_muller(x2, x3)
    return z0, z1, z2, z3


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


# -- the deviates of a whole parameter, on the host ---------------------------------------------
def deviate(w, g, z):
    """The noise rule that stores its deviate (float64 arrays): run by the engine, it lays ``z`` out as every kernel does."""
    return np.float64(z)


_DEVIATE_RULE = []


def normals(key, t, n):
    """The standard normal deviates of a parameter's ``n`` elements at update ``t`` under ``key`` (float64 array).

    Element ``e`` receives ``out[e]`` in every kernel of a noise rule (the
    float32 deviate, widened exactly). Computed by the engine's own loop,
    with the rule :func:`deviate`: the layout of the blocks is written once.
    """
    from ._engine import Parts, UpdateRule, launch

    if not _DEVIATE_RULE:
        _DEVIATE_RULE.append(UpdateRule(deviate, n_state=0, noise="z"))
    out = np.zeros(int(n), np.float64)
    launch(_DEVIATE_RULE[0], out, out, (), Parts([(0, None, (np.uint64(key), np.uint64(t)))], ()))
    return out


__all__ = ["MAX_ELEMENT", "box_muller", "log_unit", "mul_rn", "normal4", "normals", "philox4x32", "sin_cos",
           "stream_key"]
