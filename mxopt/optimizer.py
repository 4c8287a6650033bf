"""The optimizer base class and the registry.

The API follows ``mxnet.optimizer`` (1.9.1) so that MXNet code ports by
changing its import: ``create``, ``register``, ``Optimizer.create_state``,
``update``, ``*_multi_precision``, ``learning_rate``, ``num_update``,
``set_lr_mult``/``set_wd_mult`` and ``get_updater``.

An optimizer subclass gives three things: its update ``rule`` (an
:class:`~mxopt._engine.UpdateRule`), its hyperparameters (checked
:class:`~mxopt._checks.Hyper` attributes), and ``step_scalars``, the
per-step scalars its rule reads. Everything else (argument checks, counting,
learning-rate schedules, multi-precision, dispatch to the CPU or the GPU)
lives here, once.
"""
from __future__ import annotations

import math

import numpy as np

from . import _arrays, _checks, _engine
from ._checks import Hyper
from .state import State

_REGISTRY: dict[str, type] = {}


def register(klass):
    """Register an optimizer class under its lower-cased name (a decorator).

    >>> @register
    ... class MySGD(Optimizer): ...
    >>> create('mysgd')   # doctest: +SKIP
    """
    if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
        raise TypeError(f"register expects an Optimizer subclass, got {klass!r}")
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def create(name, **kwargs):
    """Create an optimizer by its registered name, e.g. ``create('adam', learning_rate=0.01)``."""
    if isinstance(name, Optimizer):
        if kwargs:
            raise TypeError("create(optimizer_instance) takes no keyword arguments")
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    klass = _REGISTRY.get(name.lower())
    if klass is None:
        raise ValueError(f"unknown optimizer {name!r}; registered: {sorted(_REGISTRY)}")
    return klass(**kwargs)


def _check_index(index):
    if isinstance(index, bool) or not isinstance(index, (int, np.integer, str)):
        raise TypeError(f"index must be an int or a str, got {type(index).__name__}")
    return int(index) if isinstance(index, np.integer) else index


