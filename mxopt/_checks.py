"""Argument checks, each written once.

Hyperparameters are :class:`Hyper` descriptors: they are checked when they
are set, in ``__init__`` and at any later assignment, so an optimizer can
never hold an out-of-range value and an update never fails half-way on one.
Array checks run before an update touches anything.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import _arrays


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return value


def at_least(lo, strict=False, finite=True):
    """A check ``value >= lo`` (``> lo`` when ``strict``)."""
    op = ">" if strict else ">="

    def check(name, value):
        value = _number(name, value)
        if (value <= lo if strict else value < lo) or (finite and math.isinf(value)):
            raise ValueError(f"{name} must be {'a finite number ' if finite else ''}{op} {lo}, got {value!r}")
        return value

    return check


def unit_interval(name, value):
    """A check ``0 <= value < 1`` (momentum, betas, decay rates)."""
    value = _number(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def optional(check):
    """``None`` or a value passing ``check``."""

    def optional_check(name, value):
        return None if value is None else check(name, value)

    return optional_check


def integer(lo):
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if value < lo:
            raise ValueError(f"{name} must be >= {lo}, got {value!r}")
        return int(value)

    return check


class Hyper:
    """A hyperparameter attribute whose every assignment is checked."""

    def __init__(self, check, doc=""):
        self.check = check
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name
        self.slot = "_" + name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return getattr(obj, self.slot)

    def __set__(self, obj, value):
        setattr(obj, self.slot, self.check(self.name, value))


def array(name, x):
    """Describe ``x`` or raise TypeError if mxopt cannot update it."""
    described = _arrays.info(x)
    if described is None:
        raise TypeError(
            f"{name} must be a NumPy array or a CUDA array (__cuda_array_interface__), "
            f"got {type(x).__name__}")
    if described.dtype not in _arrays.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {described.dtype}")
    if not described.contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass a contiguous copy (np.ascontiguousarray)")
    return described


def same_layout(name, x, like, like_name, dtype=None):
    """Check that ``x`` has the shape, target (and ``dtype``) of ``like``."""
    got = array(name, x)
    if got.target != like.target:
        raise ValueError(f"{name} is on {got.target} but {like_name} is on {like.target}: "
                         "weight, gradient and state must live on the same device")
    if got.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {like.shape}, got {got.shape}")
    want = like.dtype if dtype is None else np.dtype(dtype)
    if got.dtype != want:
        raise TypeError(f"{name} must have dtype {want}, got {got.dtype}")
    return got


def writeable(name, described):
    if not described.writeable:
        raise ValueError(f"{name} is read-only; mxopt updates it in place")
