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


class UpdateRule:
    """A scalar update rule and the kernels compiled from it.

    ``n_state`` says how many of the arguments after ``(w, g)`` are state
    values; the remaining arguments are per-step scalars, passed by name.
    """

    def __init__(self, fn, n_state):
        params = list(inspect.signature(fn).parameters)
        if len(params) < 2 + n_state:
            raise TypeError(f"rule {fn.__name__} needs (w, g, {n_state} state values, scalars...)")
        clash = _RESERVED.intersection(params)
        if clash:
            raise TypeError(f"rule {fn.__name__} uses reserved argument names {sorted(clash)}")
        self.fn = fn
        self.arrays = params[: 2 + n_state]
        self.state_names = tuple(params[2: 2 + n_state])
        self.scalar_names = tuple(params[2 + n_state:])
        self._kernels = {}

    def __repr__(self):
        return f"UpdateRule({self.fn.__name__}, state={self.state_names})"

    # -- code generation ------------------------------------------------
    def source(self, target, multi_precision=False):
        """The Python source of the kernel for ``target`` (shown in the guide)."""
        w, g, *state = self.arrays
        written = [w, *state]
        inputs = [f"{a}[i]" for a in self.arrays]
        if multi_precision:
            inputs[1] = f"np.float32({g}[i])"
        if target == _arrays.CPU:
            indices = f"prange({w}.shape[0])"
        else:
            indices = f"range(cuda.grid(1), {w}.shape[0], cuda.gridsize(1))"
        return _TEMPLATE.format(
            outputs="w16, " if multi_precision else "",
            arrays=", ".join(self.arrays),
            scalars=", ".join(self.scalar_names),
            indices=indices,
            targets=", ".join(f"{a}[i]" for a in written),
            inputs=", ".join(inputs),
            store=f"\n        w16[i] = {w}[i]" if multi_precision else "",
        )

    def kernel(self, target, multi_precision=False, parallel=True):
        """The compiled kernel; on the CPU, threaded (``parallel``) or on one core."""
        key = (target, multi_precision, parallel and target == _arrays.CPU)
        if key not in self._kernels:
            self._kernels[key] = self._build(*key)
        return self._kernels[key]

    def _build(self, target, multi_precision, parallel):
        if target == _arrays.CPU:
            namespace = {"rule": _compile(self.fn, _arrays.CPU), "prange": numba.prange, "np": np}
            exec(self.source(target), namespace)  # noqa: S102 - our own template
            return numba.njit(parallel=parallel, error_model="numpy")(namespace["kernel"])
        from numba import cuda

        namespace = {"rule": _compile(self.fn, _arrays.CUDA), "cuda": cuda, "np": np}
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
        compiled = numba.njit(inline="always", error_model="numpy")(clone)
    else:
        from numba import cuda

        compiled = cuda.jit(device=True)(clone)
    _COMPILED[key] = compiled
    return compiled


def _is_rule_function(obj):
    """A plain Python function of an optimizer module (a rule or a rule's helper)."""
    return (isinstance(obj, types.FunctionType) and not hasattr(obj, "py_func")
            and (obj.__module__ or "").startswith("mxopt.optimizers."))


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


def launch(rule, weight, grad, state, args, master=None):
    """Run ``rule`` over every element, in place.

    ``weight``, ``grad`` and the arrays of ``state`` are contiguous arrays of
    one target, already checked (:func:`mxopt._checks.disjoint`: no two share
    memory). ``args`` are the rule's per-step scalars in the order of
    ``rule.scalar_names``, already numbers of the dtype the arithmetic runs
    in (:func:`mxopt._checks.step_scalars`). ``master`` is the float32 master
    copy of a float16 weight (multi-precision): the rule then updates
    ``master`` and ``weight`` receives its rounded value.
    """
    args = tuple(args)
    target = _arrays.target_of(weight)
    if target == _arrays.CPU:
        if weight.size == 0:
            return
        kernel = rule.kernel(target, parallel=weight.size >= CPU_PARALLEL_THRESHOLD)
        if master is None:
            kernel(*(a.reshape(-1) for a in (weight, grad, *state)), *args)
        else:
            # Numba has no float16 arithmetic on the CPU: convert around the kernel.
            g32 = grad.astype(np.float32)
            kernel(*(a.reshape(-1) for a in (master, g32, *state)), *args)
            np.copyto(weight, master, casting="same_kind")
        return
    flats = [_arrays.flat(a) for a in (weight, grad, *state)]
    n = flats[0].shape[0]
    if n == 0:
        return
    blocks, threads = _cuda_launch_config(n)
    stream = _arrays.stream_of(weight)
    if master is not None:
        kernel, arrays = rule.kernel(target, multi_precision=True), (flats[0], _arrays.flat(master), *flats[1:])
    else:
        kernel, arrays = rule.kernel(target), flats
    with warnings.catch_warnings():
        # A small parameter needs only a few blocks; Numba's low-occupancy warning is noise here.
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        kernel[blocks, threads, stream](*arrays, *args)
