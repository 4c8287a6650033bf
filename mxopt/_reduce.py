"""Reduce, then update: the engine of the layer-wise optimizers.

LARS, LAMB and GroupAdaGrad scale each parameter's (or each row's) step by a
quantity of the whole parameter: ‖w‖ and ‖g‖, ‖w‖ and ‖r‖, the mean of g²
over a row. A :class:`LayerwiseRule` writes such an optimizer as three plain
Python functions, compiled like the element-wise rules of
:mod:`mxopt._engine` for the CPU and for CUDA:

``summands(w, g, *state, *scalars) -> (x_1, ..., x_q, *carried)``
    per element: the values summed over each segment (``w*w``, ``g*g``),
    then the values of the rule's ``carry``, kept for the update pass: new
    state values (written by this pass) or per-element temporaries (LAMB's
    direction ``r``, in a scratch array kept with the plan).
``segment(*sums, count, *segment_state, *segment_inputs, *scalars) -> (*segment_state, *values)``
    per segment: turns its sums into the values the element pass reads
    (LARS's layer learning rate, LAMB's trust ratio), and may update a
    per-segment state (GroupAdaGrad's row history). ``count`` is the number
    of elements in the segment; ``segment_inputs`` are per-segment constants
    (LARS's "apply the trust ratio" flag, from the parameter's name).
``update(w, *arrays, *segment values, *scalars) -> (w, *state)``
    per element, like an element-wise rule, reading its own segment's values.
    Its arrays are ``g, *state`` (the same as ``summands``) when nothing is
    carried; with a ``carry``, any of ``g``, the state and the temporaries,
    and it returns the weight and the state the reduce pass did not write.

A function with one result may return it as a value or as a 1-tuple.

A *segment* is a run of consecutive elements of the flat buffer: a whole
parameter (LARS, LAMB) or one row of a parameter (GroupAdaGrad). A
:class:`Plan` cuts every segment into chunks of at most :data:`CHUNK`
elements; every pass loops over chunks, so a Trainer's thousand parameters
take three launches (reduce, segment, update), whatever their number, and a
single huge parameter still spreads over every core or multiprocessor.

Summation order. On the CPU a segment of at most :data:`CHUNK` elements is
summed sequentially, in element order, in the compute dtype: exactly the loop
of MXNet 1.9.1's ``multi_sum_sq`` (LARS); with ``compensated=True`` the
Kahan loop of its ``sum`` reducer (``mean``, used by GroupAdaGrad); with
``pairwise=True`` NumPy's pairwise order (:func:`pairwise`). A longer
segment's chunks are each summed in :data:`LANES` interleaved partial sums
(:func:`lanes`, in vector registers: a sequential chain of additions takes
longer than the memory traffic), or Kahan's way if compensated, and its chunk
sums are added in chunk order. The order depends neither on the number of
threads nor on the machine. On CUDA a block sums a chunk as a tree, so the
last bit may differ from the CPU.

Traffic. The reduce pass reads ``w``, ``g`` and the state and writes only
what the rule carries; the update pass reads what it needs and writes the
rest. LARS reads ``w`` and ``g`` to sum, then takes SGD's step; LAMB writes
its moments and ``r`` in the first pass, as MXNet's ``lamb_update_phase1``,
and reads ``w`` and ``r`` in the second. Scratch is made once: each CPU
thread's chunk-sized rows for the summands, and per plan the chunk sums,
the segment values and the temporaries.
"""
from __future__ import annotations

import inspect
import warnings

import numba
import numpy as np
from numba.core.errors import NumbaPerformanceWarning
from numba.extending import intrinsic

from . import _arrays
from ._engine import _compile

#: Elements per chunk: the unit of parallel work and of MXNet-exact sequential summation.
CHUNK = 4096

#: Chunks a CPU thread takes at a time in the reduce pass (one-chunk segments: chains side by side).
_GROUP = 4

#: CUDA threads per block of the reduce pass (a power of two, for the tree).
_CUDA_THREADS = 256

_RESERVED = {"c", "i", "s", "k", "start", "stop", "zero", "kernel", "prange", "cuda", "np", "w16", "count",
             "summands", "segment", "update", "chunk_start", "chunk_stop", "chunk_seg", "seg_first",
             "seg_count", "tid", "buf", "step", "scratch", "get_thread_id", "lanes", "pairwise", "only", "math", "group", "first",
             "last", "alone", "n", "GROUP"}


def _params(fn):
    return list(inspect.signature(fn).parameters)