class Optimizer:
    """Base class of mxopt's optimizers (MXNet's ``mx.optimizer.Optimizer``).

    Args:
      learning_rate: step size; ``None`` means the class default (0.01 for
        SGD and NAG, 0.001 for Adam) or, with ``lr_scheduler``, the
        scheduler's ``base_lr``. A value that contradicts the scheduler's
        ``base_lr`` is a ``ValueError`` (MXNet silently overwrites it).
      wd: weight decay (L2 penalty coefficient), ``>= 0``.
      rescale_grad: the gradient is multiplied by it first (``1/batch_size``
        in MXNet's Trainer), ``> 0``.
      clip_gradient: clip the rescaled gradient to ``[-c, c]``; ``None`` is
        off, a value ``<= 0`` is an error.
      lr_scheduler: a function of ``num_update`` giving the learning rate,
        e.g. :class:`mxopt.lr_scheduler.FactorScheduler`.
      multi_precision: keep a float32 master copy of float16 weights (and
        run the update in float32). float16 weights require it.
      begin_num_update: the update count to start from.
      param_idx2name: maps indices to parameter names, for ``lr_mult`` and
        ``wd_mult`` given by name; names not ending in ``_weight`` or
        ``_gamma`` get ``wd_mult = 0``, as in MXNet.
    """

    #: The update rule (an UpdateRule); subclasses set it or make it a property.
    rule: _engine.UpdateRule = None
    #: Learning rate used when none is given.
    default_learning_rate = 0.01

    lr = Hyper(_checks.at_least(0.0), "the base learning rate (without a scheduler)")
    wd = Hyper(_checks.at_least(0.0), "weight decay")
    rescale_grad = Hyper(_checks.at_least(0.0, strict=True), "gradient rescaling factor")
    clip_gradient = Hyper(_checks.optional(_checks.at_least(0.0, strict=True)), "gradient clipping bound")
    begin_num_update = Hyper(_checks.integer(0), "update count to start from")

    def __init__(self, learning_rate=None, wd=0.0, rescale_grad=1.0, clip_gradient=None,
                 lr_scheduler=None, multi_precision=False, begin_num_update=0,
                 param_idx2name=None):
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise TypeError(f"lr_scheduler must be callable, got {type(lr_scheduler).__name__}")
        if lr_scheduler is not None and learning_rate is not None:
            base = getattr(lr_scheduler, "base_lr", learning_rate)
            if not math.isclose(float(learning_rate), float(base), rel_tol=1e-12, abs_tol=0.0):
                raise ValueError(
                    f"learning_rate={learning_rate!r} contradicts lr_scheduler.base_lr={base!r}; "
                    "pass one of them (MXNet 1.9.1 would silently overwrite the scheduler's base_lr)")
        if learning_rate is None:
            learning_rate = getattr(lr_scheduler, "base_lr", self.default_learning_rate)
        if param_idx2name is not None and not isinstance(param_idx2name, dict):
            raise TypeError("param_idx2name must be a dict from index to name")
        self.lr = learning_rate
        self.wd = wd
        self.rescale_grad = rescale_grad
        self.clip_gradient = clip_gradient
        self.lr_scheduler = lr_scheduler
        self.multi_precision = bool(multi_precision)
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        self._index_update_count = {}
        self.idx2name = dict(param_idx2name or {})
        self.lr_mult = {}
        self.wd_mult = {}
        self.set_wd_mult({})

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}, wd={self.wd!r})"

    # -- learning rate and multipliers (MXNet names) ----------------------
    @property
    def learning_rate(self):
        """The learning rate at the current ``num_update`` (before ``lr_mult``)."""
        return self._lr_at(self.num_update)

    @learning_rate.setter
    def learning_rate(self, value):
        self.set_learning_rate(value)

    def set_learning_rate(self, lr):
        """Set the base learning rate; not allowed with an ``lr_scheduler``."""
        if self.lr_scheduler is not None:
            raise ValueError("this optimizer has an lr_scheduler; change the scheduler instead")
        self.lr = lr

    def _lr_at(self, num_update):
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(num_update))
        return self.lr

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers, keyed by index or name."""
        self.lr_mult = dict(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers, keyed by index or name.

        As in MXNet, a parameter named in ``param_idx2name`` whose name does
        not end in ``_weight`` or ``_gamma`` (a bias, say) gets ``wd_mult=0``.
        """
        self.wd_mult = {n: 0.0 for n in self.idx2name.values()
                        if not (n.endswith("_weight") or n.endswith("_gamma"))}
        self.wd_mult.update(args_wd_mult)

    def _mult(self, table, index):
        if index in table:
            return table[index]
        return table.get(self.idx2name.get(index), 1.0)

    def _get_lr(self, index, num_update=None):
        n = self.num_update if num_update is None else num_update
        return self._lr_at(n) * self._mult(self.lr_mult, index)

    def _get_wd(self, index):
        return self.wd * self._mult(self.wd_mult, index)

    # -- what a subclass provides -----------------------------------------
    def step_scalars(self, index, t, lr, wd):
        """The per-step scalars of the rule, by argument name, as Python floats.

        ``t`` is this index's update count (1 at the first update), ``lr`` and
        ``wd`` already include the schedule and the multipliers. Subclasses
        extend the dict with their own hyperparameters.
        """
        clip = math.inf if self.clip_gradient is None else self.clip_gradient
        return {"lr": lr, "wd": wd, "rescale_grad": self.rescale_grad, "clip_gradient": clip}

    # -- state ----------------------------------------------------------------
    def _master_needed(self, dtype):
        if dtype == np.float16 and not self.multi_precision:
            raise TypeError("float16 weights need multi_precision=True "
                            "(the update runs in float32 on a master copy)")
        return dtype == np.float16

    def state_names(self, dtype):
        """The names of the state arrays for a weight of ``dtype``."""
        names = self.rule.state_names
        return names + ("weight32",) if self._master_needed(np.dtype(dtype)) else names

    def _compute_dtype(self, dtype):
        """The dtype of the state and of the arithmetic for a weight of ``dtype``."""
        return np.dtype(np.float32) if self._master_needed(np.dtype(dtype)) else np.dtype(dtype)

    def create_state(self, index, weight):
        """Zero state for ``weight`` at ``index``, on the weight's device."""
        index = _check_index(index)
        w = _checks.array("weight", weight)
        names = self.state_names(w.dtype)
        compute = self._compute_dtype(w.dtype)
        arrays = [_arrays.zeros(weight, w.shape, compute) for _ in self.rule.state_names]
        if "weight32" in names:
            master = _arrays.empty(weight, w.shape, np.float32)
            _arrays.copy_into(master, weight)
            arrays.append(master)
        return State(type(self).__name__, index, names, arrays)

    create_state_multi_precision = create_state

    # -- the update ------------------------------------------------------------
    def _checked(self, index, weight, grad, state):
        """All checks of an update; returns (compute dtype, state arrays, master)."""
        w = _checks.array("weight", weight)
        _checks.writeable("weight", w)
        _checks.same_layout("grad", grad, w, "weight")
        names = self.state_names(w.dtype)
        compute = self._compute_dtype(w.dtype)
        if state is None and not names:
            return compute, (), None
        if not isinstance(state, State):
            raise TypeError(f"state must be the State returned by create_state, got {type(state).__name__}")
        if state.optimizer != type(self).__name__:
            raise ValueError(f"state was created by {state.optimizer}, not {type(self).__name__}")
        if state.index != index:
            raise ValueError(f"state belongs to index {state.index!r}, not {index!r}")
        if state.names != names:
            raise ValueError(f"state holds {state.names}, this optimizer needs {names} "
                             "(was a hyperparameter such as momentum changed after create_state?)")
        for name, arr in zip(state.names, state.arrays):
            _checks.writeable(f"state[{name!r}]", _checks.same_layout(f"state[{name!r}]", arr, w, "weight", compute))
        arrays = state.arrays[: len(self.rule.state_names)]
        master = state["weight32"] if "weight32" in names else None
        return compute, arrays, master

    def update(self, index, weight, grad, state):
        """Update ``weight`` (and ``state``) in place from ``grad``.

        Everything is checked first: when this raises, the weight, the state
        and the update counters are as they were.
        """
        index = _check_index(index)
        dtype, arrays, master = self._checked(index, weight, grad, state)
        t = self._index_update_count.get(index, self.begin_num_update) + 1
        num_update = max(t, self.num_update)
        lr = self._get_lr(index, num_update)
        scalars = self.step_scalars(index=index, t=t, lr=lr, wd=self._get_wd(index))
        _engine.launch(self.rule, weight, grad, arrays, scalars, dtype, master=master)
        self._index_update_count[index] = t
        self.num_update = num_update

    update_multi_precision = update
