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


#: The largest count mxopt keeps (update counts, steps of a schedule): int64's.
INT64_MAX = 2 ** 63 - 1


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {_short(value)} "
                         "(too large for a float64)") from None
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return value


def _short(value):
    """``repr(value)``, shortened for integers of hundreds of digits."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 256 else \
        f"an integer of {len(str(abs(value)))} digits"
    return text if len(text) <= 80 else text[:77] + "..."


def at_least(lo, strict=False, finite=True, note=""):
    """A check ``value >= lo`` (``> lo`` when ``strict``); ``note`` ends its error message."""
    op = ">" if strict else ">="

    def check(name, value):
        value = _number(name, value)
        if (value <= lo if strict else value < lo) or (finite and math.isinf(value)):
            raise ValueError(f"{name} must be {'a finite number ' if finite else ''}{op} {lo}, "
                             f"got {value!r}{note}")
        return value

    return check


def finite(name, value):
    """A finite real number, of any sign."""
    value = _number(name, value)
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


#: lr_mult/wd_mult values, and a learning rate from a schedule: finite and >= 0.
multiplier = at_least(0.0)


def key(name, value):
    """A parameter key: an index (int) or a name (str), as MXNet's multipliers take them."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
        raise TypeError(f"{name} must be an int index or a str name, got {type(value).__name__} {value!r}")
    return value if isinstance(value, str) else int(value)


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


def integer(lo, hi=INT64_MAX):
    """A check ``lo <= value <= hi`` for an integer (counts stay within int64)."""

    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {_short(value)}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {_short(value)}")
        return int(value)

    return check


class Checked:
    """A public attribute whose every assignment is checked (``check(name, value)``).

    The value lives in the instance's ``__dict__`` under the attribute's own
    name, so ``vars(obj)``, copies and pickles see it as a plain attribute.
    """

    def __init__(self, check, doc=""):
        self.check = check
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(self.name, value)