class LayerwiseRule:
    """An update that needs per-segment sums: ``summands``, ``segment`` and ``update`` (module doc).

    Args:
      summands, segment, update: the three scalar functions.
      n_state: element-wise state arrays (after ``w, g`` in ``summands`` and ``update``).
      sums: names of the values ``summands`` returns, as ``segment`` names its arguments.
      segment_state: per-segment state arrays ``segment`` reads and returns first.
      segment_inputs: per-segment constants ``segment`` reads.
      values: names of what ``segment`` returns after its state.
      compensated: Kahan summation within a chunk (MXNet's ``sum`` reducer).
      pairwise: sum a segment of one chunk as ``numpy.sum`` does (:func:`pairwise`), for
        rules whose MXNet original sums with NumPy (LBSGD's 'lars').
      carry: names of the per-element values ``summands`` returns after its
        sums: state arrays (written by the reduce pass) or temporaries the
        update pass reads by name.
    """

    def __init__(self, summands, segment, update, n_state, sums, segment_state=(), segment_inputs=(),
                 values=(), compensated=False, carry=(), pairwise=False):
        self.summands, self.segment, self.update = summands, segment, update
        self.sums, self.segment_state = tuple(sums), tuple(segment_state)
        self.segment_inputs, self.values = tuple(segment_inputs), tuple(values)
        self.compensated = bool(compensated)
        self.pairwise = bool(pairwise)
        if self.compensated and self.pairwise:
            raise TypeError("a rule sums either compensated (Kahan) or pairwise (NumPy), not both")
        self.carry = tuple(carry)
        up, red, seg = _params(update), _params(summands), _params(segment)
        if len(red) < 2 + n_state:
            raise TypeError(f"{summands.__name__} needs (w, g, {n_state} state values, scalars...)")
        #: What the reduce pass reads: the weight, the gradient and the element-wise state.
        self.arrays = red[: 2 + n_state]
        #: The element-wise state arrays; ``state_names`` adds the per-segment ones (a State holds both).
        self.element_state = tuple(red[2: 2 + n_state])
        self.state_names = self.element_state + self.segment_state
        if set(self.carry) & set(self.arrays[:2]):
            raise TypeError(f"{summands.__name__} may not write the weight or the gradient (carry={self.carry})")
        #: Per-element values the reduce pass keeps for the update pass (not state: scratch arrays).
        self.temporaries = tuple(n for n in self.carry if n not in self.element_state)
        if not self.carry and up[: 2 + n_state] != self.arrays:
            raise TypeError(f"{summands.__name__} and {update.__name__} need the same (w, g, {n_state} state) first")
        if not up or up[0] != self.arrays[0]:
            raise TypeError(f"{update.__name__} must take the weight {self.arrays[0]!r} first")
        readable = set(self.arrays[1:]) | set(self.temporaries)
        k = 1
        while k < len(up) and up[k] in readable:
            k += 1
        #: What the update pass reads, and what it writes (the weight and the state the reduce pass did not).
        self.update_arrays = tuple(up[:k])
        self.update_written = (self.arrays[0], *(a for a in self.update_arrays if a in self.element_state
                                                 and a not in self.carry))
        unwritten = set(self.element_state) - set(self.carry) - set(self.update_written)
        if unwritten:
            raise TypeError(f"no pass writes the state {sorted(unwritten)} (carry it or take it in {update.__name__})")
        per_segment = set(self.segment_state) | set(self.values)
        self.update_segment = tuple(p for p in up[k:] if p in per_segment)
        self._update_scalars = tuple(p for p in up[k:] if p not in per_segment)
        self._summand_scalars = tuple(red[2 + n_state:])
        known = set(self.sums) | {"count"} | set(self.segment_state) | set(self.segment_inputs)
        self._segment_args = tuple(p for p in seg if p in known)
        self._segment_scalars = tuple(p for p in seg if p not in known)
        missing = set(self.sums) | set(self.segment_state) | set(self.segment_inputs)
        missing -= set(seg)
        if missing:
            raise TypeError(f"{segment.__name__} does not take {sorted(missing)}")
        every = [*self.arrays, *self.temporaries, *self.sums, *self.segment_state, *self.segment_inputs,
                 *self.values, *self._summand_scalars, *self._segment_scalars, *self._update_scalars]
        clash = _RESERVED.intersection(every)
        if clash:
            raise TypeError(f"layer-wise rule uses reserved names {sorted(clash)}")
        names = []
        for p in (*self._summand_scalars, *self._segment_scalars, *self._update_scalars):
            if p not in names:
                names.append(p)
        #: Every per-step scalar any of the three functions reads, in a fixed order.
        self.scalar_names = tuple(names)
        self._kernels = {}

    def __repr__(self):
        return f"LayerwiseRule({self.update.__name__}, sums={self.sums}, state={self.state_names})"

    # -- code generation --------------------------------------------------------------------------
    def source(self, target, multi_precision=False):
        """The Python source of the three kernels for ``target`` (shown in the guide)."""
        return "\n".join(self._source(part, target, multi_precision) for part in ("reduce", "segment", "update"))

    def _source(self, part, target, multi_precision=False):
        cpu = target == _arrays.CPU
        g = self.arrays[1]

        def loads(names):
            return [f"np.float32({a}[i])" if multi_precision and a == g else f"{a}[i]" for a in names]

        if part == "reduce":
            arrays = ", ".join((*self.arrays, *self.temporaries))
            parts = ", ".join(f"part_{n}" for n in self.sums)
            scal = ", ".join(self._summand_scalars)
            xs = ", ".join([f"x_{n}" for n in self.sums] + [f"{n}[i]" for n in self.carry])
            head = (f"def kernel({arrays}, {parts}, chunk_start, chunk_stop, chunk_seg, seg_first, "
                    f"{'scratch, ' if cpu else ''}zero{', ' + scal if scal else ''}):")
            call = _single(f"summands({', '.join(loads(self.arrays))}{', ' + scal if scal else ''})",
                           len(self.sums) + len(self.carry))
            if cpu:
                # Per group of GROUP chunks: the summands of each chunk into this thread's chunk-sized
                # rows of ``scratch`` (a vectorised loop), then the sums (module doc: the order). A
                # group of one-chunk segments summed in element order runs its GROUP chains of
                # additions side by side, so that they overlap.
                q, sums = len(self.sums), self.sums
                whole = "seg_first[chunk_seg[c] + 1] - seg_first[chunk_seg[c]] > 1"
                body = ["    for group in prange((chunk_start.shape[0] + GROUP - 1) // GROUP):",
                        "        buf = scratch[get_thread_id()]",
                        "        first = group * GROUP",
                        "        last = min(first + GROUP, chunk_start.shape[0])",
                        "        alone = 0",
                        "        for c in range(first, last):",
                        "            start, stop = chunk_start[c], chunk_stop[c]"]
                body += [f"            buf_{n} = buf[(c - first) * {q} + {j}]" for j, n in enumerate(sums)]
                body += ["            for k in range(stop - start):", "                i = start + k",
                         f"                {xs} = {call}"]
                body += [f"                buf_{n}[k] = x_{n}" for n in sums]
                if self.compensated:  # every chunk Kahan's way, below
                    body += ["            alone += 1"]
                else:  # a chunk of a longer segment: LANES interleaved sums (vectors)
                    body += [f"            if {whole}:"]
                    body += [f"                part_{n}[c] = lanes(buf_{n}[:stop - start], zero)" for n in sums]
                    body += ["            else:", "                alone += 1"]
                if not (self.compensated or self.pairwise):
                    body += ["        if alone == GROUP:"]
                    body += [f"            n{g} = chunk_stop[first + {g}] - chunk_start[first + {g}]"
                             for g in range(_GROUP)]
                    body += [f"            n = min({', '.join(f'n{g}' for g in range(_GROUP))})"]
                    body += [f"            buf_{n}_{g} = buf[{g * q + j}]" for g in range(_GROUP)
                             for j, n in enumerate(sums)]
                    body += [f"            acc_{n}_{g} = zero" for g in range(_GROUP) for n in sums]
                    body += ["            for k in range(n):"]
                    body += [f"                acc_{n}_{g} = acc_{n}_{g} + buf_{n}_{g}[k]" for g in range(_GROUP)
                             for n in sums]
                    for g in range(_GROUP):
                        body += [f"            for k in range(n, n{g}):"]
                        body += [f"                acc_{n}_{g} = acc_{n}_{g} + buf_{n}_{g}[k]" for n in sums]
                        body += [f"            part_{n}[first + {g}] = acc_{n}_{g}" for n in sums]
                        pass
                    body += ["        else:"]
                pad = "        " if self.compensated or self.pairwise else "            "
                body += [f"{pad}for c in range(first, last):"]
                if not self.compensated:
                    body += [f"{pad}    if {whole}:", f"{pad}        continue"]
                body += [f"{pad}    start, stop = chunk_start[c], chunk_stop[c]"]
                body += [f"{pad}    buf_{n} = buf[(c - first) * {q} + {j}]" for j, n in enumerate(sums)]
                if self.pairwise:
                    body += [f"{pad}    acc_{n} = pairwise(buf_{n}, stop - start, zero)" for n in sums]
                else:
                    body += [f"{pad}    acc_{n} = zero" for n in sums]
                    if self.compensated:
                        body += [f"{pad}    res_{n} = zero" for n in sums]
                    body += [f"{pad}    for k in range(stop - start):"]
                    body += [f"{pad}        x_{n} = buf_{n}[k]" for n in sums]
                    body += [line for n in sums for line in self._accumulate(n, pad + "        ")]
                body += [f"{pad}    part_{n}[c] = acc_{n}" for n in sums]
            else:
                body = ["    tid = cuda.threadIdx.x"]
                body += [f"    buf_{n} = cuda.shared.array(THREADS, DTYPE)" for n in self.sums]
                body += ["    for c in range(cuda.blockIdx.x, chunk_start.shape[0], cuda.gridDim.x):"]
                body += [f"        acc_{n} = zero" for n in self.sums]
                if self.compensated:
                    body += [f"        res_{n} = zero" for n in self.sums]
                body += ["        for i in range(chunk_start[c] + tid, chunk_stop[c], THREADS):",
                         f"            {xs} = {call}"]
                body += [line for n in self.sums for line in self._accumulate(n, "            ")]
                body += [f"        buf_{n}[tid] = acc_{n}" for n in self.sums]
                body += ["        cuda.syncthreads()", "        step = THREADS // 2", "        while step > 0:",
                         "            if tid < step:"]
                body += [f"                buf_{n}[tid] += buf_{n}[tid + step]" for n in self.sums]
                body += ["            cuda.syncthreads()", "            step //= 2", "        if tid == 0:"]
                body += [f"            part_{n}[c] = buf_{n}[0]" for n in self.sums]
                body += ["        cuda.syncthreads()"]
            return "\n".join([head, *body]) + "\n"
        if part == "segment":
            parts = ", ".join(f"part_{n}" for n in self.sums)
            segs = [f"seg_{n}" for n in (*self.segment_state, *self.segment_inputs, *self.values)]
            scal = ", ".join(self._segment_scalars)
            head = (f"def kernel({parts}, seg_first, seg_count, {', '.join(segs) + ', ' if segs else ''}zero"
                    f"{', ' + scal if scal else ''}):")
            loop = "prange(seg_count.shape[0])" if cpu else \
                "range(cuda.grid(1), seg_count.shape[0], cuda.gridsize(1))"
            body = [f"    for s in {loop}:"]
            body += [f"        {n} = zero" for n in self.sums]
            body += ["        for k in range(seg_first[s], seg_first[s + 1]):"]
            body += [f"            {n} = {n} + part_{n}[k]" for n in self.sums]
            args = []
            for p in self._segment_args:
                args.append("seg_count[s]" if p == "count" else (p if p in self.sums else f"seg_{p}[s]"))
            outs = [f"seg_{n}[s]" for n in (*self.segment_state, *self.values)]
            call = f"segment({', '.join(args)}{', ' + scal if scal else ''})"
            body += [f"        {', '.join(outs)} = {_single(call, len(outs))}"]
            return "\n".join([head, *body]) + "\n"
        # update
        segs = ", ".join(f"seg_{n}" for n in self.update_segment)
        scal = ", ".join(self._update_scalars)
        head = (f"def kernel({'w16, ' if multi_precision else ''}{', '.join(self.update_arrays)}, "
                f"{segs + ', ' if segs else ''}chunk_start, chunk_stop, chunk_seg{', ' + scal if scal else ''}):")
        if cpu:
            body = ["    for c in prange(chunk_start.shape[0]):", "        s = chunk_seg[c]"]
            inner = "        for i in range(chunk_start[c], chunk_stop[c]):"
        else:
            body = ["    for c in range(cuda.blockIdx.x, chunk_start.shape[0], cuda.gridDim.x):",
                    "        s = chunk_seg[c]"]
            inner = "        for i in range(chunk_start[c] + cuda.threadIdx.x, chunk_stop[c], cuda.blockDim.x):"
        body += [f"        v_{n} = seg_{n}[s]" for n in self.update_segment]
        vals = [f"v_{n}" for n in self.update_segment]
        call = f"update({', '.join(loads(self.update_arrays) + vals)}{', ' + scal if scal else ''})"
        written = self.update_written
        body += [inner, f"            {', '.join(f'{a}[i]' for a in written)} = {_single(call, len(written))}"]
        if multi_precision:
            body += [f"            w16[i] = {self.arrays[0]}[i]"]
        return "\n".join([head, *body]) + "\n"

    def _accumulate(self, n, pad):
        if not self.compensated:
            return [f"{pad}acc_{n} = acc_{n} + x_{n}"]
        # Kahan's compensated sum, as MXNet's ``sum`` reducer (an infinite sum drops the residual).
        return [f"{pad}y_{n} = x_{n} - res_{n}", f"{pad}t_{n} = acc_{n} + y_{n}",
                f"{pad}if math.isinf(t_{n}):", f"{pad}    res_{n} = zero", f"{pad}else:",
                f"{pad}    res_{n} = (t_{n} - acc_{n}) - y_{n}", f"{pad}acc_{n} = t_{n}"]

    def kernel(self, part, target, multi_precision=False, parallel=True, dtype=np.float32):
        key = (part, target, multi_precision, parallel and target == _arrays.CPU,
               np.dtype(dtype) if target == _arrays.CUDA and part == "reduce" else None)
        if key not in self._kernels:
            self._kernels[key] = self._build(*key)
        return self._kernels[key]

    def _build(self, part, target, multi_precision, parallel, dtype):
        import math

        fns = {"summands": self.summands, "segment": self.segment, "update": self.update}
        namespace = {name: _compile(fn, target) for name, fn in fns.items()}
        namespace.update(np=np, math=math, prange=numba.prange, only=only)
        if target == _arrays.CPU:
            namespace.update(lanes=_compile(lanes, target), pairwise=pairwise, get_thread_id=numba.get_thread_id,
                             GROUP=_GROUP)
            exec(self._source(part, target), namespace)  # noqa: S102 - our own template
            return numba.njit(parallel=parallel, error_model="numpy")(namespace["kernel"])
        from numba import cuda

        namespace.update(cuda=cuda, THREADS=_CUDA_THREADS if not _simulated() else 8,
                         DTYPE=numba.from_dtype(dtype) if dtype is not None else None)
        exec(self._source(part, target, multi_precision), namespace)  # noqa: S102
        return cuda.jit(namespace["kernel"])


