"""Optimizer states as bytes: a safetensors file, never pickle.

A checkpoint is a `safetensors <https://github.com/huggingface/safetensors>`_
file (an 8-byte header length, a JSON header naming every tensor with its
dtype, shape and byte range, then the tensors' bytes), readable by any tool
that reads safetensors. It holds:

* one tensor per state array, named ``<key>/<state name>`` (``0/mean``,
  ``fc_weight/var``, ``conv_weight/weight32``), with the dtype and shape of
  the state: the key is the Updater's index, or the parameter's name for a
  :class:`~mxopt.Trainer`;
* in the string metadata, under ``"mxopt"``, one JSON document: the
  optimizer's class name, ``num_update``, every index's update count, for
  each state its array names, dtype, shape and per-index scalars (``null``
  for an index whose state is ``None``), optionally the optimizer's
  hyperparameters (``dump_optimizer=True``), and the SHA-256 of that
  document and of every tensor's bytes.

Loading only parses JSON and copies bytes into new float arrays, so a
checkpoint can never run code. The digest proves integrity, not sense
(anyone can recompute it), so every field is checked on its own as well:
types, ranges, finiteness, that each state has a count, that the arrays fit
the optimizer. Anything wrong is a ``ValueError`` and nothing is returned
half-built.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import numbers
import struct

import numpy as np

from . import _arrays, _checks, lr_scheduler
from ._checks import Hyper
from .optimizer import _check_index
from .state import State

#: The version of the JSON document in the metadata.
VERSION = 2
_FORMAT = "mxopt.states"
#: safetensors' dtype codes of the arrays a state may hold (the compute dtypes).
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
_DTYPE_NAMES = {"float32": "F32", "float64": "F64"}
_MAX_HEADER = 100_000_000  # safetensors' own limit on the header


class Checkpoint:
    """What :func:`loads` found: every field checked, nothing applied yet.

    ``states`` maps keys to :class:`State` (NumPy arrays) or ``None``;
    ``counts`` maps keys to update counts; ``hyper`` is ``None`` or the
    checked hyperparameters, applied to an optimizer by :meth:`apply_hyper`.
    """

    def __init__(self, states, counts, num_update, hyper):
        self.states = states
        self.counts = counts
        self.num_update = num_update
        self.hyper = hyper

    def apply_hyper(self, optimizer):
        """Set the saved hyperparameters on ``optimizer`` (all checked already)."""
        if self.hyper is None:
            return
        for name, value in {**self.hyper["values"], **self.hyper["flags"]}.items():
            setattr(optimizer, name, value)
        optimizer.lr_scheduler = self.hyper["lr_scheduler"]
        for attr in ("lr_mult", "wd_mult", "idx2name"):
            if self.hyper[attr] is not None:
                setattr(optimizer, attr, dict(self.hyper[attr]))


# -- saving -------------------------------------------------------------------
def _canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def _digest(doc, raw_arrays):
    h = hashlib.sha256(_canonical(doc).encode())
    for raw in raw_arrays:
        h.update(raw)
    return h.hexdigest()


def _hyper_values(klass):
    """The :class:`Hyper` descriptors of an optimizer class, base class first."""
    seen = {}
    for k in reversed(klass.__mro__):
        for name, attr in vars(k).items():
            if isinstance(attr, Hyper):
                seen[name] = attr
    return seen


#: Constructor arguments that a schedule stores under another attribute name.
_SCHEDULE_ALIASES = {"pwr": "power"}


def _schedule_params(sched):
    """``{'class': name, 'params': {...}}`` for an mxopt schedule, else a ValueError.

    Saved only when the schedule's constructor, given these parameters,
    rebuilds an equal schedule.
    """
    klass = type(sched)
    refuse = (f"dump_optimizer=True cannot save lr_scheduler={sched!r} without pickle: only "
              "mxopt.lr_scheduler's schedules are saved, as class and parameters; save without "
              "dump_optimizer and create the optimizer with its schedule again")
    if klass.__module__ != lr_scheduler.__name__ or getattr(lr_scheduler, klass.__name__, None) is not klass:
        raise ValueError(refuse)
    params = {}
    for p in list(inspect.signature(klass.__init__).parameters.values())[1:]:
        attr = p.name if hasattr(sched, p.name) else _SCHEDULE_ALIASES.get(p.name)
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) or attr is None or not hasattr(sched, attr):
            raise ValueError(refuse)
        params[p.name] = getattr(sched, attr)
    try:
        _canonical(params)
        same = vars(klass(**params)) == vars(sched)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(refuse)
    return {"class": klass.__name__, "params": params}


def _flags(optimizer):
    """The optimizer's public on/off settings (``multi_precision``, ``centered``, ``correct_bias``...)."""
    return {k: v for k, v in vars(optimizer).items() if isinstance(v, bool) and not k.startswith("_")}


