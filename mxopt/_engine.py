"""One update rule, two targets.

Every optimizer writes its arithmetic once, as a plain Python function of one
element (an *update rule*)::

    def rule(w, g, state_1, ..., state_k, scalar_1, ..., scalar_m):
        ...
        return w, state_1, ..., state_k      # just ``w`` when k == 0

Its first ``2 + k`` arguments are the weight, the gradient and the ``k``
state values of one element; the rest are per-step scalars, the same for
every element. From that one function this module generates

* a CPU kernel: ``numba.njit(parallel=True)`` over ``prange``, which LLVM
  vectorises (``error_model='numpy'`` so divisions do not block it), with a
  one-core twin for arrays below :data:`CPU_PARALLEL_THRESHOLD`, and
* a CUDA kernel: ``numba.cuda.jit`` with a grid-stride loop, plus a
  multi-precision variant that reads a float16 gradient, updates the float32
  master weight and writes the float16 weight in the same pass.

Both kernels run on flat, contiguous 1-D views; :func:`launch` picks the
target from the arrays (see :mod:`mxopt._arrays`). The loop is written once,
in :data:`_TEMPLATE`; no optimizer writes a loop or a kernel of its own.
Before a rule first runs on arrays of given dtypes, :func:`launch` infers
its result types and refuses (``TypeError``) a rule that does not return
``w`` and its state values in the dtypes of their arrays: an untyped
literal such as ``1 - beta1`` would otherwise turn float32 arithmetic into
float64 without a word (:func:`_check_returns`).

Rules that add noise (SGLD) receive it: an :class:`UpdateRule` made with
``noise="z"`` gets, as its argument ``z`` right after the state values, a
standard normal deviate (float32) of its own for every element, drawn by the
counter-based generator of :mod:`mxopt._random` from a per-parameter key and
the update count. The kernel loops over blocks of the generator: with
``q = ⌊n/4⌋`` for a parameter of ``n`` elements, block ``b`` gives its four
deviates to elements ``b``, ``q + b``, ``2q + b`` and ``3q + b`` (four
contiguous runs, so loads and stores stay contiguous), and the last
``n mod 4`` elements take those of block ``q``. The arrays may hold several
parameters (a Trainer's flat buffer): such a rule is launched with
:class:`Parts`, one ``(start, stop, (key, t))`` per parameter, so that each
parameter is laid out on its own and the result is the one of separate
per-parameter updates. Other rules are generated and launched exactly as
before.

Rules that need a reduction before the element-wise pass (the layer norms of
LARS and LAMB) compute it in a first pass and hand the result to the rule as
one more per-step scalar: the hook for that is ``Optimizer.step_scalars``,
which runs on the host once per step and may launch a reduction kernel; the
element-wise kernel itself never reduces.
"""
from __future__ import annotations

import functools
import inspect
import math
import types
import warnings

import numba
import numpy as np
from numba.core.errors import NumbaPerformanceWarning

from . import _arrays
from ._scalar import COMPILED, HELPERS

_TEMPLATE = """
def kernel({outputs}{arrays}, {scalars}):
    for i in {indices}:
        {targets} = rule({inputs}, {scalars}){store}
"""

_RESERVED = {"i", "rule", "kernel", "prange", "cuda", "np", "w16"}

#: Rules with noise loop over the blocks of one part (one parameter) of the arrays; ``{lanes}``
#: calls the rule on the four elements that share block ``b`` (see the module's docstring).
_TEMPLATE_NOISE = """
def kernel({outputs}{arrays}, part_start, part_size, noise_key, noise_t, {scalars}):
    quarter = part_size // 4
    for b in {indices}:
        z0, z1, z2, z3 = normal4(noise_key, noise_t, np.uint64(b))
        j0 = np.uint64(part_start + b)  # unsigned: no negative-index wraparound, so the loads are affine and vectorise
        j1 = j0 + np.uint64(quarter)
        j2 = j1 + np.uint64(quarter)
        j3 = j2 + np.uint64(quarter)
{lanes}
    if {tail_thread}:
        y0, y1, y2, y3 = normal4(noise_key, noise_t, np.uint64(quarter))
        for k in range(part_size - 4 * quarter):  # the last n mod 4 elements, with block q's deviates in order
            z_tail = y0 if k == 0 else (y1 if k == 1 else y2)
            j_tail = np.uint64(part_start + 4 * quarter + k)
{tail}
"""

