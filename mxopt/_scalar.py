"""Scalar helpers that update rules may call.

An update rule is a plain Python function of one element; the engine
(:mod:`mxopt._engine`) compiles it, and every helper listed in
:data:`HELPERS`, for the CPU and for CUDA. Helpers must be written in the
same restricted style as rules: scalar arithmetic, ``math`` functions,
``if`` statements.

Literal numbers are the one trap. Numba types an untyped ``1`` or ``1.0`` as
a 64-bit number, so ``1 - beta1`` would turn a float32 rule into float64
arithmetic (measured on an H200: about 20 % slower Adam). :data:`ONE` is a
float32 constant: ``ONE - beta1`` stays float32 for float32 scalars and
becomes float64 only where ``beta1`` is float64 already.
"""
import math

import numpy as np

#: The number one as float32, for ``ONE - beta`` inside rules.
ONE = np.float32(1.0)


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

__all__ = ["ONE", "clip", "HELPERS"]
