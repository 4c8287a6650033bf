"""The optimizer base class and the registry.

The API follows ``mxnet.optimizer`` (1.9.1) so that MXNet code ports by
changing its import: ``create``, ``register``, ``opt_registry``,
``Optimizer.create_optimizer``/``Optimizer.register``, the base
constructor's arguments in MXNet's order (``rescale_grad`` first,
``param_dict`` and ``sym`` included), ``create_state`` (``None`` where MXNet
keeps no state), ``update``, ``*_multi_precision``, ``learning_rate``,
``num_update``, ``set_lr_mult``/``set_wd_mult`` and ``get_updater``.

An optimizer subclass gives three things: its update ``rule`` (an
:class:`~mxopt._engine.UpdateRule`), its hyperparameters (checked
:class:`~mxopt._checks.Hyper` attributes), and ``step_scalars``, the
per-step scalars its rule reads. Everything else (argument checks, counting,
learning-rate schedules, multi-precision, dispatch to the CPU or the GPU)
lives here, once.
"""
from __future__ import annotations

import copy
import numbers
import threading
import warnings

import numpy as np

from . import _arrays, _checks, _engine, _reduce
from ._checks import Hyper
from .state import State

#: Registered optimizer classes by lower-cased name (MXNet's ``opt_registry``).
opt_registry: dict[str, type] = {}
_REGISTRY = opt_registry


def register(klass):
    """Register an optimizer class under its lower-cased name (a decorator).

    Also reachable as ``Optimizer.register``, as in MXNet. Registering a
    different class under a taken name replaces it, with a warning.

    >>> from mxopt import SGD
    >>> @register
    ... class MySGD(SGD):
    ...     'SGD under a name of its own.'
    >>> type(create('mysgd', learning_rate=0.1)).__name__
    'MySGD'
    >>> del opt_registry['mysgd']   # (this example leaves the registry as it found it)
    """
    if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
        raise TypeError(f"register expects an Optimizer subclass, got {klass!r}")
    name = klass.__name__.lower()
    old = opt_registry.get(name)
    if old is not None and old is not klass:
        warnings.warn(f"optimizer {klass.__module__}.{klass.__name__} replaces "
                      f"{old.__module__}.{old.__name__} under the name {name!r}", stacklevel=2)
    opt_registry[name] = klass
    return klass


def create(name, **kwargs):
    """Create an optimizer by its registered name, e.g. ``create('adam', learning_rate=0.01)``."""
    if isinstance(name, Optimizer):
        if kwargs:
            raise TypeError("create(optimizer_instance) takes no keyword arguments")
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    klass = opt_registry.get(name.lower())
    if klass is None:
        raise ValueError(f"unknown optimizer {name!r}; registered: {sorted(opt_registry)}")
    return klass(**kwargs)


_CLIP_NOTE = ("; use None to turn clipping off (MXNet 1.9.1 treats 0 and negative values as off in "
              "SGD, NAG and Adam but clips every gradient to 0 in its Python-coded optimizers such as "
              "AdaGrad and Nadam, so mxopt refuses the ambiguous value)")


_MULTIPLIERS = _checks.table(_checks.multiplier, "multiplier")
_IDX2NAME = _checks.table(_checks.name_str, "name")
_PARAM_DICT = _checks.table(_checks.gluon_parameter, "parameter")


def _check_index(index):
    if isinstance(index, bool) or not isinstance(index, (int, np.integer, str)):
        raise TypeError(f"index must be an int or a str, got {type(index).__name__}")
    return int(index) if isinstance(index, np.integer) else index


