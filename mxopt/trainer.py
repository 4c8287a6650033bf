"""Many parameters, one kernel launch per step.

A model has many weight arrays; launching one update per array costs a
Python call (and, on a GPU, a kernel launch of tens of microseconds) each.
:class:`Trainer` instead copies the parameters into one flat buffer and
hands out views of it, so one update covers them all.
"""
from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping

import numpy as np

from . import _arrays, _checks, _reduce, checkpoint
from .optimizer import Optimizer, create
from .state import State
from .updater import Updater


#: The Trainer each optimizer instance belongs to. An optimizer holds its
#: Trainer's multipliers (by group) and step counts, so it is never shared.
_OWNERS: "weakref.WeakKeyDictionary[Optimizer, weakref.ref]" = weakref.WeakKeyDictionary()


class _Views(Mapping):
    """``trainer.params``/``trainer.grads``: name -> view of the flat buffer, read-only.

    The trainer reads its buffers, not this mapping, so rebinding a name to
    another array would be silently ignored: it is a TypeError instead.
    """

    def __init__(self, label, views):
        self._label = label
        self._views = views

    def __getitem__(self, name):
        return self._views[name]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __setitem__(self, name, value):
        raise TypeError(
            f"trainer.{self._label}[{name!r}] = ... would rebind the name to another array, which the trainer "
            f"never reads; write into the view instead: trainer.{self._label}[{name!r}][...] = value")

    def __delitem__(self, name):
        raise TypeError(f"trainer.{self._label} is read-only: its names are fixed when the Trainer is made")

    def __repr__(self):
        return f"{self._label}({dict(self._views)!r})"