#: Names the noise template uses (a rule may not take them as scalars).
_NOISE_NAMES = {"part_start", "part_size", "quarter", "b", "k", "z0", "z1", "z2", "z3", "y0", "y1", "y2", "y3",
                "z_tail", "j0", "j1", "j2", "j3", "j_tail", "noise_key", "noise_t", "normal4"}


class Parts:
    """The launch arguments of a rule with noise: ``parts`` and the per-step ``scalars``.

    ``parts`` is a sequence of ``(start, stop, (key, t))``: the elements
    ``[start, stop)`` of the flat arrays form one parameter, whose deviates
    the generator draws under ``key`` at update ``t`` (``np.uint64``
    values, :func:`mxopt._random.normal4`). ``stop=None`` means the end of
    the arrays.
    """

    __slots__ = ("parts", "scalars")

    def __init__(self, parts, scalars):
        self.parts = tuple((int(start), None if stop is None else int(stop), tuple(counters))
                           for start, stop, counters in parts)
        self.scalars = tuple(scalars)


class UpdateRule:
    """A scalar update rule and the kernels compiled from it.

    ``n_state`` says how many of the arguments after ``(w, g)`` are state
    values; the remaining arguments are per-step scalars, passed by name.
    ``noise``, the name of the argument after the state values, makes a
    rule with noise: that argument receives the element's standard normal
    deviate (see the module's docstring).
    """

    def __init__(self, fn, n_state, noise=None):
        params = list(inspect.signature(fn).parameters)
        n_arrays = 2 + n_state
        if len(params) < n_arrays + (noise is not None) or (noise is not None and params[n_arrays] != noise):
            raise TypeError(f"rule {fn.__name__} needs (w, g, {n_state} state values, "
                            f"{noise + ', ' if noise is not None else ''}scalars...)")
        clash = (_RESERVED | (_NOISE_NAMES if noise is not None else set())).intersection(params)
        if clash:
            raise TypeError(f"rule {fn.__name__} uses reserved argument names {sorted(clash)}")
        self.fn = fn
        self.arrays = params[:n_arrays]
        self.state_names = tuple(params[2:n_arrays])
        #: The argument that receives the deviate (None for the rules without noise).
        self.noise = noise
        self.scalar_names = tuple(params[n_arrays + (noise is not None):])
        self._kernels = {}

    def __repr__(self):
        return f"UpdateRule({self.fn.__name__}, state={self.state_names})"

    # -- code generation ------------------------------------------------
    def source(self, target, multi_precision=False):
        """The Python source of the kernel for ``target`` (shown in the guide)."""
        if self.noise is not None:
            return self._noise_source(target, multi_precision)
        w = self.arrays[0]
        if target == _arrays.CPU:
            indices = f"prange({w}.shape[0])"
        else:
            indices = f"range(cuda.grid(1), {w}.shape[0], cuda.gridsize(1))"
        return _TEMPLATE.format(
            outputs="w16, " if multi_precision else "",
            arrays=", ".join(self.arrays),
            scalars=", ".join(self.scalar_names),
            indices=indices,
            inputs=self._inputs("i", multi_precision),
            **self._stores("i", " " * 8, multi_precision),
        )

    def _inputs(self, x, multi_precision):
        """The rule's array arguments at array position ``x`` (a float16 gradient read as float32)."""
        inputs = [f"{a}[{x}]" for a in self.arrays]
        if multi_precision:
            inputs[1] = f"np.float32({self.arrays[1]}[{x}])"
        return ", ".join(inputs)

    def _stores(self, x, indent, multi_precision):
        """``targets`` and ``store`` of one rule call at array position ``x``."""
        w = self.arrays[0]
        return {"targets": ", ".join(f"{a}[{x}]" for a in (w, *self.state_names)),
                "store": f"\n{indent}w16[{x}] = {w}[{x}]" if multi_precision else ""}

    def _call(self, x, z, indent, multi_precision):
        """One rule call on the element at array position ``x`` with deviate ``z``, and its stores."""
        stores = self._stores(x, indent, multi_precision)
        return (f"{indent}{stores['targets']} = rule({self._inputs(x, multi_precision)}, {z}, {', '.join(self.scalar_names)})"
                f"{stores['store']}")

    def _noise_source(self, target, multi_precision):
        cpu = target == _arrays.CPU
        return _TEMPLATE_NOISE.format(
            outputs="w16, " if multi_precision else "",
            arrays=", ".join(self.arrays),
            scalars=", ".join(self.scalar_names),
            indices="prange(quarter)" if cpu else "range(cuda.grid(1), quarter, cuda.gridsize(1))",
            lanes="\n".join(self._call(f"j{k}", f"z{k}", " " * 8, multi_precision) for k in range(4)),
            tail_thread="part_size % 4 != 0" + ("" if cpu else " and cuda.grid(1) == 0"),
            tail=self._call("j_tail", "z_tail", " " * 12, multi_precision),
        )

    def kernel(self, target, multi_precision=False, parallel=True):
        """The compiled kernel; on the CPU, threaded (``parallel``) or on one core."""
        key = (target, multi_precision, parallel and target == _arrays.CPU)
        if key not in self._kernels:
            self._kernels[key] = self._build(*key)
        return self._kernels[key]

    def _build(self, target, multi_precision, parallel):
        namespace = {"rule": _compile(self.fn, target), "np": np}
        if self.noise is not None:
            from . import _random

            namespace["normal4"] = _compile(_random.normal4, target)
        if target == _arrays.CPU:
            namespace["prange"] = numba.prange
            exec(self.source(target), namespace)  # noqa: S102 - our own template
            return numba.njit(parallel=parallel, error_model="numpy")(namespace["kernel"])
        from numba import cuda

        namespace["cuda"] = cuda
        exec(self.source(target, multi_precision), namespace)  # noqa: S102
        return cuda.jit(namespace["kernel"])