def _pairs(table):
    return [[k, v] for k, v in table.items()]


def _hyper_doc(optimizer, multipliers):
    values = {}
    for name in _hyper_values(type(optimizer)):
        value = getattr(optimizer, name)
        if not (value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                  and math.isfinite(value))):
            raise ValueError(f"dump_optimizer=True cannot save {name}={value!r}")
        values[name] = value if value is None or isinstance(value, int) else float(value)
    sched = optimizer.lr_scheduler
    return {
        "values": values,
        "flags": _flags(optimizer),
        "lr_scheduler": None if sched is None else _schedule_params(sched),
        "lr_mult": _pairs(optimizer.lr_mult) if multipliers else None,
        "wd_mult": _pairs(optimizer.wd_mult) if multipliers else None,
        "idx2name": _pairs(optimizer.idx2name) if multipliers else None,
    }


def tensor_name(key, name):
    """The tensor name of state array ``name`` of ``key`` (an index or a parameter name)."""
    return f"{key}/{name}"


def dumps(optimizer, states, counts=None, num_update=None, dump_optimizer=False, multipliers=True):
    """Serialise ``states`` (key -> State or None), the update counts and ``num_update``.

    ``counts`` and ``num_update`` default to the optimizer's own.
    ``dump_optimizer=True`` adds its hyperparameters (with its multipliers
    unless ``multipliers=False``: the Trainer sets those itself).
    """
    from safetensors.numpy import save

    counts = optimizer._index_update_count if counts is None else counts
    entries, tensors, raws = [], {}, []
    for key, state in states.items():
        if state is None:
            entries.append({"key": key, "state": None})
            continue
        hosts = [np.array(_arrays.to_host(a), copy=True, order="C") for a in state.arrays]
        for name, host in zip(state.names, hosts):
            if not np.isfinite(host).all():  # the loader refuses these: say so now, not at load time
                raise ValueError(f"state[{name!r}] of {key!r} holds NaN or infinity (a diverged update?); "
                                 "a checkpoint holds finite numbers only")
        dtypes = {h.dtype for h in hosts}
        shapes = {h.shape for h in hosts}
        if len(dtypes) > 1 or len(shapes) > 1:
            raise ValueError(f"state {key!r} mixes dtypes {dtypes} or shapes {shapes}")
        for name, host in zip(state.names, hosts):
            tname = tensor_name(key, name)
            if tname in tensors:
                raise ValueError(f"two keys give the tensor name {tname!r}; rename one parameter")
            tensors[tname] = host.astype(host.dtype.newbyteorder("<"), copy=False)
            raws.append(tensors[tname].tobytes())
        probe = hosts[0] if hosts else np.zeros(0, np.float32)
        entries.append({"key": key, "state": {
            "names": list(state.names), "dtype": probe.dtype.name if hosts else None,
            "shape": list(probe.shape) if hosts else None, "scalars": dict(state.scalars)}})
    doc = {
        "format": _FORMAT,
        "version": VERSION,
        "optimizer": type(optimizer).__name__,
        "num_update": optimizer.num_update if num_update is None else num_update,
        "index_update_count": _pairs(counts),
        "states": entries,
        "hyperparameters": _hyper_doc(optimizer, multipliers) if dump_optimizer else None,
    }
    doc["sha256"] = _digest(doc, raws)
    return save(tensors, metadata={"mxopt": _canonical(doc)})


# -- loading --------------------------------------------------------------------
class _Invalid(ValueError):
    pass


def _fail(why):
    raise _Invalid(why)


def _no_constant(token):
    _fail(f"the header holds {token}, which JSON does not allow")


def _unique_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            _fail(f"the header repeats the key {k!r}")
        out[k] = v
    return out


def _parse_json(text, what):
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        _fail(f"{what} is nested too deeply")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        _fail(f"{what} is not valid JSON ({e})")


def _fields(obj, keys, what):
    if not isinstance(obj, dict) or set(obj) != set(keys):
        _fail(f"{what} must be an object with the fields {sorted(keys)}, got {_show(obj)}")
    return [obj[k] for k in keys]


