"""An optimizer's state for one parameter index: named arrays and per-index scalars."""
from __future__ import annotations

import copy
import math
import numbers

from . import _arrays


class State:
    """An optimizer's state for one parameter index: named arrays and scalars.

    It behaves like the tuple of its arrays (``mean, var = state``) and gives
    each array by name (``state['mean']`` or ``state.mean``). ``weight32`` is
    the float32 master copy kept for float16 weights with
    ``multi_precision=True``. ``scalars`` holds the per-index numbers an
    optimizer carries from one update to the next (a dict ``str -> float``,
    empty for most optimizers; Nadam's product of momentum-schedule factors
    is one). The state remembers which optimizer class and index made it, so
    that it is never applied to another parameter.

    ``copy.copy(state)`` shares the arrays and the scalars (a second name for
    the same state); ``copy.deepcopy(state)`` copies them onto the same device
    (NumPy, CuPy, PyTorch or Numba arrays alike), independent of the original.

    Example:
      >>> import copy, numpy as np
      >>> s = State('Adam', 0, ('mean', 'var'), (np.zeros(2), np.ones(2)))
      >>> mean, var = s; s.var is var
      True
      >>> c = copy.deepcopy(s); c.mean[0] = 1.0; float(s.mean[0])
      0.0
    """

    __slots__ = ("optimizer", "index", "names", "arrays", "scalars")

    def __init__(self, optimizer, index, names, arrays, scalars=None):
        self.optimizer = optimizer
        self.index = index
        self.names = tuple(names)
        self.arrays = tuple(arrays)
        if len(self.names) != len(self.arrays):
            raise ValueError(f"a State needs one name per array, got names {self.names} "
                             f"and {len(self.arrays)} arrays")
        self.scalars = {}
        for key, value in dict(scalars or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"scalars must be keyed by str, got {type(key).__name__} {key!r}")
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"scalars[{key!r}] must be a finite real number, got {value!r}")
            self.scalars[key] = float(value)

    def __len__(self):
        return len(self.arrays)

    def __iter__(self):
        return iter(self.arrays)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self.arrays[self.names.index(key)]
            except ValueError:
                raise KeyError(key) from None
        return self.arrays[key]

    def __getattr__(self, name):
        # Only called for names that are not slots. A slot that is not set yet
        # (during copy/unpickling, before __setstate__) and dunder lookups
        # must not recurse into self.names.
        if name.startswith("__") or name in State.__slots__:
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __copy__(self):
        new = State.__new__(State)
        for slot in State.__slots__:
            setattr(new, slot, getattr(self, slot))
        return new

    def __deepcopy__(self, memo):
        arrays = []
        for arr in self.arrays:
            if id(arr) not in memo:
                described = _arrays.info(arr)
                if described is None:  # not an array mxopt knows: Python's own deep copy
                    memo[id(arr)] = copy.deepcopy(arr, memo)
                else:
                    twin = _arrays.empty(arr, described.shape, described.dtype)
                    _arrays.copy_into(twin, arr)
                    memo[id(arr)] = twin
            arrays.append(memo[id(arr)])
        new = State(self.optimizer, self.index, self.names, arrays, self.scalars)
        memo[id(self)] = new
        return new

    def __repr__(self):
        scalars = f", scalars={self.scalars}" if self.scalars else ""
        return f"State({self.optimizer}, index={self.index!r}, names={self.names}{scalars})"