def lanes(buf, zero):
    """``Σ buf`` in :data:`LANES` interleaved partial sums, combined pairwise.

    Lane ``j`` sums ``buf[j], buf[j+32], buf[j+64], ...`` from ``zero``;
    the four groups of eight lanes are added as ``(v0+v1)+(v2+v3)``, lane by
    lane, the eight results as ``((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7))``, and
    the last ``len(buf) % 32`` elements one by one. The lanes are four
    vector registers (:func:`_vector_lanes`), so the sum runs at the speed of
    the loads; it is used for the chunks of parameters longer than one chunk,
    where no sequential order is MXNet's anyway (a parameter of one chunk is
    summed in element order).
    """
    n = buf.shape[0]
    m = n - n % LANES
    total = _vector_lanes(buf, m, zero)
    for k in range(m, n):
        total += buf[k]
    return total


#: Partial sums of :func:`lanes`: four vectors of eight, so that four additions are in flight.
LANES = 32


@intrinsic
def _vector_lanes(typingctx, buf, m, zero):
    """The :data:`LANES` lane sums of ``buf[:m]`` (``m`` a multiple of 32) as LLVM vectors, combined pairwise.

    Numba leaves LLVM's SLP vectoriser off, and the loop vectoriser may not
    reorder a float sum, so scalar accumulators would stay scalar; this
    writes the vector loop out. A machine with narrower vectors splits them
    lane by lane, so the result does not depend on the machine.
    """
    from llvmlite import ir
    from numba.core import cgutils, types

    if not (isinstance(buf, types.Array) and buf.ndim == 1 and isinstance(buf.dtype, types.Float)):
        return None
    sig = buf.dtype(buf, m, zero)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        n = context.cast(builder, args[1], signature.args[1], types.intp)
        zero_v = context.cast(builder, args[2], signature.args[2], signature.return_type)
        scalar = context.get_value_type(signature.return_type)
        vector = ir.VectorType(scalar, 8)
        lane = [ir.Constant(ir.IntType(32), j) for j in range(8)]
        splat = ir.Constant(vector, ir.Undefined)
        for j in range(8):
            splat = builder.insert_element(splat, zero_v, lane[j])
        acc = [cgutils.alloca_once(builder, vector) for _ in range(4)]
        for a in acc:
            builder.store(splat, a)
        width = ir.Constant(n.type, LANES)
        with cgutils.for_range(builder, builder.udiv(n, width)) as loop:
            first = builder.mul(loop.index, width)
            for v, a in enumerate(acc):
                ptr = builder.gep(ary.data, [builder.add(first, ir.Constant(n.type, 8 * v))])
                block = builder.load(builder.bitcast(ptr, vector.as_pointer()))
                block.align = context.get_abi_alignment(scalar)
                builder.store(builder.fadd(builder.load(a), block), a)
        v = [builder.load(a) for a in acc]
        total = builder.fadd(builder.fadd(v[0], v[1]), builder.fadd(v[2], v[3]))
        s = [builder.extract_element(total, lane[j]) for j in range(8)]
        left = builder.fadd(builder.fadd(s[0], s[1]), builder.fadd(s[2], s[3]))
        right = builder.fadd(builder.fadd(s[4], s[5]), builder.fadd(s[6], s[7]))
        return builder.fadd(left, right)

    return sig, codegen


