"""The per-index updater (MXNet's ``mx.optimizer.get_updater``)."""
from __future__ import annotations

from . import _arrays, checkpoint
from .optimizer import Optimizer, _check_index


class Updater:
    """Applies an optimizer to many parameters, keeping one state per index.

    ``updater(index, grad, weight)`` is MXNet's calling convention (note the
    order): the first call for an index creates its state
    (``optimizer.create_state``, which may be ``None``: SGD without
    momentum keeps none), every call updates the weight in place.
    ``states`` maps each index to its state and ``states_synced`` says
    whether that state has been placed on its weight's device (``False``
    for states just restored by :meth:`set_states`, which live on the host
    until their first use).

    ``get_states()``/``set_states()`` save and restore every state and the
    update counters (and, with ``dump_optimizer=True``, the optimizer's
    hyperparameters) as bytes in a safetensors file, never pickle: see
    :mod:`mxopt.checkpoint`.

    Example:
      >>> import numpy as np, mxopt
      >>> up = mxopt.get_updater(mxopt.SGD(learning_rate=0.1, momentum=0.9))
      >>> w = np.ones(3, np.float32); up(0, np.ones(3, np.float32), w); w
      array([0.9, 0.9, 0.9], dtype=float32)
      >>> again = mxopt.get_updater(mxopt.SGD(momentum=0.9)); again.set_states(up.get_states(dump_optimizer=True))
      >>> again.optimizer.learning_rate, again.optimizer.num_update
      (0.1, 1)
    """

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an mxopt Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.states = {}
        self.states_synced = {}

    def __call__(self, index, grad, weight):
        """Update ``weight`` at ``index`` from ``grad``; lists of each update several at once.

        With lists, every state is created or fetched and every update
        checked before any weight changes (MXNet's aggregated update).
        """
        if isinstance(index, (list, tuple)):
            if not (isinstance(grad, (list, tuple)) and isinstance(weight, (list, tuple))
                    and len(grad) == len(weight) == len(index)):
                raise TypeError("with a list of indices, grad and weight must be lists of the same length")
            indices = [_check_index(i) for i in index]
        else:
            indices, grad, weight = [_check_index(index)], [grad], [weight]
        with self.optimizer._lock:  # threads sharing this updater: one creates a new index's state
            states = [self._state_for(i, w) for i, w in zip(indices, weight)]
            self.optimizer.update(indices, list(weight), list(grad), states)
            for i, state in zip(indices, states):
                self.states[i] = state
                self.states_synced[i] = True

    def _state_for(self, index, weight):
        """The state to use for ``index``: new, restored (on the weight's device) or current."""
        if index not in self.states:
            return self.optimizer.create_state(index, weight)
        if not self.states_synced.get(index, True):
            return self._on_device_of(weight, index, self.states[index])
        return self.states[index]

    def sync_state_context(self, state, context):
        """MXNet's hook to move ``state`` to the device ``context``; returns ``state``.

        In MXNet a state is a tuple of NDArrays that may sit on another
        device than its weight. An mxopt state is created on its weight's
        device and restored states are moved there at their first use
        (``states_synced`` records which are), so there is nothing left to
        move: ``state`` is returned as it is, for code that calls it.
        """
        return state

    def _on_device_of(self, weight, index, restored):
        """A restored (host) state, copied to the device of ``weight`` when that is not the host."""
        if restored is None or not restored.arrays or \
                _arrays.target_of(restored.arrays[0]) == _arrays.target_of(weight):
            return restored  # checked against the weight by the update itself
        fresh = self.optimizer.create_state(index, weight)
        if fresh is None or fresh.names != restored.names:
            raise ValueError(f"restored state at index {index!r} holds {restored.names}, "
                             f"the weight needs {None if fresh is None else fresh.names}")
        for name, dst, src in zip(fresh.names, fresh.arrays, restored.arrays):
            want, got = _arrays.info(dst), _arrays.info(src)
            if (got.shape, got.dtype) != (want.shape, want.dtype):
                raise ValueError(f"restored state[{name!r}] has shape {got.shape} and dtype {got.dtype}, "
                                 f"the weight at index {index!r} needs {want.shape} and {want.dtype}")
        for dst, src in zip(fresh.arrays, restored.arrays):
            _arrays.copy_into(dst, src)
        fresh.scalars.update(restored.scalars)
        return fresh

    def get_states(self, dump_optimizer=False):
        """Every state and the update counters as bytes (a safetensors file, no pickle).

        With ``dump_optimizer=True`` the optimizer's hyperparameters (its
        checked attributes, learning rate, ``multi_precision``, multipliers
        and an mxopt ``lr_scheduler`` by class and parameters) are saved too;
        a schedule that is an arbitrary callable cannot be saved without
        pickle and is a ValueError.
        """
        if not isinstance(dump_optimizer, bool):
            raise TypeError(f"dump_optimizer must be True or False, got {dump_optimizer!r}")
        return checkpoint.dumps(self.optimizer, self.states, dump_optimizer=dump_optimizer)

    def set_states(self, states):
        """Restore what :meth:`get_states` saved.

        A corrupted, inconsistent or mismatched checkpoint raises ValueError
        and changes nothing. Saved hyperparameters are set on this
        updater's optimizer (MXNet replaces the optimizer object by the
        pickled one; mxopt keeps the object and restores its settings).
        """
        self._install(checkpoint.loads(states, self.optimizer))

    def _install(self, loaded, counts=None, states=None):
        """Apply a checked checkpoint: hyperparameters, counters and states (nothing here can fail)."""
        loaded.apply_hyper(self.optimizer)
        self.optimizer._index_update_count = dict(loaded.counts if counts is None else counts)
        self.optimizer.num_update = loaded.num_update
        self.states = dict(loaded.states if states is None else states)
        self.states_synced = dict.fromkeys(self.states, False)


def get_updater(optimizer):
    """An :class:`Updater` for ``optimizer`` (MXNet's ``mx.optimizer.get_updater``)."""
    return Updater(optimizer)
