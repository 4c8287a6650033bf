"""Where an array lives, and the few array operations mxopt needs on both targets.

mxopt works on NumPy arrays (the CPU target) and on any object exposing
``__cuda_array_interface__`` (the CUDA target): Numba device arrays, CuPy
arrays and PyTorch CUDA tensors are updated in place, never copied to the
host. New arrays (optimizer state, the Trainer's flat buffers) are made with
the same library as the weight they belong to, so a PyTorch user gets
PyTorch tensors back.
"""
from __future__ import annotations

import math

import numpy as np

CPU, CUDA = "cpu", "cuda"

#: Weight dtypes an update rule can run in.
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class ArrayInfo:
    """The facts about one array that the checks need, for either target.

    ``extent`` is the half-open range of byte addresses ``[lo, hi)`` that the
    array's elements occupy (host addresses on the CPU, device addresses on
    CUDA; empty for an array with no elements). Two arrays of one target
    share memory only if their extents intersect; for C-contiguous arrays,
    the only kind an update accepts, intersecting extents mean shared
    elements.
    """

    __slots__ = ("target", "shape", "dtype", "contiguous", "writeable", "size", "extent")

    def __init__(self, target, shape, dtype, contiguous, writeable, pointer=0, strides=None):
        self.target = target
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.contiguous = contiguous
        self.writeable = writeable
        self.size = math.prod(self.shape)
        self.extent = _extent(int(pointer), self.shape, strides, self.dtype.itemsize)

    def overlaps(self, other):
        """Whether the two arrays share at least one byte (same target only)."""
        if self.target != other.target:
            return False
        (lo, hi), (olo, ohi) = self.extent, other.extent
        return lo < hi and olo < ohi and lo < ohi and olo < hi


def _extent(pointer, shape, strides, itemsize):
    """``[lo, hi)``: the bytes from the lowest to one past the highest element."""
    if any(n == 0 for n in shape):
        return (pointer, pointer)
    if strides is None:
        strides = _c_strides(shape, itemsize)
    lo = hi = pointer
    for n, st in zip(shape, strides):
        reach = (n - 1) * int(st)
        if reach < 0:
            lo += reach
        else:
            hi += reach
    return (lo, hi + itemsize)


def _is_numba_device_array(x):
    """A Numba device array (these also stand in for GPU arrays under the CUDA simulator)."""
    if not type(x).__module__.startswith("numba"):
        return False
    from numba import cuda

    return cuda.devicearray.is_cuda_ndarray(x)


def _as_numba(x):
    """``x`` as a Numba device array over the same memory (no copy)."""
    if _is_numba_device_array(x):
        return x
    from numba import cuda

    return cuda.as_cuda_array(x)


def target_of(x):
    """``'cpu'`` for NumPy arrays, ``'cuda'`` for CUDA arrays, else ``None``."""
    if isinstance(x, np.ndarray):
        return CPU
    if hasattr(x, "__cuda_array_interface__") or _is_numba_device_array(x):
        return CUDA
    return None


def info(x) -> ArrayInfo | None:
    """Describe ``x``, or return ``None`` when it is not an array mxopt can use."""
    if isinstance(x, np.ndarray):
        return ArrayInfo(CPU, x.shape, x.dtype, x.flags.c_contiguous, x.flags.writeable,
                         x.__array_interface__["data"][0], x.strides)
    cai = getattr(x, "__cuda_array_interface__", None)
    if cai is None:
        if _is_numba_device_array(x):
            # Only the CUDA simulator's arrays lack the interface: they wrap host memory.
            return ArrayInfo(CUDA, x.shape, x.dtype, x.is_c_contiguous(), True,
                             x.__array_interface__["data"][0], x.strides)
        return None
    shape, dtype = cai["shape"], np.dtype(cai["typestr"])
    strides = cai.get("strides")
    contiguous = strides is None or all(
        n == 1 or st == want for n, st, want in zip(shape, strides, _c_strides(shape, dtype.itemsize)))
    return ArrayInfo(CUDA, shape, dtype, contiguous, not cai["data"][1], cai["data"][0] or 0, strides)


