"""Training counters and the normalised gradient, after MXNet.jl.

MXNet.jl hands its schedules an ``OptimizationState`` (the batch size and
three counters) and gives every optimizer ``normgrad!``, which rescales,
clips and adds weight decay to a gradient in one call. mxopt has both, with
Python names:

* :class:`OptimizationState`: ``batch_size``, ``epoch``, ``batch`` and
  ``iteration`` (MXNet.jl's ``curr_epoch``, ``curr_batch``, ``curr_iter``),
  advanced by :meth:`~OptimizationState.next_epoch` and
  :meth:`~OptimizationState.next_batch`;
* :func:`normgrad`: ``g ← clip(r·g, c) + λ·w`` in place, the gradient
  ``g̃`` that SGD steps along (weight decay after the clip, as MXNet.jl and
  MXNet's SGD add it).

``normgrad`` is an update rule like the optimizers' (:mod:`mxopt._engine`
compiles it for the CPU and CUDA) and takes ``r``, ``c`` and ``λ`` from an
optimizer, whose attributes were checked when they were set; its arrays go
through the same checks (:mod:`mxopt._checks`) as an update's.

>>> import numpy as np, mxopt
>>> state = mxopt.OptimizationState(batch_size=32)
>>> for epoch in range(2):
...     state.next_epoch()
...     for batch in range(3):
...         state.next_batch()
>>> state
OptimizationState(batch_size=32, epoch=2, batch=3, iteration=6)
>>> opt = mxopt.SGD(rescale_grad=0.5, clip_gradient=1.0, wd=0.1)
>>> g = np.array([4.0, -1.0, 0.5], np.float32)
>>> mxopt.normgrad(opt, np.ones(3, np.float32), g)
array([ 1.1 , -0.4 ,  0.35], dtype=float32)

Reference: MXNet.jl, ``src/optimizer.jl`` (``OptimizationState``,
``normgrad!``).
"""
from __future__ import annotations

import numpy as np

from . import _checks, _engine
from ._scalar import clip


def normgrad_rule(g, w, wd, rescale_grad, clip_gradient):
    """``g̃ = clip(r·g, c) + λ·w`` for one element (the gradient is the array written)."""
    return clip(rescale_grad * g, clip_gradient) + wd * w


#: ``normgrad`` as a compiled rule: the gradient is the array it writes, the weight is read.
NORMGRAD_RULE = _engine.UpdateRule(normgrad_rule, n_state=0)

_COUNT = _checks.integer(0)


class OptimizationState:
    """The batch size and the epoch, batch and iteration counts of a training run.

    MXNet.jl's ``OptimizationState`` with Python names:

    * ``epoch``: 0 before training, 1 during the first pass over the data,
      2 during the second, ...;
    * ``batch``: the mini-batch within the epoch: 0 at the start of each
      epoch, 1 during its first mini-batch, ...;
    * ``iteration``: every mini-batch seen so far, never reset (an
      optimizer's ``num_update`` when each mini-batch is one update).

    A schedule of epochs reads ``sched(state.epoch)``, one of iterations
    ``sched(state.iteration)``.

    >>> s = OptimizationState(16)
    >>> s.next_epoch(); s.next_batch(); s.next_batch(); s.next_epoch(); s.next_batch()
    >>> s.epoch, s.batch, s.iteration
    (2, 1, 3)
    """

    batch_size = _checks.Hyper(_checks.integer(1), "the mini-batch size")
    epoch = _checks.Hyper(_COUNT, "the current epoch (0 before training)")
    batch = _checks.Hyper(_COUNT, "the mini-batch within the epoch (0 at its start)")
    iteration = _checks.Hyper(_COUNT, "every mini-batch so far")

    def __init__(self, batch_size, epoch=0, batch=0, iteration=0):
        batch_size, epoch, batch, iteration = (
            _checks.integer(1)("batch_size", batch_size), _COUNT("epoch", epoch), _COUNT("batch", batch),
            _COUNT("iteration", iteration))
        if batch > iteration:
            raise ValueError(f"batch ({batch}) counts mini-batches of this epoch, so it cannot exceed "
                             f"iteration ({iteration}), which counts them all")
        if epoch == 0 and iteration > 0:
            raise ValueError(f"epoch 0 means no training yet, but iteration is {iteration}")
        self.batch_size, self.epoch, self.batch, self.iteration = batch_size, epoch, batch, iteration

    def next_epoch(self):
        """Start the next pass over the data: ``epoch += 1``, ``batch = 0``."""
        if self.epoch == _checks.INT64_MAX:
            raise ValueError(f"epoch would pass {_checks.INT64_MAX}")
        self.epoch += 1
        self.batch = 0

    def next_batch(self):
        """Start the next mini-batch: ``batch += 1``, ``iteration += 1``."""
        if self.epoch == 0:
            raise ValueError("next_batch() before next_epoch(): epoch 0 means no training yet")
        if self.iteration == _checks.INT64_MAX:
            raise ValueError(f"iteration would pass {_checks.INT64_MAX}")
        self.batch += 1
        self.iteration += 1

    def __eq__(self, other):
        if not isinstance(other, OptimizationState):
            return NotImplemented
        return vars(self) == vars(other)

    def __repr__(self):
        return (f"OptimizationState(batch_size={self.batch_size}, epoch={self.epoch}, batch={self.batch}, "
                f"iteration={self.iteration})")


def normgrad(optimizer, weight, grad, index=None):
    """Rescale, clip and decay ``grad`` in place: ``g ← clip(r·g, c) + λ·w``; returns ``grad``.

    ``r``, ``c`` and ``λ`` are the optimizer's ``rescale_grad``,
    ``clip_gradient`` (``None``: no clipping) and ``wd``; with ``index``,
    ``λ`` includes that parameter's ``wd_mult``, as an update would use it.
    This is MXNet.jl's ``normgrad!(opt, W, ∇)``: the same arithmetic as the
    gradient inside SGD's step (``g̃`` of the notation page), on its own.

    ``grad`` and ``weight`` are float32 or float64 arrays of one shape,
    dtype and device (NumPy, or CUDA arrays); ``grad`` is written, so it
    must not share memory with ``weight``. Everything is checked before
    ``grad`` changes.

    >>> import numpy as np, mxopt
    >>> opt = mxopt.SGD(rescale_grad=0.1, wd=0.01)
    >>> mxopt.normgrad(opt, np.full(2, 10.0), np.array([1.0, -3.0]))
    array([ 0.2, -0.2])
    """
    from .optimizer import Optimizer, _check_index

    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be an mxopt Optimizer (its rescale_grad, clip_gradient and wd are "
                        f"used), got {type(optimizer).__name__}")
    g = _checks.array("grad", grad)
    _checks.writeable("grad", g)
    if g.dtype == np.float16:
        raise TypeError("grad must have dtype float32 or float64, got float16 (normgrad computes in the "
                        "gradient's dtype; convert it to float32 first)")
    w = _checks.same_layout("weight", weight, g, "grad")
    _checks.disjoint([("grad", g), ("weight", w)], read_only={"weight"})
    wd = optimizer.wd if index is None else optimizer._get_wd(_check_index(index))
    args = _checks.step_scalars(optimizer._gradient_scalars(wd), NORMGRAD_RULE.scalar_names, g.dtype,
                                optimizer.off_when_infinite)
    _engine.launch(NORMGRAD_RULE, grad, weight, (), args)
    return grad


__all__ = ["NORMGRAD_RULE", "OptimizationState", "normgrad", "normgrad_rule"]
