"""Stochastic Gradient Langevin Dynamics: gradient steps plus Gaussian noise, to sample a posterior.

Welling & Teh (2011) add to a half gradient step on ``f = −log p(w | data)``
Gaussian noise of variance ``η``; as ``η → 0`` the iterates are samples of
``p(w | data) ∝ exp(−f(w))`` instead of converging to its mode (the
Euler–Maruyama discretisation of the Langevin diffusion
``dw = −½∇f(w)dt + dB_t``, with time step ``η``). With the guide's
``g̃_t = clip(r·g_t, c)`` and the L2 term ``λ·w`` (a Gaussian prior)::

    w_{t+1} = w_t − (η_{t+1}/2)·(g̃_t + λ·w_t) + ξ_{t+1},    ξ_{t+1} ~ N(0, η_{t+1})

MXNet 1.9.1 (``mx.optimizer.SGLD``) computes the same, in float32 NDArray
operations: ``w += (−η/2)·(g̃ + λ·w)``, then ``w += normal(0, √η)`` from
MXNet's global generator. (Its docstring cites Girolami & Calderhead's
Riemannian variant, but there is no preconditioning.) The rule below keeps
MXNet's order for the deterministic part, bit for bit; the noise cannot be
MXNet's. mxopt draws it inside the kernel from a counter-based generator
(:mod:`mxopt._random`: Philox-4x32-10 and the Box–Muller transform) keyed
by ``(seed, parameter name)`` and counted by ``(update count t, block of
four elements)``, and hands each element its deviate ``z`` (float32)::

    ξ = √η · z   (in the weight's dtype),   z: the element's deviate under key(seed, name) at update t

(MXNet too adds a float32 ``normal(0, √η)``), so that

* no random state is stored: SGLD keeps no state arrays, and a checkpoint
  (which holds the update counts) restores the stream exactly;
* two optimizers built with the same arguments draw the same noise; two
  parameters never draw the same (their keys differ: a collision of the
  64-bit keys is an error);
* a parameter's noise does not depend on how it is stored: in a Trainer's
  flat buffer each parameter lays out its deviates on its own, under its
  own name, as when it is updated alone (``update(name, ...)``; a list of
  parameters is named ``"0"``, ``"1"``... as ``update(0, ...)`` is);
* the CPU and CUDA kernels add the same noise bits (see :mod:`mxopt._random`
  for why the deviate is bitwise the same on both), and give the same
  weights: the rule's products go through ``mul_rn``, which CUDA never fuses
  into a multiply-add, so every operation rounds as on the CPU.
"""
import math

import numpy as np

from .. import _checks, _random
from .._engine import Parts, UpdateRule
from .._random import mul_rn
from .._scalar import clip
from ..optimizer import Optimizer, register


def sgld(w, g, z, half_lr, sqrt_lr, wd, rescale_grad, clip_gradient):
    """One SGLD step: ``w ← w + (−η/2)·(clip(r·g, c) + λ·w) + √η·z``, ``z`` the element's standard normal deviate.

    ``half_lr`` is ``η/2`` in the compute dtype (MXNet's ``−lr/2`` cast to
    float32); ``sqrt_lr`` is ``√η`` in the compute dtype too; the engine
    draws ``z`` (float32, :mod:`mxopt._random`).
    ``mul_rn(a, b)`` is ``a·b``, kept out of CUDA's fused multiply-adds so
    that both targets round every product: the same bits on the CPU and GPU.
    """
    grad = clip(mul_rn(rescale_grad, g), clip_gradient)  # the identity when clipping is off (c = ∞)
    w = w + mul_rn(-half_lr, grad + mul_rn(wd, w))
    return w + mul_rn(sqrt_lr, z)


SGLD_RULE = UpdateRule(sgld, n_state=0, noise="z")