def _c_strides(shape, itemsize):
    """The strides of a C-contiguous array (dimensions of size 1 may have any stride)."""
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(strides))


def flat(x):
    """A 1-D view of a C-contiguous array, as the kernels take it.

    A CUDA array becomes a Numba device array over the same memory, without
    a copy and without waiting for the GPU (see :func:`stream_of`).
    """
    if isinstance(x, np.ndarray):
        return x.reshape(-1)
    if _is_numba_device_array(x):
        return x if x.ndim == 1 else x.reshape(x.size)
    from numba import cuda

    cai = x.__cuda_array_interface__
    size = int(np.prod(cai["shape"], dtype=np.int64))
    desc = dict(cai, shape=(size,), strides=None)
    return cuda.from_cuda_array_interface(desc, owner=x, sync=False)


def stream_of(x):
    """The Numba stream on which to queue work on ``x``: the stream its library reports.

    PyTorch and CuPy name their current stream in ``__cuda_array_interface__``;
    queuing the update there orders it after the work that produced the
    gradient, with no host synchronisation. 0 is the default stream.
    """
    ptr = getattr(x, "__cuda_array_interface__", {}).get("stream") if not _is_numba_device_array(x) else None
    if ptr is None or ptr == 1:
        return 0
    from numba import cuda

    return cuda.per_thread_default_stream() if ptr == 2 else cuda.external_stream(ptr)


def _library(like):
    """The module that made ``like``: numpy, cupy, torch or numba.cuda."""
    if isinstance(like, np.ndarray):
        return "numpy"
    mod = type(like).__module__.split(".")[0]
    if mod in ("torch", "cupy"):
        return mod
    return "numba"


def empty(like, shape, dtype):
    """An uninitialised array of ``shape``/``dtype`` on the device of ``like``."""
    dtype = np.dtype(dtype)
    lib = _library(like)
    if lib == "numpy":
        return np.empty(shape, dtype)
    if lib == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype.name), device=like.device)
    if lib == "cupy":
        import cupy

        with cupy.cuda.Device(like.device.id):
            return cupy.empty(shape, dtype)
    from numba import cuda

    return cuda.device_array(shape, dtype)


def zeros(like, shape, dtype):
    """Zeros of ``shape``/``dtype`` on the device of ``like``."""
    out = empty(like, shape, dtype)
    fill(out, 0)
    return out


def fill(x, value):
    """Set every element of ``x`` to ``value`` in place."""
    lib = _library(x)
    if lib == "numpy":
        x.fill(value)
    elif lib == "torch":
        x.fill_(value)
    elif lib == "cupy":
        x.fill(value)
    else:
        x.copy_to_device(np.full(x.shape, value, x.dtype))


def copy_into(dst, src):
    """``dst[...] = src`` across libraries and dtypes (host or device source)."""
    lib = _library(dst)
    if lib == "numpy":
        np.copyto(dst, to_host(src), casting="unsafe")
        return
    if target_of(src) == CPU:
        host = np.ascontiguousarray(src, dtype=info(dst).dtype)
        if lib == "torch":
            import torch

            dst.copy_(torch.from_numpy(host))
        elif lib == "cupy":
            dst.set(host)
        else:
            dst.copy_to_device(host)
        return
    if lib == "torch":
        import torch

        dst.copy_(torch.as_tensor(src, device=dst.device))
    elif lib == "cupy":
        import cupy

        dst[...] = cupy.asarray(src)
    else:
        if info(src).dtype == info(dst).dtype:
            dst.copy_to_device(_as_numba(src))
        else:
            dst.copy_to_device(to_host(src).astype(info(dst).dtype))


def to_host(x) -> np.ndarray:
    """A NumPy copy (or the array itself, when it is NumPy already)."""
    if isinstance(x, np.ndarray):
        return x
    lib = _library(x)
    if lib == "torch":
        return x.detach().cpu().numpy()
    if lib == "cupy":
        return x.get()
    return _as_numba(x).copy_to_host()


def view(buffer, start, shape):
    """The slice ``buffer[start:start+size]`` of a flat buffer, shaped ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    part = buffer[start:start + size]
    if _library(buffer) == "torch":
        return part.view(shape)
    return part.reshape(shape)
