"""Many parameters, one kernel launch per step.

A model has many weight arrays; launching one update per array costs a
Python call (and, on a GPU, a kernel launch of tens of microseconds) each.
:class:`Trainer` instead copies the parameters into one flat buffer and
hands out views of it, so one update covers them all.
"""
from __future__ import annotations

import numpy as np

from . import _arrays, _checks
from .optimizer import Optimizer, create
from .updater import Updater


class Trainer:
    """Updates a model's parameters together (MXNet gluon's ``Trainer``).

    Args:
      params: ``{name: array}`` (or a list of arrays, named "0", "1", ...),
        NumPy arrays or CUDA arrays of one float dtype, on one device. Their
        values are copied into the trainer's flat buffer: from now on use
        ``trainer.params[name]``, a view of it, as the parameter.
      optimizer: a registered name (``'sgd'``, ``'adam'``...) or an Optimizer.
      optimizer_params: keyword arguments for :func:`mxopt.create`.
      lr_mult, wd_mult: per-parameter multipliers by name. Parameters are
        laid out in groups of equal multipliers; each group is one launch,
        so the default (no multipliers) is one launch per step.

    Example:
      >>> import numpy as np, mxopt
      >>> tr = mxopt.Trainer({'w': np.ones((2, 2), np.float32), 'b': np.zeros(2, np.float32)},
      ...                    'sgd', {'learning_rate': 0.5})
      >>> tr.grads['w'][...] = 1; tr.grads['b'][...] = 2
      >>> tr.step(batch_size=2); tr.params['b']
      array([-0.5, -0.5], dtype=float32)
    """

    def __init__(self, params, optimizer, optimizer_params=None, lr_mult=None, wd_mult=None):
        if isinstance(params, dict):
            named = list(params.items())
        elif isinstance(params, (list, tuple)):
            named = [(str(i), p) for i, p in enumerate(params)]
        else:
            raise TypeError(f"params must be a dict of arrays or a list of arrays, got {type(params).__name__}")
        if not named:
            raise ValueError("params is empty")
        infos = {}
        for name, p in named:
            if not isinstance(name, str):
                raise TypeError(f"parameter names must be strings, got {name!r}")
            described = _arrays.info(p)
            if described is None or described.dtype not in _arrays.FLOAT_DTYPES:
                raise TypeError(f"params[{name!r}] must be a float NumPy or CUDA array, got {type(p).__name__}")
            infos[name] = described
        values = dict(named)
        first_name, first = named[0][0], infos[named[0][0]]
        for name, described in infos.items():
            if (described.target, described.dtype) != (first.target, first.dtype):
                raise ValueError(f"params[{name!r}] is {described.dtype} on {described.target}, but "
                                 f"params[{first_name!r}] is {first.dtype} on {first.target}: one buffer needs one of each")
        if isinstance(optimizer, Optimizer):
            if optimizer_params:
                raise TypeError("optimizer_params are only used when optimizer is given by name")
        else:
            optimizer = create(optimizer, **(optimizer_params or {}))
        lr_mult, wd_mult = dict(lr_mult or {}), dict(wd_mult or {})
        for table, label in ((lr_mult, "lr_mult"), (wd_mult, "wd_mult")):
            for name, value in table.items():
                if name not in infos:
                    raise ValueError(f"{label} names unknown parameter {name!r}")
                _checks.at_least(0.0)(f"{label}[{name!r}]", value)

        # Lay the parameters out group by group: each group is one contiguous slice.
        groups = {}
        for name, _ in named:
            groups.setdefault((lr_mult.get(name, 1.0), wd_mult.get(name, 1.0)), []).append(name)
        total = sum(d.size for d in infos.values())
        like = named[0][1]
        self.data = _arrays.empty(like, (total,), first.dtype)
        self.grad_data = _arrays.zeros(like, (total,), first.dtype)
        self.params, self.grads, self._slices = {}, {}, []
        offset = 0
        for index, ((lr_m, wd_m), names) in enumerate(groups.items()):
            start = offset
            for name in names:
                shape = infos[name].shape
                self.params[name] = _arrays.view(self.data, offset, shape)
                self.grads[name] = _arrays.view(self.grad_data, offset, shape)
                _arrays.copy_into(self.params[name], values[name])
                offset += infos[name].size
            self._slices.append((start, offset))
            optimizer.lr_mult[index] = lr_m
            optimizer.wd_mult[index] = wd_m
        self.params = {name: self.params[name] for name, _ in named}  # caller's order
        self.grads = {name: self.grads[name] for name, _ in named}
        self.optimizer = optimizer
        self._scale = optimizer.rescale_grad
        self._updater = Updater(optimizer)

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    def set_learning_rate(self, lr):
        self.optimizer.set_learning_rate(lr)

    def zero_grad(self):
        """Set every gradient to zero."""
        _arrays.fill(self.grad_data, 0)

    def step(self, batch_size=1):
        """One update of every parameter from ``trainer.grads``.

        The gradients are scaled by ``rescale_grad / batch_size``, as in
        gluon, so ``grads`` may hold the sum over a batch.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, float, np.integer, np.floating)) \
                or not batch_size > 0:
            raise ValueError(f"batch_size must be a positive number, got {batch_size!r}")
        self.optimizer.rescale_grad = self._scale / batch_size
        for index, (start, stop) in enumerate(self._slices):
            self._updater(index, self.grad_data[start:stop], self.data[start:stop])

    def save_states(self):
        """The optimizer states and counters as bytes (no pickle)."""
        return self._updater.get_states()

    def load_states(self, data):
        """Restore what :meth:`save_states` returned."""
        self._updater.set_states(data)