@numba.njit(error_model="numpy")
def pairwise(buf, n, zero):
    """``Σ buf[:n]`` in NumPy's order (``numpy.add.reduce`` of a contiguous float array).

    NumPy's pairwise sum: fewer than 8 elements one by one from ``zero``; up
    to 128 in eight interleaved sums started from the first eight elements,
    combined as ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))``, then the rest one by
    one; more, the two halves (the first a multiple of 8 long) summed so and
    added.
    """
    if n < 8:
        total = zero
        for k in range(n):
            total += buf[k]
        return total
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7]
        m = n - n % 8
        for k in range(8, m, 8):
            r0 += buf[k]
            r1 += buf[k + 1]
            r2 += buf[k + 2]
            r3 += buf[k + 3]
            r4 += buf[k + 4]
            r5 += buf[k + 5]
            r6 += buf[k + 6]
            r7 += buf[k + 7]
        total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for k in range(m, n):
            total += buf[k]
        return total
    half = n // 2
    half -= half % 8
    return pairwise(buf, half, zero) + pairwise(buf[half:], n - half, zero)


def _single(call, n):
    """A call whose one result may come as a value or a 1-tuple."""
    return f"only({call})" if n == 1 else call


def _simulated():
    from numba import config

    return bool(config.ENABLE_CUDASIM)