#: Below this many elements the CPU kernel runs on one core: handing a few
#: thousand elements to a thread pool costs more than it saves, and on a busy
#: machine a thread hand-off can take milliseconds.
CPU_PARALLEL_THRESHOLD = 1 << 18

_COMPILED = {}


def _compile(fn, target):
    """Compile a rule or helper for ``target``, with its helpers compiled too."""
    key = (fn, target)
    if key in _COMPILED:
        return _COMPILED[key]
    if target != _arrays.CPU and hasattr(fn, "cuda_implementation") and not numba.config.ENABLE_CUDASIM:
        # A helper with a CUDA intrinsic of its own (mxopt._random.mul_rn: a product CUDA never
        # fuses). The simulator runs the Python function, which rounds every product anyway.
        _COMPILED[key] = fn.cuda_implementation()
        return _COMPILED[key]
    glb = dict(fn.__globals__)
    for name in fn.__code__.co_names:
        if name in HELPERS and glb.get(name) is HELPERS[name]:
            glb[name] = _compile(HELPERS[name], target)
        elif name in COMPILED and name in glb:
            glb[name] = COMPILED[name]
        elif _is_rule_function(glb.get(name)):
            # A rule may call another optimizer's rule (LARS runs SGD's arithmetic): compile it too.
            glb[name] = _compile(glb[name], target)
    clone = types.FunctionType(fn.__code__, glb, fn.__name__, fn.__defaults__, fn.__closure__)
    if target == _arrays.CPU:
        # Numba inlines rules and helpers, the generator's included, into the loop (so that LLVM
        # vectorises it; mxopt._random's deviate has no branch for that reason).
        compiled = numba.njit(inline="always", error_model="numpy")(clone)
    else:
        from numba import cuda

        compiled = cuda.jit(device=True)(clone)
    _COMPILED[key] = compiled
    return compiled