class Optimizer:
    """Base class of mxopt's optimizers (MXNet's ``mx.optimizer.Optimizer``).

    The arguments come in MXNet 1.9.1's order, so positional calls port too.

    Args:
      rescale_grad: the gradient is multiplied by it first (``1/batch_size``
        in MXNet's Trainer), ``> 0``.
      param_idx2name: ``{index: name}``, for ``lr_mult`` and ``wd_mult``
        given by name; names not ending in ``_weight`` or ``_gamma`` get
        ``wd_mult = 0``, as in MXNet (the Module path).
      wd: weight decay (L2 penalty coefficient), ``>= 0``.
      clip_gradient: clip the rescaled gradient to ``[-c, c]``; ``None`` is
        off, a value ``<= 0`` is an error.
      learning_rate: step size; ``None`` means the class default (0.01 for
        SGD and NAG, 0.001 for Adam) or, with ``lr_scheduler``, the
        scheduler's ``base_lr``. A value that contradicts the scheduler's
        ``base_lr``, or comes with a scheduler that has none, is a
        ``ValueError`` (MXNet 1.9.1 prints a note and overwrites
        ``lr_scheduler.base_lr``).
      lr_scheduler: a function of ``num_update`` giving the learning rate,
        e.g. :class:`mxopt.lr_scheduler.FactorScheduler`. What it returns is
        checked at every update (a finite number ``>= 0``).
      sym: an MXNet Symbol (anything with ``attr_dict()`` and
        ``list_arguments()``): its arguments' ``__lr_mult__`` and
        ``__wd_mult__`` attributes become multipliers by name, as in MXNet.
      begin_num_update: the update count to start from.
      multi_precision: keep a float32 master copy of float16 weights (and
        run the update in float32). float16 weights require it.
      param_dict: ``{index: parameter}`` as MXNet's Gluon Trainer passes it:
        each parameter's ``lr_mult`` and ``wd_mult`` attributes, read at
        every update, take precedence over ``set_lr_mult``/``set_wd_mult``.

    An optimizer may be shared by threads: the read of an index's update
    count, the launch and the store of the new count happen under one lock
    per optimizer, so no update is lost or counted twice.
    """

    #: The update rule (an UpdateRule); subclasses set it or make it a property.
    rule: _engine.UpdateRule = None
    #: Learning rate used when none is given.
    default_learning_rate = 0.01
    #: Per-index scalars the optimizer carries from one update to the next,
    #: with their initial values (kept in ``State.scalars``; see :meth:`advance`).
    carried: dict = {}
    #: Step scalars for which ``inf`` means "off" (every other one must be finite).
    off_when_infinite = frozenset({"clip_gradient"})
    #: Step scalars passed in float64 whatever the compute dtype (a kernel that divides in
    #: double, as LAMB's ``m / (1 − β₁ᵗ)`` does in MXNet).
    float64_scalars = frozenset()

    lr = Hyper(_checks.at_least(0.0), "the base learning rate (without a scheduler)")
    wd = Hyper(_checks.at_least(0.0), "weight decay")
    rescale_grad = Hyper(_checks.at_least(0.0, strict=True), "gradient rescaling factor")
    clip_gradient = Hyper(_checks.optional(_checks.at_least(0.0, strict=True, note=_CLIP_NOTE)),
                          "gradient clipping bound")
    begin_num_update = Hyper(_checks.integer(0), "update count to start from")

    # Public attributes that MXNet code assigns directly (Gluon sets ``param_dict``), checked too.
    lr_scheduler = _checks.Checked(_checks.optional_callable, "the learning-rate schedule, or None")
    multi_precision = _checks.Checked(_checks.boolean, "keep a float32 master copy of float16 weights")
    num_update = _checks.Checked(_checks.integer(0), "the largest update count of any index")
    lr_mult = _checks.Checked(_MULTIPLIERS, "learning-rate multipliers by index or name")
    wd_mult = _checks.Checked(_MULTIPLIERS, "weight-decay multipliers by index or name")
    idx2name = _checks.Checked(_IDX2NAME, "parameter names by index")
    param_dict = _checks.Checked(_PARAM_DICT, "Gluon parameters by index, whose lr_mult/wd_mult come first")

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None,
                 learning_rate=None, lr_scheduler=None, sym=None, begin_num_update=0,
                 multi_precision=False, param_dict=None):
        lr_scheduler = _checks.optional_callable("lr_scheduler", lr_scheduler)
        if learning_rate is not None:  # checked under the name the caller used (stored as ``lr``)
            learning_rate = _checks.at_least(0.0)("learning_rate", learning_rate)
        if lr_scheduler is not None and learning_rate is not None:
            if not hasattr(lr_scheduler, "base_lr"):
                raise ValueError(
                    f"learning_rate={learning_rate!r} was given with an lr_scheduler that has no base_lr, "
                    "so it would have no effect: the scheduler alone sets the rate. Pass only one of them "
                    "(MXNet 1.9.1 would fail reading lr_scheduler.base_lr)")
            base = _checks.at_least(0.0)("lr_scheduler.base_lr", lr_scheduler.base_lr)
            if learning_rate != base:
                raise ValueError(
                    f"learning_rate={learning_rate!r} contradicts lr_scheduler.base_lr={base!r}. MXNet 1.9.1 "
                    "would print a note ('learning rate from lr_scheduler has been overwritten by "
                    "learning_rate in optimizer') and set the scheduler's base_lr to learning_rate, "
                    "changing a scheduler object that may be shared; mxopt refuses to pick one: pass only "
                    "one of them, or the same value")
        if learning_rate is None:
            learning_rate = getattr(lr_scheduler, "base_lr", self.default_learning_rate)
        param_idx2name = _IDX2NAME("param_idx2name", {} if param_idx2name is None else param_idx2name)
        param_dict = _PARAM_DICT("param_dict", {} if param_dict is None else param_dict)
        if sym is None:
            sym_info = ()
        elif callable(getattr(sym, "attr_dict", None)) and callable(getattr(sym, "list_arguments", None)):
            sym_info = (sym.attr_dict(), sym.list_arguments())
        else:
            raise TypeError(f"sym must be an MXNet Symbol (with attr_dict() and list_arguments()), "
                            f"got {type(sym).__name__}")
        self.lr = learning_rate
        self.wd = wd
        self.rescale_grad = rescale_grad
        self.clip_gradient = clip_gradient
        self.lr_scheduler = lr_scheduler
        self.multi_precision = multi_precision
        self.begin_num_update = begin_num_update
        self.num_update = self.begin_num_update
        self._index_update_count = {}
        self._lock = threading.RLock()
        self.idx2name = dict(param_idx2name)
        self.sym_info = sym_info
        self.param_dict = param_dict  # shared with the caller, as Gluon expects
        self.lr_mult = {}
        self.wd_mult = {}
        self.set_lr_mult({})
        self.set_wd_mult({})
        self._layouts = {}

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r}, wd={self.wd!r})"

    # -- copies: a fresh lock each; param_dict stays the caller's ----------
    #: Tables an optimizer changes in place (update counts, multipliers): a
    #: copy gets its own, so that updating one copy never counts for the other
    #: and a Trainer given a copy cannot change the original's multipliers.
    _OWN_TABLES = ("_index_update_count", "lr_mult", "wd_mult", "idx2name", "_layouts")

    def __copy__(self):
        new = type(self).__new__(type(self))
        state = self.__getstate__()
        state.update({name: dict(state[name]) for name in self._OWN_TABLES if name in state})
        new.__setstate__(state)
        return new

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state.pop("_plans", None)  # cached segment plans (device arrays): rebuilt on demand
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __deepcopy__(self, memo):
        memo[id(self.param_dict)] = self.param_dict
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    # -- MXNet's static names for the registry -------------------------------
    opt_registry = opt_registry
    register = staticmethod(register)

    @staticmethod
    def create_optimizer(name, **kwargs):
        """Create an optimizer by its registered name (MXNet's name for :func:`create`)."""
        return create(name, **kwargs)

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
        if self.lr_scheduler is None:
            return self.lr
        value = self.lr_scheduler(num_update)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"lr_scheduler({num_update}) returned {type(value).__name__} {value!r}; "
                            "a learning rate must be a real number")
        return _checks.multiplier(f"the learning rate lr_scheduler({num_update})", value)

    def _multipliers(self, label, args, sym_attr):
        """``args`` checked, after the ``sym`` attributes, as a new table."""
        if not isinstance(args, dict):
            raise TypeError(f"{label} must be a dict from index or name to multiplier, got {type(args).__name__}")
        table = {}
        if self.sym_info:
            attrs, arg_names = self.sym_info
            for name in arg_names:
                if name in attrs and sym_attr in attrs[name]:
                    what, value = f"sym attribute {sym_attr} of {name!r}", attrs[name][sym_attr]
                    if isinstance(value, str):  # MXNet stores attributes as strings
                        try:
                            value = float(value)
                        except ValueError:
                            raise ValueError(f"{what} must be a number, got {value!r}") from None
                    table[name] = _checks.multiplier(what, value)
        for k, value in args.items():
            k = _checks.key(f"{label} key", k)
            table[k] = _checks.multiplier(f"{label}[{k!r}]", value)
        return table

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers (finite, ``>= 0``), keyed by index or name."""
        self.lr_mult = self._multipliers("lr_mult", args_lr_mult, "__lr_mult__")

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers (finite, ``>= 0``), keyed by index or name.

        As in MXNet, a parameter named in ``param_idx2name`` whose name does
        not end in ``_weight`` or ``_gamma`` (a bias, say) gets ``wd_mult=0``.
        """
        table = self._multipliers("wd_mult", args_wd_mult, "__wd_mult__")
        self.wd_mult = {n: 0.0 for n in self.idx2name.values()
                        if not (n.endswith("_weight") or n.endswith("_gamma"))}
        self.wd_mult.update(table)

    def _mult(self, kind, index):
        """MXNet's lookup: ``param_dict[index]``, then the table by index, then by name."""
        if index in self.param_dict:
            return _checks.multiplier(f"param_dict[{index!r}].{kind}", getattr(self.param_dict[index], kind))
        table = getattr(self, kind)
        key = index if index in table else self.idx2name.get(index)
        if key is None or key not in table:
            return 1.0
        return _checks.multiplier(f"{kind}[{key!r}]", table[key])

    def _get_lr(self, index, num_update=None):
        n = self.num_update if num_update is None else num_update
        return self._lr_at(n) * self._mult("lr_mult", index)

    def _get_wd(self, index):
        return self.wd * self._mult("wd_mult", index)

    # -- what a subclass provides -----------------------------------------
    def step_scalars(self, index, t, lr, wd):
        """The per-step scalars of the rule, by argument name, as Python floats.

        ``t`` is this index's update count (1 at the first update), ``lr`` and
        ``wd`` already include the schedule and the multipliers. Subclasses
        extend the dict with their own hyperparameters; an optimizer with
        :attr:`carried` scalars also receives ``carried``, the values after
        this update (from :meth:`advance`).
        """
        return {"lr": lr, **self._gradient_scalars(wd)}

    def _gradient_scalars(self, wd):
        """How the rules read the gradient's treatment: ``wd``, ``rescale_grad`` and ``clip_gradient``
        (``None``, no clipping, as infinity: see :attr:`off_when_infinite`)."""
        clip = float("inf") if self.clip_gradient is None else self.clip_gradient
        return {"wd": wd, "rescale_grad": self.rescale_grad, "clip_gradient": clip}

    def advance(self, carried, t):
        """The :attr:`carried` scalars after update ``t``, from their values before it (pure)."""
        return carried

    # -- state ----------------------------------------------------------------
    def _master_needed(self, dtype):
        if dtype == np.float16 and not self.multi_precision:
            raise TypeError("float16 weights need multi_precision=True, so that the update runs in float32 "
                            "on a master copy. MXNet 1.9.1 would only warn and accumulate in float16, where "
                            "a step smaller than half a float16 spacing of the weight is lost; mxopt refuses")
        return dtype == np.float16

    def state_names(self, dtype):
        """The names of the state arrays for a weight of ``dtype``."""
        names = self.rule.state_names
        return names + ("weight32",) if self._master_needed(np.dtype(dtype)) else names

    # -- layer-wise optimizers: parameters, segments and the Trainer's layout ----------------------
    def set_layout(self, index, layout):
        """Say which parameters the array of ``index`` holds: ``[(name, shape), ...]`` in buffer order.

        A Trainer updates each group of parameters as one flat array; a
        layer-wise optimizer (LARS, LAMB, GroupAdaGrad) still computes its
        norms per parameter, and reads each parameter's name (LARS skips
        biases and normalisation parameters by name). Without a layout, the
        array of ``index`` is one parameter named ``idx2name[index]`` (or
        ``str(index)``) with the weight's shape. Element-wise optimizers
        ignore the layout.
        """
        index = _check_index(index)
        checked = []
        for item in layout:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"a layout entry must be (name, shape), got {item!r}")
            name, shape = item
            shape = tuple(int(n) for n in shape)
            if any(n < 0 for n in shape):
                raise ValueError(f"parameter {name!r} has a negative dimension in {shape}")
            checked.append((name, shape))
        self._layouts[index] = tuple(checked)

    def segment_shape(self, name, shape):
        """``(rows, cols)``: how a layer-wise rule cuts parameter ``name`` into segments (default one)."""
        return 1, int(np.prod(shape, dtype=np.int64))

    def segment_inputs(self, name):
        """The per-segment constants of parameter ``name`` (one per ``rule.segment_inputs``)."""
        return ()

    def _plan(self, index, shape):
        """``(Plan, per-segment inputs)`` of the layer-wise array of ``index`` with ``shape`` (cached)."""
        layout = self._layouts.get(index) or ((self.idx2name.get(index, str(index)), tuple(shape)),)
        plans = self.__dict__.setdefault("_plans", {})
        key = (index, layout, tuple(shape))
        if key in plans:
            return plans[key]
        total = sum(int(np.prod(s, dtype=np.int64)) for _, s in layout)
        size = int(np.prod(shape, dtype=np.int64))
        if total != size:
            raise ValueError(f"the layout of index {index!r} holds {total} elements ({len(layout)} parameters), "
                             f"its array {size}")
        starts, counts, inputs, offset = [], [], [], 0
        for name, pshape in layout:
            rows, cols = self.segment_shape(name, pshape)
            starts.append(offset + cols * np.arange(rows, dtype=np.int64))
            counts.append(np.full(rows, cols, np.int64))
            consts = tuple(self.segment_inputs(name))
            inputs.append(np.tile(np.asarray(consts, np.float64).reshape(-1, 1), (1, rows)) if consts
                          else np.zeros((0, rows)))
            offset += rows * cols
        plan = _reduce.Plan(np.concatenate(starts), np.concatenate(counts))
        per_segment = tuple(np.concatenate(inputs, axis=1)) if len(self.rule.segment_inputs) else ()
        if len(plans) > 64:
            plans.clear()
        plans[key] = plan, per_segment
        return plans[key]

    def _layerwise(self):
        return isinstance(self.rule, _reduce.LayerwiseRule)

    def _compute_dtype(self, dtype):
        """The dtype of the state and of the arithmetic for a weight of ``dtype``."""
        return np.dtype(np.float32) if self._master_needed(np.dtype(dtype)) else np.dtype(dtype)

    def create_state(self, index, weight):
        """Zero state for ``weight`` at ``index``, on the weight's device.

        ``None`` where MXNet keeps no state: no state arrays, no float32
        master copy and no carried scalars (SGD and NAG without momentum).
        """
        index = _check_index(index)
        w = _checks.array("weight", weight)
        rule = self.rule
        names = self.state_names(w.dtype)
        if not names and not self.carried:
            return None
        compute = self._compute_dtype(w.dtype)
        arrays = [_arrays.zeros(weight, w.shape, compute) for _ in getattr(rule, "element_state", rule.state_names)]
        if self._layerwise():
            rows = self._plan(index, w.shape)[0].n_segments
            arrays += [_arrays.zeros(weight, (rows, 1), compute) for _ in rule.segment_state]
        if "weight32" in names:
            master = _arrays.empty(weight, w.shape, np.float32)
            _arrays.copy_into(master, weight)
            arrays.append(master)
        return State(type(self).__name__, index, names, arrays, dict(self.carried))

    create_state_multi_precision = create_state

    # -- the update ------------------------------------------------------------
    def _checked(self, index, rule, weight, grad, state):
        """All checks of one update's arrays but their overlaps.

        Returns the compute dtype, the state arrays the rule reads, the
        master copy (or None) and every array as ``(name, ArrayInfo)`` for
        :func:`mxopt._checks.disjoint`.
        """
        w = _checks.array("weight", weight)
        _checks.writeable("weight", w)
        described = [("weight", w), ("grad", _checks.same_layout("grad", grad, w, "weight"))]
        names = self.state_names(w.dtype)
        compute = self._compute_dtype(w.dtype)
        if state is None and not names and not self.carried:
            return compute, (), None, described
        if not isinstance(state, State):
            hint = (f"; this optimizer needs the state arrays {names} now (was a hyperparameter such as "
                    "momentum changed after create_state?)") if state is None else ""
            raise TypeError(f"state must be the State returned by create_state, got {type(state).__name__}{hint}")
        if state.optimizer != type(self).__name__:
            raise ValueError(f"state was created by {state.optimizer}, not {type(self).__name__}")
        if state.index != index:
            raise ValueError(f"state belongs to index {state.index!r}, not {index!r}")
        if state.names != names:
            if {*state.names} ^ {*names} == {"weight32"}:
                why = ("a float32 master copy, made for a float16 weight with multi_precision=True" if
                       "weight32" in state.names else "no float32 master copy, which a float16 weight needs")
                raise ValueError(f"state holds {why}; this weight is {w.dtype} (state {state.names}, "
                                 f"needed {names})")
            raise ValueError(f"state holds {state.names}, this optimizer needs {names} "
                             "(was a hyperparameter such as momentum changed after create_state?)")
        if len(state.arrays) != len(names):
            raise ValueError(f"state holds {len(state.arrays)} arrays for its {len(names)} names {names}")
        missing = set(self.carried) - set(state.scalars)
        if missing:
            raise ValueError(f"state lacks the carried scalars {sorted(missing)}")
        per_segment = set(getattr(rule, "segment_state", ()))
        for name, arr in zip(state.names, state.arrays):
            per_row = (self._plan(index, w.shape)[0].n_segments, 1) if name in per_segment else None
            got = _checks.same_layout(f"state[{name!r}]", arr, w, "weight", compute, shape=per_row,
                                      shape_note=" (one value per row)")
            _checks.writeable(f"state[{name!r}]", got)
            described.append((f"state[{name!r}]", got))
        arrays = state.arrays[: len(rule.state_names)]
        master = state["weight32"] if "weight32" in names else None
        return compute, arrays, master, described

    def update(self, index, weight, grad, state):
        """Update ``weight`` (and ``state``) in place from ``grad``.

        As in MXNet, the four arguments may also be lists of equal length
        (an aggregated update of several parameters): every index is
        counted first, and every parameter then uses the learning rate at
        the resulting ``num_update``.

        Everything is checked first, for every parameter of a list: when
        this raises, the weights, the states and the update counters are as
        they were.
        """
        if isinstance(index, (list, tuple)):
            items = [weight, grad, state]
            for name, value in zip(("weight", "grad", "state"), items):
                if not isinstance(value, (list, tuple)) or len(value) != len(index):
                    raise TypeError(f"with a list of indices, {name} must be a list of the same length "
                                    f"({len(index)}), got {type(value).__name__}")
            self._update_all(list(zip(index, weight, grad, state)))
        else:
            self._update_all([(index, weight, grad, state)])

    def _update_all(self, items):
        """Check and plan every update, then launch them all, then count them."""
        with self._lock:
            rule, plans, counts, described = self.rule, [], {}, []
            for index, weight, grad, state in items:
                index = _check_index(index)
                if index in counts:
                    raise ValueError(f"index {index!r} appears twice in one update")
                dtype, arrays, master, arrays_of = self._checked(index, rule, weight, grad, state)
                if self._layerwise():  # the layout is checked (and planned) before anything changes
                    self._plan(index, arrays_of[0][1].shape)
                described += [(name if len(items) == 1 else f"{name} of index {index!r}", got)
                              for name, got in arrays_of]
                t = self._index_update_count.get(index, self.begin_num_update) + 1
                if t > _checks.INT64_MAX:
                    raise ValueError(f"the update count of index {index!r} would pass {_checks.INT64_MAX}")
                counts[index] = t
                plans.append((index, t, dtype, weight, grad, state, arrays, master))
            # No written array (weight, state) may share memory with any other array of the
            # update, the other parameters' included; gradients are only read.
            _checks.disjoint(described, read_only={name for name, _ in described if name.startswith("grad")})
            num_update = max([self.num_update, *counts.values()])
            self._num_update_now = num_update  # the count this call updates at (read by step_scalars)
            launches = []
            for index, t, dtype, weight, grad, state, arrays, master in plans:
                lr = self._get_lr(index, num_update)
                wd = self._get_wd(index)
                new = None
                if self.carried:
                    new = self.advance(dict(state.scalars), t)
                    if not isinstance(new, dict):
                        raise TypeError(f"{type(self).__name__}.advance must return a dict, got {type(new).__name__}")
                    for name in self.carried:
                        _checks.finite(f"carried scalar {name!r} after update {t}", new.get(name))
                args = self._rule_scalars(rule, dtype, index, t, lr, wd, new, num_update)
                launches.append((weight, grad, arrays, args, master, state, new))
            layerwise = self._layerwise()
            if not layerwise:  # what a launch would refuse, refused before the first one
                for weight, grad, arrays, args, master, *_ in launches:
                    _engine.check(rule, weight, grad, arrays, args, master=master)
            for (index, *_), (weight, grad, arrays, args, master, state, new) in zip(plans, launches):
                if layerwise:
                    plan, inputs = self._plan(index, _arrays.info(weight).shape)
                    n = len(rule.element_state)
                    _reduce.launch(rule, plan, weight, grad, arrays[:n], arrays[n:], inputs, args, master=master)
                else:
                    _engine.launch(rule, weight, grad, arrays, args, master=master)
                if new is not None:
                    state.scalars.update({name: float(new[name]) for name in self.carried})
            self._index_update_count.update(counts)
            self.num_update = num_update

    update_multi_precision = update

    def _wide(self, args, scalars, names):
        """``args`` with the :attr:`float64_scalars` as float64 (checked in the compute dtype already)."""
        if not self.float64_scalars:
            return args
        return tuple(np.float64(scalars[n]) if n in self.float64_scalars else a for n, a in zip(names, args))

    def _rule_scalars(self, rule, dtype, index, t, lr, wd, carried, num_update):
        """The rule's per-step scalars, checked and converted to the compute ``dtype``."""
        def scalars_at(lr):
            extra = {} if carried is None else {"carried": carried}
            return self.step_scalars(index=index, t=t, lr=lr, wd=wd, **extra)

        scalars, names = scalars_at(lr), rule.scalar_names
        try:
            return self._wide(_checks.step_scalars(scalars, names, dtype, self.off_when_infinite), scalars, names)
        except ValueError as e:
            error = e
        if self.lr_scheduler is not None and lr > 0:
            # A schedule that decays (Exp, or FactorScheduler with stop_factor_lr=0) ends below
            # the dtype's range: the step sizes (the scalars that vanish with the learning rate)
            # then round to 0, the step MXNet takes too. Every other scalar must still fit.
            try:
                at_zero = scalars_at(0.0)
                vanish = {name for name in names if at_zero.get(name) == 0}
                return self._wide(_checks.step_scalars(scalars, names, dtype, self.off_when_infinite, vanish),
                                  scalars, names)
            except (ArithmeticError, ValueError) as e:
                error = e if isinstance(e, ValueError) else error
        source = f"lr_scheduler({num_update})" if self.lr_scheduler is not None else f"learning_rate={self.lr!r}"
        raise ValueError(f"{error} [{type(self).__name__}'s update {t} of index {index!r}: learning rate {lr!r} "
                         f"from {source} × lr_mult, wd {wd!r} (wd × wd_mult), "
                         f"rescale_grad={self.rescale_grad!r}]") from None
