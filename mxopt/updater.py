"""The per-index updater (MXNet's ``mx.optimizer.get_updater``)."""
from __future__ import annotations

from . import _arrays, checkpoint
from .optimizer import Optimizer, _check_index


class Updater:
    """Applies an optimizer to many parameters, keeping one state per index.

    ``updater(index, grad, weight)`` is MXNet's calling convention (note the
    order). ``get_states()``/``set_states()`` save and restore every state
    and the update counters as bytes, without pickle.
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an mxopt Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.states = {}

    def __call__(self, index, grad, weight):
        index = _check_index(index)
        state = self.states.get(index)
        if state is None:
            state = self.optimizer.create_state(index, weight)
        elif state.arrays and _arrays.target_of(state.arrays[0]) != _arrays.target_of(weight):
            state = self._to_device(state, index, weight)
        self.optimizer.update(index, weight, grad, state)
        self.states[index] = state

    def _to_device(self, restored, index, weight):
        """A state restored on the host, copied to the device of ``weight``."""
        fresh = self.optimizer.create_state(index, weight)
        for name, dst, src in zip(fresh.names, fresh.arrays, restored.arrays):
            want, got = _arrays.info(dst), _arrays.info(src)
            if (got.shape, got.dtype) != (want.shape, want.dtype):
                raise ValueError(f"restored state[{name!r}] has shape {got.shape} and dtype {got.dtype}, "
                                 f"the weight at index {index!r} needs {want.shape} and {want.dtype}")
        for dst, src in zip(fresh.arrays, restored.arrays):
            _arrays.copy_into(dst, src)
        return fresh

    def get_states(self, dump_optimizer=False):
        """All states and counters as bytes (a checksummed, pickle-free format)."""
        return checkpoint.dumps(self.optimizer, self.states)

    def set_states(self, data):
        """Restore what :meth:`get_states` saved; a corrupted or mismatched checkpoint raises ValueError."""
        states, counts, num_update = checkpoint.loads(data, self.optimizer)
        self.states = states
        self.optimizer._index_update_count = counts
        self.optimizer.num_update = num_update


def get_updater(optimizer):
    """An :class:`Updater` for ``optimizer`` (MXNet's ``mx.optimizer.get_updater``)."""
    return Updater(optimizer)