@register
class SGLD(Optimizer):
    """Stochastic Gradient Langevin Dynamics (``mx.optimizer.SGLD``), with reproducible noise.

    ``w ← w − (η/2)·(clip(r·g, c) + λ·w) + N(0, η)``: a half gradient step
    plus Gaussian noise of variance ``η``, whose iterates sample
    ``exp(−f)`` for small ``η``. SGLD keeps no state.

    Args:
      seed: an integer in [0, 2⁶⁴): the noise is a function of ``seed``,
        the parameter's name (``idx2name[index]``, else ``str(index)``, or
        its name in a Trainer), the update count and the element index.
      **kwargs: see :class:`mxopt.Optimizer` (learning_rate=0.01, wd,
        rescale_grad, clip_gradient, lr_scheduler, multi_precision, ...).

    Example:
      >>> import numpy as np, mxopt
      >>> opt = mxopt.SGLD(learning_rate=1e-4, seed=7)
      >>> w = np.ones(3, np.float32)
      >>> opt.update(0, w, np.ones(3, np.float32), opt.create_state(0, w))
      >>> bool(np.all(np.abs(w - (1 - 0.5e-4)) < 0.05))   # a small step plus N(0, 1e-4) noise
      True

    References: Welling & Teh (2011), "Bayesian learning via stochastic
    gradient Langevin dynamics", ICML; Salmon et al. (2011), "Parallel
    random numbers: as easy as 1, 2, 3", SC'11 (the generator).
    """

    rule = SGLD_RULE
    seed = _checks.Hyper(_checks.integer(0, (1 << 64) - 1), "seed of the noise")

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def step_scalars(self, index, t, lr, wd):
        return {**super().step_scalars(index, t, lr, wd), "half_lr": lr / 2, "sqrt_lr": math.sqrt(lr)}

    # -- the noise streams: one key per parameter name ----------------------------------------
    def _parameters(self, index):
        """``[(name, size)]`` of the parameters the array of ``index`` holds, in buffer order."""
        layout = self._layouts.get(index)
        if layout is None:
            return [(self.idx2name.get(index, str(index)), None)]
        return [(name, int(np.prod(shape, dtype=np.int64))) for name, shape in layout]

    def stream_key(self, name):
        """The 64-bit generator key of parameter ``name`` (seed and name mixed; distinct names, distinct keys)."""
        keys = self.__dict__.setdefault("_stream_keys", {})  # {(seed, name): key}; the seed may be reassigned
        if (self.seed, name) not in keys:
            key = _random.stream_key(self.seed, name)
            for (seed, other), k in keys.items():
                if k == key and seed == self.seed and other != name:
                    raise ValueError(f"parameters {other!r} and {name!r} have the same noise key under seed "
                                     f"{self.seed}: rename one, or choose another seed")
            keys[self.seed, name] = key
        return keys[self.seed, name]

    def normals(self, name, t, n):
        """The standard normal deviates ``z`` of the ``n`` elements of parameter ``name`` at update ``t``.

        Update ``t`` of that parameter adds ``√η_t · z`` (in the weight's
        dtype); this recomputes them on the host (float32 values in a
        float64 array), e.g. to check or replay a run.
        """
        return _random.normals(self.stream_key(name), _checks.integer(1)("t", t), _checks.integer(0)("n", n))

    def _checked(self, index, rule, weight, grad, state):
        checked = super()._checked(index, rule, weight, grad, state)
        size = checked[3][0][1].size
        parts = self._parameters(index)
        total = sum(n for _, n in parts if n is not None)
        if parts[0][1] is not None and total != size:
            raise ValueError(f"the layout of index {index!r} holds {total} elements ({len(parts)} parameters), "
                             f"its array {size}")
        largest = max(size if n is None else n for _, n in parts)
        if largest > _random.MAX_ELEMENT + 1:
            raise ValueError(f"SGLD's generator numbers at most {_random.MAX_ELEMENT + 1} elements per parameter, got {largest}")
        return checked

    def _rule_scalars(self, rule, dtype, index, t, lr, wd, carried, num_update):
        scalars = super()._rule_scalars(rule, dtype, index, t, lr, wd, carried, num_update)
        parts, start = [], 0
        for name, size in self._parameters(index):
            stop = None if size is None else start + size
            parts.append((start, stop, (np.uint64(self.stream_key(name)), np.uint64(t))))
            start = stop
        return Parts(parts, scalars)
