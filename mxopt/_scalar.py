"""Scalar helpers that update rules may call.

An update rule is a plain Python function of one element; the engine
(:mod:`mxopt._engine`) compiles it, and every helper listed in
:data:`HELPERS`, for the CPU and for CUDA. Helpers must be written in the
same restricted style as rules: scalar arithmetic, ``math`` functions,
``if`` statements.

Literal numbers are the one trap. Numba types an untyped ``1`` or ``1.0`` as
a 64-bit number, so ``1 - beta1`` would turn a float32 rule into float64
arithmetic (measured on an H200: about 20 % slower Adam). Rules write
:data:`ONE` instead. In Python it is the float ``1.0``, so a rule called on
Python floats computes in float64; in compiled kernels the engine replaces it
by a float32 one (:data:`COMPILED`), so ``ONE - beta1`` stays float32 for
float32 scalars and is float64 only where ``beta1`` is float64 already.
"""
import numpy as np

#: The number one, for ``ONE - beta`` inside rules.
ONE = 1.0


def clip(x, bound):
    """``min(max(x, -bound), bound)``; NaN passes through, as in MXNet.

    Rules receive ``bound = inf`` when clipping is off, which makes this the
    identity.
    """
    if x > bound:
        return bound
    if x < -bound:
        return -bound
    return x


#: Helpers the engine recompiles for each target, by name.
HELPERS = {"clip": clip}

#: Constants the engine substitutes in compiled rules, by name.
COMPILED = {"ONE": np.float32(1.0)}

__all__ = ["ONE", "clip", "HELPERS", "COMPILED"]