#: Modules whose plain functions rules may call (compiled with the rule, for its target).
_SCALAR_MODULES = ("mxopt.optimizers.", "mxopt._random")


def _is_rule_function(obj):
    """A plain Python function of an optimizer module or of :mod:`mxopt._random` (a rule or a helper)."""
    return (isinstance(obj, types.FunctionType) and not hasattr(obj, "py_func")
            and (obj.__module__ or "").startswith(_SCALAR_MODULES))


#: ``(rule function, argument types)`` whose results :func:`_check_returns` accepted.
_RETURNS_CHECKED = set()


def _check_returns(rule, dtypes, args):
    """Refuse ``rule`` if its results are not what the kernel stores: ``w`` and the state, in their dtypes.

    Numba types an untyped literal (``1 - beta1``, ``0.5 * x``) and a float64
    scalar as float64, so one such term turns a float32 rule into float64
    arithmetic whose result the kernel's store would round without a word
    (not MXNet's float32 numbers, and slower). ``dtypes`` are the dtypes of
    the rule's arrays (w, g, state...) and ``args`` one call's kernel
    arguments after the arrays. The types are inferred on the CPU (nothing is
    compiled to machine code), once per rule and argument types.
    """
    from numba.core import compiler, typed_passes, types
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    call = (np.float32(0), *args[4:]) if rule.noise is not None else tuple(args)
    sig = tuple(numba.from_dtype(np.dtype(d)) for d in dtypes) + tuple(numba.typeof(a) for a in call)
    if (rule.fn, sig) in _RETURNS_CHECKED:
        return
    with global_compiler_lock:
        cpu_target.typing_context.refresh()
        ret = typed_passes.type_inference_stage(
            cpu_target.typing_context, cpu_target.target_context,
            compiler.run_frontend(_compile(rule.fn, _arrays.CPU).py_func), sig, None).return_type
    written = (rule.arrays[0], *rule.state_names)
    want = (sig[0], *sig[2:len(rule.arrays)])
    is_tuple = isinstance(ret, types.BaseTuple)
    got = tuple(ret) if is_tuple else (ret,)
    if len(got) != len(want) or (is_tuple and not rule.state_names):
        raise TypeError(f"rule {rule.fn.__name__} returns {ret}, but the kernel stores {len(want)} "
                        f"value{'s' if len(want) > 1 else ''} ({', '.join(written)}): return {written[0]} first, "
                        "then the new state values in the order of the rule's arguments")
    if got != want:
        raise TypeError(f"rule {rule.fn.__name__} returns ({', '.join(map(str, got))}) for "
                        f"({', '.join(written)}) of dtypes ({', '.join(map(str, want))}): an untyped literal "
                        "(1 - beta1, 0.5 * x) or a float64 scalar makes Numba compute in float64, and the store "
                        "would round it. Write ONE - beta1 (mxopt._scalar.ONE), cast a constant with the "
                        f"weight's type, type({written[0]})(0.5), or pass it as a step scalar (cast to the "
                        "weight's dtype)")
    _RETURNS_CHECKED.add((rule.fn, sig))


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id):
    from numba import cuda

    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def _cuda_launch_config(n):
    """(blocks, threads): enough resident threads to keep the memory system busy.

    Measured on an H200 for Adam on 268M float32 parameters: 512 threads and
    32 blocks per multiprocessor (each thread loops over ~30 elements) ran at
    3.59 TB/s, against 3.08 TB/s with 4 blocks per multiprocessor and
    3.17 TB/s with one element per thread.
    """
    from numba import config, cuda

    if config.ENABLE_CUDASIM:  # every simulated thread is a Python thread
        return 1, max(1, min(n, 16))
    threads = 512
    sms = _multiprocessors(cuda.get_current_device().id)
    return max(1, min(math.ceil(n / threads), sms * 32)), threads


