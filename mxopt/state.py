"""An optimizer's state for one parameter index."""
from __future__ import annotations


class State:
    """An optimizer's state for one parameter index: named arrays.

    It behaves like the tuple of its arrays (``mean, var = state``) and gives
    each array by name (``state['mean']`` or ``state.mean``). ``weight32`` is
    the float32 master copy kept for float16 weights with
    ``multi_precision=True``. The state remembers which optimizer class and
    index made it, so that it is never applied to another parameter.
    """

    __slots__ = ("optimizer", "index", "names", "arrays")

    def __init__(self, optimizer, index, names, arrays):
        self.optimizer = optimizer
        self.index = index
        self.names = tuple(names)
        self.arrays = tuple(arrays)

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
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        return f"State({self.optimizer}, index={self.index!r}, names={self.names})"