class Trainer:
    """Updates a model's parameters together (MXNet gluon's ``Trainer``).

    Args:
      params: ``{name: array}`` (or a list of arrays, named "0", "1", ...),
        NumPy arrays or CUDA arrays of one float dtype, on one device. Their
        values are copied into the trainer's flat buffer: from now on use
        ``trainer.params[name]``, a view of it, as the parameter, and write
        gradients into ``trainer.grads[name][...]`` (both mappings are
        read-only: a name cannot be rebound to another array).
      optimizer: a registered name (``'sgd'``, ``'adam'``...) or an Optimizer
        that no other Trainer uses and that has not updated anything yet
        (it keeps this trainer's multipliers and step counts).
      optimizer_params: keyword arguments for :func:`mxopt.create`.
      lr_mult, wd_mult: per-parameter multipliers by name. Parameters are
        laid out in groups of equal multipliers; each group is one launch,
        so the default (no multipliers) is one launch per step.
      kvstore: ``None`` (this process alone), a store from
        :func:`mxopt.kvstore.create` or its name (``'local'``,
        ``'dist_sync'``, ``'dist_sync_vote'``, ``'dist_async'``): data-parallel
        training over MPI, where ``step(batch_size)`` communicates and
        ``batch_size`` is the global batch (see :mod:`mxopt.kvstore`). With a
        ``'dist_*'`` store the construction is collective: every rank must
        build the same parameters, and all start from rank 0's values.

    float16 parameters need ``multi_precision=True``: MXNet 1.9.1 would
    update them in float16 arithmetic, but Numba has no float16 arithmetic
    on the CPU, so mxopt's update runs in float32 on a float32 master copy.

    ``copy.deepcopy(trainer)`` is an independent trainer (its own buffers,
    optimizer and states); ``copy.copy`` is the same trainer under a second
    name.

    Example:
      >>> import numpy as np, mxopt
      >>> tr = mxopt.Trainer({'w': np.ones((2, 2), np.float32), 'b': np.zeros(2, np.float32)},
      ...                    'sgd', {'learning_rate': 0.5})
      >>> tr.grads['w'][...] = 1; tr.grads['b'][...] = 2
      >>> tr.step(batch_size=2); tr.params['b']
      array([-0.5, -0.5], dtype=float32)
    """

    def __init__(self, params, optimizer, optimizer_params=None, lr_mult=None, wd_mult=None, kvstore=None):
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
            infos[name] = _checks.float_array(f"params[{name!r}]", p)  # copied: any layout will do
        values = dict(named)
        first_name, first = named[0][0], infos[named[0][0]]
        for name, described in infos.items():
            if (described.target, described.dtype) != (first.target, first.dtype):
                raise ValueError(f"params[{name!r}] is {described.dtype} on {described.target}, but "
                                 f"params[{first_name!r}] is {first.dtype} on {first.target}: one buffer needs one of each")
        if kvstore is not None:
            from . import kvstore as _kvstore

            if isinstance(kvstore, str):
                kvstore = _kvstore.create(kvstore)
            elif not isinstance(kvstore, _kvstore.KVStore):
                raise TypeError(f"kvstore must be None, a store from mxopt.kvstore.create or its name, "
                                f"got {type(kvstore).__name__}")
        for label, table in (("optimizer_params", optimizer_params), ("lr_mult", lr_mult), ("wd_mult", wd_mult)):
            if table is not None and not isinstance(table, Mapping):
                raise TypeError(f"{label} must be a dict, got {type(table).__name__}")
        if isinstance(optimizer, Optimizer):
            if optimizer_params:
                raise TypeError("optimizer_params are only used when optimizer is given by name")
            _check_unshared(optimizer)
        else:
            optimizer = create(optimizer, **(optimizer_params or {}))
        try:
            optimizer.state_names(first.dtype)
        except TypeError:
            raise TypeError(
                "params are float16 and the optimizer has multi_precision=False. MXNet 1.9.1 would update "
                "them in float16 arithmetic; mxopt refuses, because Numba has no float16 arithmetic on the "
                "CPU: the update runs in float32 on a float32 master copy of the weights. Pass "
                "multi_precision=True (in optimizer_params, or to the optimizer)") from None
        lr_mult, wd_mult = dict(lr_mult or {}), dict(wd_mult or {})
        for table, label in ((lr_mult, "lr_mult"), (wd_mult, "wd_mult")):
            for name, value in table.items():
                if name not in infos:
                    raise ValueError(f"{label} names unknown parameter {name!r}")
                _checks.multiplier(f"{label}[{name!r}]", value)

        # Lay the parameters out group by group: each group is one contiguous slice.
        groups = {}
        for name, _ in named:
            groups.setdefault((float(lr_mult.get(name, 1.0)), float(wd_mult.get(name, 1.0))), []).append(name)
        offsets, self._groups, offset = {}, [], 0
        for names in groups.values():
            start = offset
            for name in names:
                offsets[name] = offset
                offset += infos[name].size
            self._groups.append((start, offset, tuple(names)))
        self._layout = tuple((name, offsets[name], infos[name].shape) for name, _ in named)  # caller's order
        like = named[0][1]
        self.data = _arrays.empty(like, (offset,), first.dtype)
        self.grad_data = _arrays.zeros(like, (offset,), first.dtype)
        self._make_views()
        for name, view in self._params.items():
            _arrays.copy_into(view, values[name])
        if isinstance(optimizer.rule, _reduce.LayerwiseRule):  # e.g. GroupAdaGrad's 2-D parameters
            for name, _ in named:
                optimizer.segment_shape(name, infos[name].shape)
        for index, (lr_m, wd_m) in enumerate(groups):
            optimizer.lr_mult[index] = lr_m
            optimizer.wd_mult[index] = wd_m
        for index, (_, _, names) in enumerate(self._groups):
            # Layer-wise optimizers (LARS, LAMB, GroupAdaGrad) reduce per parameter, and read names.
            optimizer.set_layout(index, [(name, infos[name].shape) for name in names])
        self.optimizer = optimizer
        self._scale = optimizer.rescale_grad
        self._updater = Updater(optimizer)
        self._kvstore = None
        if kvstore is not None:
            kvstore._attach(self)  # collective: checks every rank's layout, then broadcasts rank 0's weights
            self._kvstore = kvstore
        _OWNERS[optimizer] = weakref.ref(self)

    @property
    def kvstore(self):
        """The :class:`mxopt.kvstore.KVStore` that ``step`` communicates through, or ``None``."""
        return self._kvstore

    def _make_views(self):
        self._params = {name: _arrays.view(self.data, start, shape) for name, start, shape in self._layout}
        self._grads = {name: _arrays.view(self.grad_data, start, shape) for name, start, shape in self._layout}

    @property
    def params(self):
        """``{name: view}``: the parameters, views of the flat buffer ``data`` (read-only mapping)."""
        return _Views("params", self._params)

    @property
    def grads(self):
        """``{name: view}``: the gradients, views of ``grad_data``; write into them (``grads[n][...] = g``)."""
        return _Views("grads", self._grads)

    def __deepcopy__(self, memo):
        new = Trainer.__new__(Trainer)
        memo[id(self)] = new
        for attr in ("data", "grad_data"):
            src = getattr(self, attr)
            described = _arrays.info(src)
            twin = _arrays.empty(src, described.shape, described.dtype)
            _arrays.copy_into(twin, src)
            setattr(new, attr, twin)
        new._groups, new._layout, new._scale = self._groups, self._layout, self._scale
        new.optimizer = copy.deepcopy(self.optimizer, memo)
        new._updater = copy.deepcopy(self._updater, memo)
        new._kvstore = None  # a copy trains on its own: a store synchronises one Trainer
        new._make_views()
        _OWNERS[new.optimizer] = weakref.ref(new)
        return new

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
        gluon, so ``grads`` may hold the sum over a batch. ``batch_size``
        is a finite number > 0. With a :attr:`kvstore` the step
        communicates first and ``batch_size`` is the global batch (every
        rank's examples together; see :mod:`mxopt.kvstore`).
        """
        batch = _checks.at_least(0.0, strict=True)("batch_size", batch_size)
        if self._kvstore is not None:
            self._kvstore._step(self, batch)
        else:
            self._locked_step(batch)

    def _locked_step(self, batch, data=None):
        """The update of ``data`` (default: the parameters) from ``grad_data``, no communication."""
        with self.optimizer._lock:  # rescale_grad is set for this step only: one step at a time
            self._step(batch, self.data if data is None else data)

    def _state_arrays(self, name):
        """Each group's state array ``name`` (in buffer order), for the stores."""
        return [self._updater.states[index][name] for index in range(len(self._groups))]

    def _set_state(self, name, flat):
        """Copy ``flat`` (a vector laid out as ``data``) into each group's state ``name``, once the states exist."""
        for index, (start, stop, _) in enumerate(self._groups):
            state = self._updater.states.get(index)
            if state is not None:
                _arrays.copy_into(state[name], flat[start:stop])

    def _step(self, batch, data):
        rescale, before = self._scale / batch, self.optimizer.rescale_grad
        try:  # as the update will check it: > 0 and not rounding to 0 in the compute dtype
            self.optimizer.rescale_grad = rescale
            _checks.step_scalars({"rescale_grad": rescale}, ("rescale_grad",),
                                 self.optimizer._compute_dtype(_arrays.info(self.data).dtype))
        except ValueError as e:
            self.optimizer.rescale_grad = before
            raise ValueError(f"batch_size={batch!r} is too large: rescale_grad / batch_size = "
                             f"{self._scale!r} / {batch!r} ({e})") from None
        groups = range(len(self._groups))
        try:  # one aggregated update: every group is checked before any weight changes
            self._updater(list(groups), [self.grad_data[start:stop] for start, stop, _ in self._groups],
                          [data[start:stop] for start, stop, _ in self._groups])
        except BaseException:
            self.optimizer.rescale_grad = before
            raise

    # -- checkpoints, keyed by parameter name ------------------------------------------
    def save_states(self, dump_optimizer=False):
        """The optimizer states and counters as bytes (a safetensors file, no pickle).

        Each parameter's state arrays are saved under its name
        (``fc_weight/mean``, ...) with its shape, so the checkpoint does not
        depend on how the parameters are grouped in the buffer.
        ``dump_optimizer=True`` saves the optimizer's hyperparameters too
        (not its multipliers: those are the Trainer's ``lr_mult``/``wd_mult``).
        """
        if not isinstance(dump_optimizer, bool):
            raise TypeError(f"dump_optimizer must be True or False, got {dump_optimizer!r}")
        states, counts = {}, {}
        done = self.optimizer._index_update_count
        for index, (start, _, names) in enumerate(self._groups):
            if index in self._updater.states:
                group = self._updater.states[index]
                hosts = None if group is None else [_arrays.to_host(a).reshape(-1) for a in group.arrays]
                offsets = [0] * (0 if group is None else len(group.names))
                for name in names:
                    if group is None:
                        states[name] = None
                        continue
                    parts = []
                    for k, state_name in enumerate(group.names):
                        shape = self._state_shape(state_name, name)
                        size = int(np.prod(shape, dtype=np.int64))
                        parts.append(hosts[k][offsets[k]:offsets[k] + size].reshape(shape))
                        offsets[k] += size
                    states[name] = State(group.optimizer, name, group.names, parts, group.scalars)
            if index in done:
                counts.update(dict.fromkeys(names, done[index]))
        return checkpoint.dumps(self.optimizer, states, counts=counts, dump_optimizer=dump_optimizer,
                                multipliers=False)

    def _state_shape(self, state_name, name):
        """The shape of parameter ``name``'s part of the state array ``state_name``.

        The parameter's shape, but ``(rows, 1)`` for a per-row state of a
        layer-wise optimizer (GroupAdaGrad's history).
        """
        shape = dict((n, s) for n, _, s in self._layout)[name]
        if state_name in getattr(self.optimizer.rule, "segment_state", ()):
            return (self.optimizer.segment_shape(name, shape)[0], 1)
        return shape

    def load_states(self, data):
        """Restore what :meth:`save_states` returned (by any Trainer with these parameter names and shapes).

        Everything is checked before anything changes: a checkpoint of
        other parameters, of other sizes or of another optimizer is a
        ValueError and leaves the trainer as it was.
        """
        loaded = checkpoint.loads(data, self.optimizer)
        shapes = {name: shape for name, _, shape in self._layout}
        fail = "this checkpoint does not fit the Trainer: "
        unknown = sorted((set(loaded.states) | set(loaded.counts)) - set(shapes), key=str)
        if unknown:
            raise ValueError(f"{fail}it has parameters {unknown[:5]} that the Trainer does not have")
        if loaded.hyper is not None and any(loaded.hyper[k] is not None for k in ("lr_mult", "wd_mult", "idx2name")):
            raise ValueError(f"{fail}it holds multipliers by index (an Updater's get_states(dump_optimizer=True)); "
                             "a Trainer's multipliers are its own lr_mult/wd_mult, by parameter name")
        if loaded.states:
            trial = copy.copy(self.optimizer)
            loaded.apply_hyper(trial)
            trial._layouts = {}  # the probe is an empty 2-D array of its own, for the state names only
            probe = trial.create_state(0, _arrays.view(self.data, 0, (0, 0)))
        group_states, group_counts = {}, {}
        for index, (_, _, names) in enumerate(self._groups):
            counted = {loaded.counts[n] for n in names if n in loaded.counts}
            if len(counted) > 1 or (counted and len([n for n in names if n in loaded.counts]) != len(names)):
                raise ValueError(f"{fail}parameters {list(names)} are updated together here but have the "
                                 f"update counts {sorted(counted)} there")
            if counted:
                group_counts[index] = counted.pop()
            if not loaded.states:
                continue
            missing = [n for n in names if n not in loaded.states]
            if missing:
                raise ValueError(f"{fail}it has no state for the parameters {missing[:5]}")
            group_states[index] = self._group_state(index, names, loaded.states, shapes, probe, fail)
        self._updater._install(loaded, counts=group_counts, states=group_states)

    def _group_state(self, index, names, saved, shapes, probe, fail):
        """One group's state, from the per-parameter states of a checkpoint (checked against ``probe``)."""
        if probe is None:
            if any(saved[n] is not None for n in names):
                raise ValueError(f"{fail}it holds state arrays, this optimizer keeps none")
            return None
        dtype = _arrays.info(probe.arrays[0]).dtype if probe.arrays else None
        scalars = None
        for n in names:
            state = saved[n]
            if state is None or state.names != probe.names:
                raise ValueError(f"{fail}the state of {n!r} holds {None if state is None else state.names}, "
                                 f"this Trainer's optimizer keeps {probe.names}")
            for name, arr in zip(state.names, state.arrays):
                want = self._state_shape(name, n)
                if arr.shape != want or arr.dtype != dtype:
                    raise ValueError(f"{fail}state[{name!r}] of {n!r} is {arr.dtype} {arr.shape}, the parameter "
                                     f"needs {dtype} {want}")
            if scalars is not None and state.scalars != scalars:
                raise ValueError(f"{fail}parameters {list(names)} are updated together here but carry "
                                 f"different scalars there")
            scalars = state.scalars
        segment_state = getattr(self.optimizer.rule, "segment_state", ())
        arrays = [np.concatenate([saved[n].arrays[i].reshape(-1) for n in names]) for i in range(len(probe.names))]
        arrays = [a.reshape(-1, 1) if name in segment_state else a for name, a in zip(probe.names, arrays)]
        return State(probe.optimizer, index, probe.names, arrays, scalars)


def _check_unshared(optimizer):
    owner = _OWNERS.get(optimizer)
    if owner is not None and owner() is not None:
        raise ValueError("optimizer already belongs to another Trainer: it keeps that trainer's lr_mult/wd_mult "
                         "and step counts, which a second trainer would overwrite and share (Adam's bias "
                         "correction would count both). Give each Trainer its own optimizer, e.g. by name: "
                         "Trainer(params, 'adam', {...})")
    used = sorted(optimizer._index_update_count, key=str)
    if used:
        raise ValueError(f"optimizer has already updated the indices {used[:5]}; a Trainer numbers its "
                         "parameter groups 0, 1, ... and would continue those counts. Give it a fresh optimizer")
    if getattr(optimizer, "param_dict", None):
        raise ValueError("optimizer has a param_dict; a Trainer sets the multipliers itself "
                         "(pass lr_mult/wd_mult by parameter name to the Trainer)")