def _show(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _checks.INT64_MAX:
        _fail(f"{what} must be an integer in [0, 2**63 - 1], got {_show(value)}")
    return value


def _key(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        _fail(f"{what} must be an int index or a str name, got {_show(value)}")
    return _check_index(value)


def _finite(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(f"{what} must be a finite number, got {_show(value)}")
    return float(value)


def _table(pairs, what, check_value):
    if not isinstance(pairs, list):
        _fail(f"{what} must be a list of [key, value] pairs")
    out = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            _fail(f"{what} must be a list of [key, value] pairs, got {_show(pair)}")
        key = _key(pair[0], f"a key of {what}")
        if key in out:
            _fail(f"{what} repeats the key {key!r}")
        out[key] = check_value(pair[1], f"{what}[{key!r}]")
    return out


def _safetensors_header(data):
    """The raw safetensors header of ``data`` (its length is checked by safetensors too)."""
    if len(data) < 8:
        _fail("truncated")
    (n,) = struct.unpack_from("<Q", data)
    if n > min(_MAX_HEADER, len(data) - 8):
        _fail("header length out of range")
    return _parse_json(bytes(data[8:8 + n]).decode("utf-8"), "the safetensors header")


def _schedule(doc):
    if doc is None:
        return None
    klass_name, params = _fields(doc, ("class", "params"), "hyperparameters.lr_scheduler")
    klass = getattr(lr_scheduler, klass_name, None) if isinstance(klass_name, str) else None
    if not (isinstance(klass, type) and klass.__module__ == lr_scheduler.__name__
            and not klass_name.startswith("_") and klass_name != "LRScheduler"):
        _fail(f"unknown lr_scheduler class {_show(klass_name)}")
    if not isinstance(params, dict):
        _fail("hyperparameters.lr_scheduler.params must be an object")
    try:
        return klass(**params)
    except (TypeError, ValueError, OverflowError) as e:
        _fail(f"lr_scheduler {klass_name} rejects its saved parameters ({e})")


def _hyper(doc, optimizer):
    if doc is None:
        return None
    keys = ("values", "flags", "lr_scheduler", "lr_mult", "wd_mult", "idx2name")
    values, flags, sched, lr_mult, wd_mult, idx2name = _fields(doc, keys, "hyperparameters")
    descriptors = _hyper_values(type(optimizer))
    if not isinstance(values, dict) or set(values) != set(descriptors):
        _fail(f"hyperparameters.values must name exactly {sorted(descriptors)}, got {_show(values)}")
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = descriptors[name].check(name, value)
        except (TypeError, ValueError) as e:
            _fail(f"hyperparameter {e}")
    mine = _flags(optimizer)
    if not isinstance(flags, dict) or set(flags) != set(mine) or not all(isinstance(v, bool) for v in flags.values()):
        _fail(f"hyperparameters.flags must give true or false for exactly {sorted(mine)}, got {_show(flags)}")

    def multiplier(value, what):
        try:
            return _checks.multiplier(what, value)
        except (TypeError, ValueError) as e:
            _fail(str(e))

    def name(value, what):
        if not isinstance(value, str):
            _fail(f"{what} must be a str, got {_show(value)}")
        return value

    return {
        "values": checked, "flags": flags, "lr_scheduler": _schedule(sched),
        "lr_mult": None if lr_mult is None else _table(lr_mult, "hyperparameters.lr_mult", multiplier),
        "wd_mult": None if wd_mult is None else _table(wd_mult, "hyperparameters.wd_mult", multiplier),
        "idx2name": None if idx2name is None else _table(idx2name, "hyperparameters.idx2name", name),
    }


def _state_arrays(optimizer_name, key, spec, allowed, carried, tensors):
    names, dtype, shape, scalars = _fields(spec, ("names", "dtype", "shape", "scalars"), f"state {key!r}")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or tuple(names) not in allowed:
        _fail(f"state {key!r} holds {_show(names)}; {optimizer_name} with these hyperparameters "
              f"keeps {' or '.join(str(list(a)) for a in allowed)}")
    names = tuple(names)
    if not names:  # a state of scalars only
        if dtype is not None or shape is not None:
            _fail(f"state {key!r} has no arrays, so no dtype or shape")
    elif dtype not in _DTYPE_NAMES or ("weight32" in names and dtype != "float32"):
        _fail(f"state {key!r} has dtype {_show(dtype)}; states are float32 or float64 "
              "(float32 with a weight32 master copy)")
    elif not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in shape):
        _fail(f"state {key!r} has shape {_show(shape)}, not a list of non-negative integers")
    if not isinstance(scalars, dict) or set(scalars) != set(carried):
        _fail(f"state {key!r} carries the scalars {_show(scalars)}; {optimizer_name} carries {sorted(carried)}")
    scalars = {k: _finite(v, f"state {key!r} scalar {k!r}") for k, v in scalars.items()}
    want = np.dtype(dtype).newbyteorder("<")
    arrays = []
    for name in names:
        tname = tensor_name(key, name)
        tensor = tensors.pop(tname, None)
        if tensor is None:
            _fail(f"the tensor {tname!r} is missing")
        if _DTYPES.get(tensor["dtype"]) != want or tensor["shape"] != shape:
            _fail(f"the tensor {tname!r} is {tensor['dtype']} {tensor['shape']}, the header says {dtype} {shape}")
        raw = tensor["data"]
        if len(raw) != math.prod(shape) * want.itemsize:
            _fail(f"the tensor {tname!r} has {len(raw)} bytes for shape {shape}")
        array = np.frombuffer(raw, want).reshape(shape)
        if not np.isfinite(array).all():
            _fail(f"the tensor {tname!r} holds NaN or infinity")
        arrays.append(array if array.flags.writeable else array.copy())
    return names, arrays, scalars


def loads(data, optimizer):
    """Parse and check a checkpoint for ``optimizer``; returns a :class:`Checkpoint`.

    Raises ValueError for anything corrupted, truncated, inconsistent or
    made by another optimizer; the optimizer is not touched.
    """
    from safetensors import SafetensorError, deserialize

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        try:
            tensors = {name: spec for name, spec in deserialize(data)}
        except SafetensorError as e:
            _fail(f"not a safetensors file ({e})")
        header = _safetensors_header(data)
        metadata = header.get("__metadata__") if isinstance(header, dict) else None
        if not isinstance(metadata, dict) or set(metadata) != {"mxopt"} or not isinstance(metadata["mxopt"], str):
            _fail("no mxopt metadata (not made by get_states)")
        text = metadata["mxopt"]
        doc = _parse_json(text, "the mxopt metadata")
        if not isinstance(doc, dict) or _canonical(doc) != text:
            _fail("the mxopt metadata is not in canonical form (edited or corrupted)")
        keys = ("format", "version", "optimizer", "num_update", "index_update_count", "states",
                "hyperparameters", "sha256")
        fmt, version, opt_name, num_update, counts, entries, hyper, digest = _fields(doc, keys, "the mxopt metadata")
        if fmt != _FORMAT or version != VERSION:
            _fail(f"format {_show(fmt)} version {_show(version)}; this mxopt reads {_FORMAT} version {VERSION}")
        if not isinstance(entries, list):
            _fail("states must be a list")
        claimed = {k: v for k, v in doc.items() if k != "sha256"}
        order = []
        for entry in entries:
            key, spec = _fields(entry, ("key", "state"), "a state entry")
            if isinstance(spec, dict) and isinstance(spec.get("names"), list):
                order += [tensor_name(key, n) for n in spec["names"] if isinstance(n, str)]
        if any(name not in tensors for name in order) or len(set(order)) != len(tensors):
            _fail("the tensors do not match the states listed in the metadata")
        if digest != _digest(claimed, (bytes(tensors[n]["data"]) for n in order)):
            _fail("checksum mismatch (the data is corrupted or was edited)")

        # The digest only proves that nothing changed since it was computed:
        # check every field for sense as well.
        mine = type(optimizer).__name__
        if opt_name != mine:
            _fail(f"checkpoint is for {opt_name[:80] if isinstance(opt_name, str) else _show(opt_name)}, not {mine}")
        num_update = _count(num_update, "num_update")
        counts = _table(counts, "index_update_count", _count)
        hyper = _hyper(hyper, optimizer)
        if hyper is not None:  # the state names may depend on the saved hyperparameters
            trial = copy.copy(optimizer)
            for name, value in {**hyper["values"], **hyper["flags"]}.items():
                setattr(trial, name, value)
        else:
            trial = optimizer
        rule_names = tuple(trial.rule.state_names)
        # A float32 master copy is kept only for float16 weights, which need multi_precision=True.
        allowed = (rule_names, rule_names + ("weight32",)) if trial.multi_precision else (rule_names,)
        carried = dict(getattr(trial, "carried", {}) or {})
        states = {}
        for entry in entries:
            key, spec = entry["key"], entry["state"]
            key = _key(key, "a state's key")
            if key in states:
                _fail(f"two states for the key {key!r}")
            if counts.get(key, 0) < 1:  # a state exists only after an update (t counts from 1)
                _fail(f"state {key!r} has no update count (a saved state needs a count >= 1, "
                      f"got {counts.get(key)})")
            if spec is None:
                states[key] = None
                continue
            names, arrays, scalars = _state_arrays(mine, key, spec, allowed, carried, tensors)
            states[key] = State(mine, key, names, arrays, scalars)
        if tensors:
            _fail(f"tensors {sorted(tensors)[:5]} belong to no state")
    except _Invalid as e:
        raise ValueError(f"not a valid mxopt checkpoint: {e}") from None
    except (KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:  # a check this module lacks
        raise ValueError(f"not a valid mxopt checkpoint: malformed ({type(e).__name__}: {e})") from None
    return Checkpoint(states, counts, num_update, hyper)