# -- the plan: segments cut into chunks ------------------------------------------------------------
class Plan:
    """Segments of a flat buffer cut into chunks of at most :data:`CHUNK` elements.

    ``starts``/``counts`` give each segment's first element and length, in
    buffer order. The arrays are what the kernels read: ``chunk_start``,
    ``chunk_stop``, ``chunk_seg`` (its segment) and ``seg_first`` (a
    segment's chunks are ``seg_first[s]:seg_first[s+1]``); ``seg_count``
    (float, in the compute dtype) is made per dtype by :meth:`count`.
    """

    def __init__(self, starts, counts, chunk=CHUNK):
        starts = np.asarray(starts, np.int64)
        counts = np.asarray(counts, np.int64)
        per = -(-counts // chunk)  # chunks per segment; 0 for an empty segment
        self.n_segments = len(counts)
        self.size = int(counts.sum())
        self.seg_first = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(per, out=self.seg_first[1:])
        n = int(self.seg_first[-1])
        self.chunk_seg = np.repeat(np.arange(len(counts), dtype=np.int64), per)
        within = np.arange(n, dtype=np.int64) - self.seg_first[:-1][self.chunk_seg]
        self.chunk_start = starts[self.chunk_seg] + within * chunk
        self.chunk_stop = np.minimum(self.chunk_start + chunk, (starts + counts)[self.chunk_seg])
        self.counts = counts
        self._cache = {}

    @property
    def n_chunks(self):
        return len(self.chunk_seg)

    def arrays(self, target, dtype):
        """The plan's arrays (and ``seg_count`` in ``dtype``) on ``target``, made once."""
        key = (target, np.dtype(dtype))
        if key not in self._cache:
            # Unsigned element indices: Numba then knows they are never negative and drops the
            # wrap-around test of every array access, which would keep LLVM from vectorising.
            host = {"chunk_start": self.chunk_start.astype(np.uint64), "chunk_stop": self.chunk_stop.astype(np.uint64),
                    "chunk_seg": self.chunk_seg,
                    "seg_first": self.seg_first, "seg_count": self.counts.astype(dtype)}
            if target == _arrays.CUDA:
                from numba import cuda

                host = {k: cuda.to_device(v) for k, v in host.items()}
            self._cache[key] = host
        return self._cache[key]


    def workspace(self, rule, target, dtype):
        """``(parts, values, temporaries)``: the arrays a step of ``rule`` fills in passing, made once.

        ``parts`` holds each chunk's sums, ``values`` each segment's values
        (on the CPU; on CUDA they are made per launch, on its stream) and
        the temporaries one full-size array per ``rule.temporaries`` (LAMB's
        direction ``r``), kept with the plan for its next step.
        """
        key = ("workspace", target, np.dtype(dtype), len(rule.sums), len(rule.values), len(rule.temporaries))
        if key not in self._cache:
            if target == _arrays.CUDA:
                from numba import cuda

                temps = [cuda.device_array(self.size, dtype) for _ in rule.temporaries]
                self._cache[key] = (None, None, temps)
            else:
                self._cache[key] = ([np.empty(self.n_chunks, dtype) for _ in rule.sums],
                                    [np.empty(self.n_segments, dtype) for _ in rule.values],
                                    [np.empty(self.size, dtype) for _ in rule.temporaries])
        return self._cache[key]


def _cuda_grid(n):
    if _simulated():
        return max(1, min(n, 4))
    from ._engine import _multiprocessors
    from numba import cuda

    return max(1, min(n, _multiprocessors(cuda.get_current_device().id) * 32))


def launch(rule, plan, weight, grad, state, segment_state, segment_inputs, args, master=None, counter=None):
    """Reduce, then update: three launches over ``plan``, in place.

    ``state`` are the element-wise state arrays, ``segment_state`` the
    per-segment ones (length ``plan.n_segments``, written), ``segment_inputs``
    per-segment constants (host NumPy arrays; moved to the device here and
    cached with the plan), ``args`` the rule's scalars in the order of
    ``rule.scalar_names`` (already in the compute dtype). ``master`` is the
    float32 master copy of a float16 weight.
    """
    if plan.size == 0:
        return
    target = _arrays.target_of(weight)
    args = dict(zip(rule.scalar_names, args))
    summand_args = [args[n] for n in rule._summand_scalars]
    segment_args = [args[n] for n in rule._segment_scalars]
    update_args = [args[n] for n in rule._update_scalars]
    if target == _arrays.CPU:
        w = weight.reshape(-1) if master is None else master.reshape(-1)
        g = grad.reshape(-1) if master is None else grad.reshape(-1).astype(np.float32)
        dtype = w.dtype
        zero = dtype.type(0)
        arrays = [w, g, *(a.reshape(-1) for a in state)]
        p = plan.arrays(target, dtype)
        parts, values, temps = plan.workspace(rule, target, dtype)
        seg_state = [a.reshape(-1) for a in segment_state]
        seg_in = [np.asarray(a, dtype) for a in segment_inputs]
        parallel = plan.size >= _CPU_PARALLEL_THRESHOLD()
        rule.kernel("reduce", target, parallel=parallel)(
            *arrays, *temps, *parts, p["chunk_start"], p["chunk_stop"], p["chunk_seg"], p["seg_first"],
            _scratch(dtype, _GROUP * len(rule.sums)), zero, *summand_args)
        rule.kernel("segment", target, parallel=parallel and plan.n_segments > 1024)(
            *parts, p["seg_first"], p["seg_count"], *seg_state, *seg_in, *values, zero, *segment_args)
        by_name = dict(zip((*rule.segment_state, *rule.values), (*seg_state, *values)))
        named = dict(zip((*rule.arrays, *rule.temporaries), (*arrays, *temps)))
        rule.kernel("update", target, parallel=parallel)(
            *(named[a] for a in rule.update_arrays), *(by_name[n] for n in rule.update_segment),
            p["chunk_start"], p["chunk_stop"], p["chunk_seg"], *update_args)
        if counter is not None:
            counter(3)
        if master is not None:
            np.copyto(weight, master, casting="same_kind")
        return
    from numba import cuda

    flats = [_arrays.flat(a) for a in (weight, grad, *state)]
    if master is not None:
        flats.insert(0, _arrays.flat(master))  # the rule's w is the master copy
        w16, flats = flats[1], [flats[0], *flats[2:]]
    dtype = np.dtype(flats[0].dtype)
    stream = _arrays.stream_of(weight)
    p = plan.arrays(target, dtype)
    key = ("inputs", target, dtype)
    if key not in plan._cache:
        plan._cache[key] = {}
    seg_in = []
    for k, a in enumerate(segment_inputs):
        host = np.ascontiguousarray(a, dtype)
        cached = plan._cache[key].get(k)
        if cached is None or not np.array_equal(cached[0], host):
            cached = (host, cuda.to_device(host))
            plan._cache[key][k] = cached
        seg_in.append(cached[1])
    parts = [cuda.device_array(plan.n_chunks, dtype, stream=stream) for _ in rule.sums]
    values = [cuda.device_array(plan.n_segments, dtype, stream=stream) for _ in rule.values]
    temps = plan.workspace(rule, target, dtype)[2]
    seg_state = [_arrays.flat(a) for a in segment_state]
    zero = dtype.type(0)
    threads = 8 if _simulated() else _CUDA_THREADS
    mp = master is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        rule.kernel("reduce", target, multi_precision=mp, dtype=dtype)[_cuda_grid(plan.n_chunks), threads, stream](
            *flats, *temps, *parts, p["chunk_start"], p["chunk_stop"], p["chunk_seg"], p["seg_first"], zero,
            *summand_args)
        seg_threads = 8 if _simulated() else 256
        rule.kernel("segment", target)[max(1, min(-(-plan.n_segments // seg_threads), 1024)), seg_threads, stream](
            *parts, p["seg_first"], p["seg_count"], *seg_state, *seg_in, *values, zero, *segment_args)
        by_name = dict(zip((*rule.segment_state, *rule.values), (*seg_state, *values)))
        named = dict(zip((*rule.arrays, *rule.temporaries), (*flats, *temps)))
        upd = rule.kernel("update", target, multi_precision=mp)
        head = [w16] if mp else []
        upd[_cuda_grid(plan.n_chunks), threads, stream](
            *head, *(named[a] for a in rule.update_arrays), *(by_name[n] for n in rule.update_segment),
            p["chunk_start"], p["chunk_stop"], p["chunk_seg"], *update_args)
    if counter is not None:
        counter(3)


_SCRATCH = {}


def _scratch(dtype, rows):
    """Each CPU thread's ``rows`` chunk-sized rows for the reduce pass's summands, made once.

    Row block ``t`` belongs to the thread whose ``numba.get_thread_id()`` is
    ``t``; Numba kernels hold the GIL, so two launches never share it.
    """
    key = (np.dtype(dtype), max(rows, 1))
    if key not in _SCRATCH:
        _SCRATCH[key] = np.empty((numba.config.NUMBA_NUM_THREADS, key[1], CHUNK), dtype)
    return _SCRATCH[key]


def _CPU_PARALLEL_THRESHOLD():  # noqa: N802 - read at call time, so tests may lower it
    from . import _engine

    return _engine.CPU_PARALLEL_THRESHOLD


# -- one array's sum of squares (LBSGD's 'lars' strategy) -------------------------------------------
def _keep(total, count):
    return total


def _unchanged(w, g):
    return w


def _sum_squares_summand(w, g):
    return w * w


_SQUARES = LayerwiseRule(_sum_squares_summand, _keep, _unchanged, 0, ("total",), values=("total_out",))


def sum_squares(array) -> float:
    """``Σ x²`` over every element of ``array`` (NumPy or CUDA), as a Python float.

    Summed in the array's dtype (float32 for float16), in the engine's order
    (module doc): for an array of at most :data:`CHUNK` elements on the CPU a
    plain sequential loop, MXNet 1.9.1's ``multi_sum_sq``; a longer one in
    :data:`CHUNK`-element chunks, each in :func:`lanes`, the chunk sums in
    order. (MXNet's LBSGD instead sums ``(v*v).asnumpy()`` with NumPy's
    pairwise sum: equal up to rounding.)

    Example:
      >>> import numpy as np
      >>> sum_squares(np.array([3, 4], np.float32))
      25.0
    """
    from . import _checks

    described = _checks.array("array", array)
    if described.size == 0:
        return 0.0
    dtype = np.float32 if described.dtype == np.float16 else described.dtype
    x = _arrays.flat(array)
    if described.target == _arrays.CPU:
        x = x.astype(dtype, copy=False)
    plan = _plan_for(described.size)
    arrays = plan.arrays(described.target, dtype)
    if described.target == _arrays.CPU:
        part = np.empty(plan.n_chunks, dtype)
        _SQUARES.kernel("reduce", _arrays.CPU, parallel=described.size >= _CPU_PARALLEL_THRESHOLD())(
            x, x, part, arrays["chunk_start"], arrays["chunk_stop"], arrays["chunk_seg"], arrays["seg_first"],
            _scratch(dtype, _GROUP), np.dtype(dtype).type(0))
    else:
        from numba import cuda

        if described.dtype == np.float16:
            x = cuda.to_device(_arrays.to_host(array).reshape(-1).astype(np.float32))
        stream = _arrays.stream_of(array)
        part = cuda.device_array(plan.n_chunks, dtype, stream=stream)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumbaPerformanceWarning)
            _SQUARES.kernel("reduce", _arrays.CUDA, dtype=dtype)[_cuda_grid(plan.n_chunks),
                                                                  8 if _simulated() else _CUDA_THREADS, stream](
                x, x, part, arrays["chunk_start"], arrays["chunk_stop"], arrays["chunk_seg"], arrays["seg_first"],
            np.dtype(dtype).type(0))
        part = part.copy_to_host(stream=stream)
    total = part[0]
    for v in part[1:]:
        total = total + v
    return float(total)


_PLANS = {}


def _plan_for(size):
    """The one-segment plan of ``size`` elements (cached)."""
    plan = _PLANS.get(size)
    if plan is None:
        if len(_PLANS) > 256:
            _PLANS.clear()
        plan = _PLANS[size] = Plan([0], [size])
    return plan


__all__ = ["CHUNK", "LayerwiseRule", "Plan", "launch", "sum_squares"]


# -- a cast the rules need: round a float64 intermediate to the compute dtype ---------------------
def narrow(x, like):
    """``x`` rounded to the floating type of ``like`` (float32 or float64).

    A float32 rule that divides in double, as MXNet's LAMB does for
    ``m / (1 − β₁ᵗ)``, rounds the quotient back with this.
    """
    return type(like)(x) if isinstance(like, np.floating) else float(x)


def only(x):
    """``x[0]`` for a 1-tuple, else ``x``: a function with one result may return it either way."""
    return x[0] if isinstance(x, tuple) else x


def _register_overloads():
    from numba import types
    from numba.extending import overload

    @overload(narrow)
    def _narrow(x, like):
        if like == types.float32:
            return lambda x, like: np.float32(x)
        return lambda x, like: np.float64(x)

    @overload(only)
    def _only(x):
        if isinstance(x, types.BaseTuple):
            return lambda x: x[0]
        return lambda x: x


_register_overloads()