def _calls(rule, args, n):
    """``[(size, kernel arguments after the arrays)]``: one call, or one per part of a rule with noise."""
    if rule.noise is None:
        return [(n, tuple(args))]
    if not isinstance(args, Parts):
        raise TypeError(f"{rule!r} draws noise: launch it with Parts, got {type(args).__name__}")
    calls = []
    for start, stop, counters in args.parts:
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise ValueError(f"part [{start}, {stop}) lies outside the {n} elements of the arrays")
        if len(counters) != 2:
            raise TypeError(f"a part of {rule!r} needs the generator's (key, t), got {counters!r}")
        if stop > start:
            calls.append((stop - start, (np.int64(start), np.int64(stop - start), *counters, *args.scalars)))
    return calls


def check(rule, weight, grad, state, args, master=None):
    """Everything :func:`launch` would refuse, checked before anything changes; its kernel calls.

    An aggregated update checks every parameter's launch with this first, so
    that a refused rule (:func:`_check_returns`) leaves every parameter as it was.
    """
    calls = _calls(rule, args, _arrays.info(weight).size)
    if calls:  # a multi-precision rule reads the float32 master copy and a float32 gradient
        dtypes = ([_arrays.info(a).dtype for a in (weight, grad, *state)] if master is None else
                  [np.float32, np.float32, *(_arrays.info(a).dtype for a in state)])
        _check_returns(rule, dtypes, calls[0][1])
    return calls


def launch(rule, weight, grad, state, args, master=None):
    """Run ``rule`` over every element, in place.

    ``weight``, ``grad`` and the arrays of ``state`` are contiguous arrays of
    one target, already checked (:func:`mxopt._checks.disjoint`: no two share
    memory). ``args`` are the rule's per-step scalars in the order of
    ``rule.scalar_names``, already numbers of the dtype the arithmetic runs
    in (:func:`mxopt._checks.step_scalars`); for a rule with noise, a
    :class:`Parts` (one kernel call per part). ``master`` is the float32
    master copy of a float16 weight (multi-precision): the rule then updates
    ``master`` and ``weight`` receives its rounded value.
    """
    target = _arrays.target_of(weight)
    if target == _arrays.CPU:
        if weight.size == 0:
            return
        calls = check(rule, weight, grad, state, args, master)
        if master is None:
            arrays = [a.reshape(-1) for a in (weight, grad, *state)]
        else:
            # Numba has no float16 arithmetic on the CPU: convert around the kernel.
            arrays = [a.reshape(-1) for a in (master, grad.astype(np.float32), *state)]
        for size, call_args in calls:
            rule.kernel(target, parallel=size >= CPU_PARALLEL_THRESHOLD)(*arrays, *call_args)
        if master is not None:
            np.copyto(weight, master, casting="same_kind")
        return
    flats = [_arrays.flat(a) for a in (weight, grad, *state)]
    n = flats[0].shape[0]
    if n == 0:
        return
    calls = check(rule, weight, grad, state, args, master)
    stream = _arrays.stream_of(weight)
    if master is not None:
        kernel, arrays = rule.kernel(target, multi_precision=True), (flats[0], _arrays.flat(master), *flats[1:])
    else:
        kernel, arrays = rule.kernel(target), flats
    with warnings.catch_warnings():
        # A small parameter needs only a few blocks; Numba's low-occupancy warning is noise here.
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        for size, call_args in calls:
            blocks, threads = _cuda_launch_config(size)
            kernel[blocks, threads, stream](*arrays, *call_args)