def boolean(name, value):
    """True or False (NumPy's bool too)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def table(check_value, what="value"):
    """A check for a dict from parameter key (int index or str name) to a value passing ``check_value``.

    The dict itself is kept (not copied): MXNet code shares such tables.
    """

    def check(name, value):
        if not isinstance(value, dict):
            raise TypeError(f"{name} must be a dict from index or name to {what}, got {type(value).__name__}")
        for k, v in value.items():
            key(f"{name} key", k)
            check_value(f"{name}[{k!r}]", v)
        return value

    return check


def name_str(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str name, got {type(value).__name__} {value!r}")
    return value


def gluon_parameter(name, value):
    """An object with ``lr_mult`` and ``wd_mult`` (a Gluon Parameter), both valid multipliers."""
    for attr in ("lr_mult", "wd_mult"):
        if not hasattr(value, attr):
            raise TypeError(f"{name} must have lr_mult and wd_mult attributes (a Gluon Parameter), "
                            f"got {type(value).__name__}")
        multiplier(f"{name}.{attr}", getattr(value, attr))
    return value


def optional_callable(name, value):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable (a function of num_update) or None, got {type(value).__name__}")
    return value


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


def float_array(name, x):
    """Describe ``x``, a float NumPy or CUDA array (of any layout), or raise TypeError."""
    if isinstance(x, (np.matrix, np.ma.MaskedArray)):
        why = ("its mask would be ignored: masked entries would be updated too"
               if isinstance(x, np.ma.MaskedArray) else "np.matrix changes the shape of every operation")
        raise TypeError(f"{name} must be a plain NumPy array, got {type(x).__module__}.{type(x).__name__} "
                        f"({why}); pass np.asarray({name}) or its .data")
    described = _arrays.info(x)
    if described is None:
        raise TypeError(
            f"{name} must be a NumPy array or a CUDA array (__cuda_array_interface__), "
            f"got {type(x).__name__}")
    if described.dtype not in _arrays.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {described.dtype}")
    return described


def array(name, x):
    """Describe ``x`` or raise TypeError/ValueError if mxopt cannot update it in place."""
    described = float_array(name, x)
    if not described.contiguous:
        raise ValueError(f"{name} must be C-contiguous; pass a contiguous copy (np.ascontiguousarray)")
    return described


def same_layout(name, x, like, like_name, dtype=None, shape=None, shape_note=""):
    """Check that ``x`` has the target of ``like``, its shape (or ``shape``) and its dtype (or ``dtype``).

    ``shape_note`` says, in the error, why ``x`` needs ``shape`` (a per-row state, say).
    """
    got = array(name, x)
    if got.target != like.target:
        raise ValueError(f"{name} is on {got.target} but {like_name} is on {like.target}: "
                         "weight, gradient and state must live on the same device")
    if shape is None and got.shape != like.shape:
        raise ValueError(f"{name} must have the shape of {like_name} {like.shape}, got {got.shape}")
    if shape is not None and got.shape != tuple(shape):
        raise ValueError(f"{name} must have the shape {tuple(shape)}{shape_note}, got {got.shape}")
    want = like.dtype if dtype is None else np.dtype(dtype)
    if got.dtype != want:
        raise TypeError(f"{name} must have dtype {want}, got {got.dtype}")
    return got


def writeable(name, described):
    if not described.writeable:
        raise ValueError(f"{name} is read-only; mxopt updates it in place")


def disjoint(named, read_only=()):
    """Check that no array that is written shares memory with another array.

    ``named`` holds ``(name, ArrayInfo)`` pairs; the names in ``read_only``
    (gradients) are only read, so two of them may share memory (one
    gradient array given to two parameters of a list). Every other pair must
    not: the kernels read and write every element in place, in parallel, so
    a gradient or a state that overlaps the weight (``b[1:]`` and
    ``b[:-1]``, a float16 weight viewed inside its float32 master copy), or
    a parameter of a list that overlaps another's state, would be read after
    it was written, in an order that depends on the threads.

    The extents are swept in address order, so a list of ``n`` arrays costs
    ``O(n log n)``, not ``n²`` comparisons.
    """
    items = sorted(((a.target, *a.extent, i, name) for i, (name, a) in enumerate(named)
                    if a.extent[0] < a.extent[1]), key=lambda x: x[:4])
    read_only = frozenset(read_only)
    open_ = []  # (target, hi, order, name) of the arrays that may still reach the next ones
    for target, lo, hi, order, name in items:
        open_ = [o for o in open_ if o[0] == target and o[1] > lo]
        for _, _, other_order, other in open_:
            if not (name in read_only and other in read_only):
                first, second = (other, name) if other_order < order else (name, other)
                raise ValueError(f"{second} shares memory with {first}; mxopt updates in place and "
                                 "needs separate arrays (pass a copy)")
        open_.append((target, hi, order, name))


def step_scalars(scalars, names, dtype, off_when_infinite=(), may_vanish=()):
    """The scalars ``names`` of ``scalars`` as ``dtype`` numbers, the dtype the update computes in.

    A value must be a real number, finite (``inf`` only for the names in
    ``off_when_infinite``, where it means "off", e.g. clip_gradient), and
    representable in ``dtype``: ``1e300`` overflows float32 and ``1e-300``
    rounds to 0 there, which would turn the update into NaN or into no
    update at all. The names in ``may_vanish`` may round to 0 (the step
    sizes of a schedule that has decayed below the dtype's range).
    """
    dtype = np.dtype(dtype)
    args = []
    with np.errstate(over="ignore", under="ignore"):
        for name in names:
            if name not in scalars:
                raise TypeError(f"step_scalars gave no value for {name!r}, which the update rule reads")
            value = _number(name, scalars[name])
            cast = dtype.type(value)
            if math.isinf(value):
                if name not in off_when_infinite:
                    raise ValueError(f"{name} must be finite, got {value!r}")
            elif not np.isfinite(cast):
                raise ValueError(f"{name}={value!r} overflows {dtype} (largest {float(np.finfo(dtype).max):.4g}), "
                                 "the dtype this weight's update computes in; use a smaller value or a wider dtype")
            elif cast == 0 and value != 0 and name not in may_vanish:
                raise ValueError(f"{name}={value!r} rounds to 0 in {dtype} "
                                 f"(smallest {float(np.finfo(dtype).smallest_subnormal):.4g}), the dtype this "
                                 "weight's update computes in; use 0 or a larger value")
            args.append(cast)
    return tuple(args)
