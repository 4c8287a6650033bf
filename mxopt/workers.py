r"""Data-parallel workers simulated inside one process: shards, the gradient exchange, and a training driver.

The chapters on Signum, LARS/LBSGD and DCASGD need :math:`M` workers that
each hold a shard of the data and exchange gradients.  This module simulates
them in one process, one after the other, with no threads: the schedule is
deterministic for a seed.  It never changes an optimizer; it only decides
*which gradient* reaches the update and *at which weights* it was computed.

* :func:`shard` splits a training set into :math:`M` shards, at random
  (``'iid'``) or sorted by label (``'label'``: each worker sees a few classes).
* Synchronous exchange (MXNet's ``dist_sync``): :func:`allreduce_sum` /
  :func:`allreduce_mean` add up (average) the workers' gradients, 32 bits per
  float32 coordinate each way; :func:`majority_vote` sends each worker's
  signs bit-packed (1 bit per coordinate) and returns the sign of their sum.
  A :class:`CommLog` counts the bytes of every exchange.
* Asynchronous exchange (MXNet's ``dist_async``, a parameter server):
  :func:`async_schedule` says, for every update, at which earlier weights
  its gradient was computed (a fixed or random delay :math:`\tau`).
* :func:`train_data_parallel` trains an :class:`mxopt.models.MLP` with any
  mxopt optimizer in the three modes and returns a :class:`ParallelHistory`.

**The exchange in MXNet's terms** (so that a real, multi-process store can
replace it, issue 11).  MXNet's KVStore *sums* the gradients it is pushed and
the Trainer's ``step(batch_size)`` divides by the *global* batch; a worker's
gradient here is likewise the gradient of its *summed* loss, and the driver
calls ``trainer.step(B)`` with :math:`B = \sum_k B_k`.
:func:`allreduce_sum` is ``kv.pushpull(key, grads)`` on a ``'dist_sync'``
store given one value per worker (as MXNet's ``'local'`` store is given one
value per device); :func:`majority_vote` is the same call with the signs
1-bit compressed and voted on; the asynchronous mode is ``'dist_async'``
with the optimizer on the server (``kv.set_optimizer``).  The functions take
the list of the :math:`M` workers' values, which in a real store is the list
of one rank's local values.

Bytes are payload only (no message headers): a float32 gradient of
:math:`D` coordinates is :math:`4D` bytes, its signs
:math:`\lceil D/8\rceil` bytes (``np.packbits``), so the vote sends
:math:`\lceil D/8\rceil / 4D` of the allreduce's bytes, exactly
:math:`1/32` when 8 divides :math:`D`.  Both count the parameter-server
pattern: every worker sends its message up and receives the result down.

Example:
  >>> import numpy as np
  >>> from mxopt import workers
  >>> g = [np.array([1., -2., 3.], np.float32), np.array([-1., -1., 1.], np.float32),
  ...      np.array([3., 0., -7.], np.float32)]       # three workers' gradients
  >>> log = workers.CommLog()
  >>> workers.allreduce_mean(g, log), workers.majority_vote(g, log)
  (array([ 1., -1., -1.], dtype=float32), array([ 1., -1.,  1.], dtype=float32))
  >>> log.up, log.down                       # 3 workers × 12 bytes, then 3 workers × 1 byte
  ([36, 3], [36, 3])

References: J. Dean et al., "Large Scale Distributed Deep Networks", *NIPS*
2012 (parameter servers, asynchronous SGD); P. Goyal et al., "Accurate,
Large Minibatch SGD: Training ImageNet in 1 Hour", arXiv:1706.02677, 2017
(data parallelism and the linear scaling rule); J. Bernstein, Y.-X. Wang,
K. Azizzadenesheli and A. Anandkumar, "signSGD: Compressed Optimisation for
Non-Convex Problems", *ICML* 2018, and J. Bernstein, J. Zhao,
K. Azizzadenesheli and A. Anandkumar, "signSGD with Majority Vote is
Communication Efficient and Fault Tolerant", *ICLR* 2019; S. Zheng et al.,
"Asynchronous Stochastic Gradient Descent with Delay Compensation", *ICML*
2017 (DC-ASGD).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import _checks
from .datasets import Dataset
from .models import EpochRecord

__all__ = [
    "Shard",
    "shard",
    "batch_schedule",
    "CommLog",
    "allreduce_sum",
    "allreduce_mean",
    "pack_signs",
    "unpack_signs",
    "majority_vote",
    "AsyncSchedule",
    "async_schedule",
    "ParallelHistory",
    "train_data_parallel",
    "pulled_into_state",
]

MODES = ("allreduce", "vote", "async")
PARTITIONS = ("iid", "label")

_count = _checks.integer(0)
_positive = _checks.integer(1)


# ---------------------------------------------------------------------------
# Shards and batches
# ---------------------------------------------------------------------------


class Shard(NamedTuple):
    """One worker's part of the training set: its rows ``index`` (ascending) of the full set, and ``X``, ``y`` there."""

    index: np.ndarray
    X: np.ndarray
    y: np.ndarray


def _training_arrays(data):
    if isinstance(data, Dataset):
        return np.asarray(data.X_train), np.asarray(data.y_train)
    if isinstance(data, tuple) and len(data) == 2:
        X, y = np.asarray(data[0]), np.asarray(data[1])
        if X.ndim < 1 or y.shape != X.shape[:1]:
            raise ValueError(f"data must be (X, y) with one label per row of X, got shapes {X.shape} and {y.shape}")
        return X, y
    raise TypeError(f"data must be an mxopt.datasets.Dataset or a tuple (X, y), got {type(data).__name__}")


def _workers(workers, n):
    workers = _positive("workers", workers)
    if workers > n:
        raise ValueError(f"workers={workers} is more than the {n} training examples: every worker needs at least one")
    return workers


def shard(data, workers, partition="iid", seed=0) -> list:
    r"""Split the training set of ``data`` into ``workers`` shards of (almost) equal size.

    Sizes are :math:`\lfloor N/M\rfloor` or :math:`\lceil N/M\rceil` rows.

    * ``partition='iid'``: a random permutation of the :math:`N` rows, cut
      into :math:`M` consecutive pieces (``np.array_split``), so every shard is
      a uniform sample of the data: the workers' gradients are unbiased
      estimates of the same full gradient.
    * ``partition='label'``: the rows sorted by label (stably), cut the same
      way, so each worker holds only about :math:`C/M` of the :math:`C`
      classes (McMahan et al.'s "pathological non-IID" split): the
      workers' gradients disagree, the case where a majority vote can fail.

    ``data`` is an :class:`mxopt.datasets.Dataset` (its training split) or a
    tuple ``(X, y)``.  Each shard's rows are in ascending order, so
    ``workers=1`` gives the whole set in its own order.  Deterministic: the
    same arguments give the same shards (``seed`` only matters for ``'iid'``).

    Example:
      >>> import numpy as np
      >>> X, y = np.arange(12.).reshape(6, 2), np.array([0, 1, 0, 1, 2, 2])
      >>> [s.y.tolist() for s in shard((X, y), 3, 'label')]
      [[0, 0], [1, 1], [2, 2]]

    Reference: H. B. McMahan et al., "Communication-Efficient Learning of
    Deep Networks from Decentralized Data", *AISTATS* 2017 (the label split).
    """
    X, y = _training_arrays(data)
    workers = _workers(workers, len(y))
    if partition == "iid":
        order = np.random.default_rng([_count("seed", seed), 1]).permutation(len(y))
    elif partition == "label":
        order = np.argsort(y, kind="stable")
    else:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")
    shards = []
    for piece in np.array_split(order, workers):
        index = np.sort(piece)
        shards.append(Shard(index, X[index], y[index]))
    return shards


def batch_schedule(shards, batch_size, epochs, seed=0):
    r"""Each epoch's synchronous steps: for step :math:`s`, one array of training-set rows per worker.

    Every epoch, worker :math:`k` visits its :math:`n_k` rows in a fresh
    random order, in batches of ``batch_size``; all workers take the same
    number of steps, :math:`S = \lceil \min_k n_k / b\rceil`, and each
    worker's last batch takes the rest of its shard, so every row is used
    once per epoch.  The orders are drawn from one
    ``numpy.random.default_rng(seed)``, worker 0 first: with one worker
    holding the whole set this is exactly :func:`mxopt.models.fit`'s order.

    Yields, for each of the ``epochs`` epochs, a list of :math:`S` tuples of
    :math:`M` int arrays (rows of the full training set).

    Example:
      >>> import numpy as np
      >>> shards = shard((np.zeros((10, 1)), np.zeros(10, int)), 2)
      >>> [[len(rows) for rows in step] for step in next(batch_schedule(shards, 2, epochs=1))]
      [[2, 2], [2, 2], [1, 1]]
    """
    batch_size = _positive("batch_size", batch_size)
    epochs = _count("epochs", epochs)
    if not isinstance(shards, Sequence) or not shards or not all(isinstance(s, Shard) for s in shards):
        raise TypeError("shards must be a non-empty list of Shard (what shard() returns)")
    steps = math.ceil(min(len(s.index) for s in shards) / batch_size)
    rng = np.random.default_rng(_count("seed", seed))
    for _ in range(epochs):
        orders = [s.index[rng.permutation(len(s.index))] for s in shards]
        yield [tuple(order[step * batch_size:(step + 1) * batch_size if step < steps - 1 else None]
                     for order in orders)
               for step in range(steps)]


# ---------------------------------------------------------------------------
# The synchronous exchange
# ---------------------------------------------------------------------------


@dataclass
class CommLog:
    """Bytes exchanged, one entry per step: ``up`` from the workers to the server (all workers), ``down`` back."""

    up: list = field(default_factory=list)
    down: list = field(default_factory=list)

    def record(self, up, down):
        """Append one step's bytes."""
        self.up.append(int(up))
        self.down.append(int(down))

    def __len__(self):
        return len(self.up)

    @property
    def bytes_per_step(self) -> np.ndarray:
        """``up + down`` for each step (int64)."""
        return np.asarray(self.up, np.int64) + np.asarray(self.down, np.int64)

    @property
    def total(self) -> int:
        """All bytes of all steps, both ways."""
        return int(self.bytes_per_step.sum())


def _flatten(value, names):
    """One vector of the arrays ``value[n]``, in the order of ``names``."""
    return np.concatenate([np.asarray(value[n]).reshape(-1) for n in names])


def _unflatten(row, shapes):
    """``{name: array of shapes[name]}``: views of consecutive pieces of ``row`` (what :func:`_flatten` undoes)."""
    offsets = np.cumsum([int(np.prod(shape, dtype=np.int64)) for shape in shapes.values()])[:-1]
    return {n: piece.reshape(shape) for (n, shape), piece in zip(shapes.items(), np.split(row, offsets))}


def _rows(values, arg):
    """The workers' values as 1-D arrays of one float dtype and length, and a function giving a row their shape back.

    ``values`` is a list (one entry per worker) of arrays of one shape, or of
    dicts ``{name: array}`` with the same names and shapes (such as
    :meth:`mxopt.models.MLP.loss_and_grad` returns), flattened in the first
    dict's order.
    """
    if isinstance(values, (np.ndarray, Mapping, str)) or not isinstance(values, Sequence):
        raise TypeError(f"{arg} must be a list with one array (or dict of arrays) per worker, "
                        f"got {type(values).__name__}")
    if not values:
        raise ValueError(f"{arg} is empty: it needs one value per worker (at least one worker)")
    first = values[0]
    if isinstance(first, Mapping):
        names = list(first)
        shapes = {n: np.shape(first[n]) for n in names}
        for k, value in enumerate(values):
            if not isinstance(value, Mapping) or list(value) != names or \
                    any(np.shape(value[n]) != shapes[n] for n in names):
                raise ValueError(f"{arg}[{k}] must have the names and shapes of {arg}[0]: {shapes}")
        rows = [_flatten(value, names) for value in values]

        def restore(row):
            return _unflatten(row, shapes)
    else:
        shape = np.shape(first)
        for k, value in enumerate(values):
            if np.shape(value) != shape:
                raise ValueError(f"{arg}[{k}] has shape {np.shape(value)}, {arg}[0] has {shape}")
        rows = [np.asarray(value).reshape(-1) for value in values]

        def restore(row):
            return row.reshape(shape)
    dtypes = {row.dtype for row in rows}
    if len(dtypes) != 1 or rows[0].dtype.kind != "f":
        raise TypeError(f"{arg} must all have one float dtype, got {sorted(map(str, dtypes))}")
    return rows, restore


def allreduce_sum(grads, log=None):
    r"""The sum of the workers' gradients, :math:`\sum_{k=1}^{M} g^{(k)}`, as every worker receives it.

    What MXNet's ``dist_sync`` store computes (it sums; the Trainer divides
    by the global batch).  With worker :math:`k` sending the gradient of its
    batch's *summed* loss, :math:`g^{(k)} = \sum_{i \in \mathcal B^{(k)}} \nabla \ell_i(w)`,
    the sum divided by :math:`B = \sum_k B_k` is the mean gradient over the
    union of the batches: :math:`M` workers of :math:`B_k` examples take the
    step one process would take on all :math:`B` of them.  The sum is taken
    in worker order, :math:`((g^{(1)} + g^{(2)}) + g^{(3)}) + \dots`, so it is
    reproducible; one worker's sum is its gradient, bit for bit.

    ``grads``: a list of :math:`M` float arrays of one shape and dtype, or of
    dicts ``{name: array}`` (the sum is then a dict).  ``log``: a
    :class:`CommLog` that records :math:`M D s` bytes up (each worker sends
    its :math:`D` coordinates of :math:`s` bytes: 4 for float32) and
    :math:`M D s` down (each receives the sum).

    Example:
      >>> import numpy as np
      >>> allreduce_sum([np.ones(3, np.float32), np.arange(3, dtype=np.float32)])
      array([1., 2., 3.], dtype=float32)

    Reference: J. Dean et al., *NIPS* 2012; P. Goyal et al., arXiv:1706.02677, 2017.
    """
    rows, restore = _rows(grads, "grads")
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    if log is not None:
        nbytes = len(rows) * total.nbytes
        log.record(nbytes, nbytes)
    return restore(total)


def allreduce_mean(grads, log=None):
    r"""The mean of the workers' gradients, :math:`\frac1M \sum_k g^{(k)}` (:func:`allreduce_sum` divided by :math:`M`).

    With equal batches and batch-*mean* gradients this is the mean gradient
    over all :math:`M B_k` examples.  Bytes are counted as for
    :func:`allreduce_sum`.

    Example:
      >>> import numpy as np
      >>> allreduce_mean([{'w': np.ones(2, np.float32)}, {'w': np.zeros(2, np.float32)}])
      {'w': array([0.5, 0.5], dtype=float32)}
    """
    rows, _ = _rows(grads, "grads")
    total = allreduce_sum(grads, log)
    if isinstance(total, dict):
        return {n: v / v.dtype.type(len(rows)) for n, v in total.items()}
    return total / total.dtype.type(len(rows))


def _finite(row, arg):
    if not np.all(np.isfinite(row)):
        raise ValueError(f"{arg} holds NaN or inf: it has no sign")


def pack_signs(x) -> np.ndarray:
    r"""The signs of a real array as bits, 8 coordinates a byte: bit 1 for :math:`x_i \ge 0`, bit 0 for :math:`x_i < 0`.

    One bit holds two values, so :math:`\operatorname{sign}(0)` is sent as
    :math:`+1` (and so is ``-0.0``).  Returns ``np.packbits`` of the bits in
    C order: :math:`\lceil D/8\rceil` uint8 for :math:`D` coordinates, the
    last byte padded with zeros.

    Example:
      >>> pack_signs(np.array([0.5, -2.0, 0.0, -1e-9, 3.0]))
      array([168], dtype=uint8)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x must be a real array, got {x.dtype}")
    _finite(x, "x")
    return np.packbits(x.reshape(-1) >= 0)


def unpack_signs(packed, n, dtype=np.float32) -> np.ndarray:
    r"""The :math:`\pm 1` vector of length ``n`` that :func:`pack_signs` packed, in ``dtype``.

    Example:
      >>> unpack_signs(pack_signs(np.array([0.5, -2.0, 0.0, -1e-9, 3.0])), 5)
      array([ 1., -1.,  1., -1.,  1.], dtype=float32)
    """
    packed = np.asarray(packed)
    n = _count("n", n)
    if packed.dtype != np.uint8 or packed.shape != (math.ceil(n / 8),):
        raise ValueError(f"packed must be {math.ceil(n / 8)} uint8 bytes for n={n}, got {packed.dtype} {packed.shape}")
    bits = np.unpackbits(packed, count=n).astype(dtype)
    return bits + bits - 1


def majority_vote(values, log=None):
    r"""signSGD's majority vote: the workers send their signs as bits, the server returns the sign of their sum.

    .. math::
        V = \operatorname{sign}\Bigl(\sum_{k=1}^{M} \operatorname{sign}\bigl(v^{(k)}\bigr)\Bigr),

    where :math:`v^{(k)}` is worker :math:`k`'s momentum (Signum) or gradient
    (signSGD) and :math:`V` is what every worker applies,
    :math:`w \leftarrow w - \eta\, V`.  The messages really are bits: each
    worker's signs go through :func:`pack_signs`, the server counts the
    :math:`+1`'s against the :math:`-1`'s and packs its answer again.  The
    rule for zeros, stated: a worker sends :math:`\operatorname{sign}(0) =
    +1`, and a tie (possible only for even :math:`M`) is decided as
    :math:`+1`, so that the answer, too, is one bit per coordinate.  For odd
    :math:`M` no tie can happen.

    ``values``: a list of :math:`M` finite float arrays of one shape (or of
    dicts of them).  Returns :math:`V` as :math:`\pm 1` in their dtype and
    shape.  ``log`` records :math:`M \lceil D/8\rceil` bytes up and the same
    down (one packed answer to each worker): :math:`1/32` of
    :func:`allreduce_sum`'s float32 bytes when 8 divides :math:`D`, and
    :math:`\lceil D/8\rceil / 4D` of them otherwise.  No header is counted.

    Example:
      >>> import numpy as np
      >>> majority_vote([np.array([1., -2., .5]), np.array([-1., -1., .5]), np.array([2., 3., -9.])])
      array([ 1., -1.,  1.])

    References: J. Bernstein et al., "signSGD: Compressed Optimisation for
    Non-Convex Problems", *ICML* 2018; "signSGD with Majority Vote is
    Communication Efficient and Fault Tolerant", *ICLR* 2019 (Algorithm 1).
    """
    rows, restore = _rows(values, "values")
    for k, row in enumerate(rows):
        _finite(row, f"values[{k}]")
    d = rows[0].size
    sent = [pack_signs(row) for row in rows]                       # what each worker sends up
    count = np.zeros(d, np.int64)
    for message in sent:                                          # the server adds the ±1's
        count += np.unpackbits(message, count=d)
    votes_for = count + count - len(rows)                          # (#plus) - (#minus)
    answer = np.packbits(votes_for >= 0)                           # tie -> +1; sent down to each worker
    if log is not None:
        log.record(len(rows) * answer.nbytes, len(rows) * answer.nbytes)
    return restore(unpack_signs(answer, d, rows[0].dtype))


# ---------------------------------------------------------------------------
# The asynchronous exchange
# ---------------------------------------------------------------------------


class AsyncSchedule(NamedTuple):
    r"""For update :math:`t = 1 \dots T`: ``pulled[t-1]``, the version of the weights its gradient was computed at.

    ``staleness[t-1]`` is :math:`t - 1 - \text{pulled}`: the updates applied in between.  ``delay`` is as given.
    """

    pulled: np.ndarray
    staleness: np.ndarray
    delay: object


def _delay(delay):
    """``(low, high)`` of a delay given as an int or a pair of ints."""
    if isinstance(delay, (tuple, list)):
        if len(delay) != 2:
            raise ValueError(f"delay must be an int >= 0 or a pair (low, high), got {delay!r}")
        low, high = _count("delay[0]", delay[0]), _count("delay[1]", delay[1])
        if low > high:
            raise ValueError(f"delay must have low <= high, got {delay!r}")
        return low, high
    tau = _count("delay", delay)
    return tau, tau


def async_schedule(steps, delay, seed=0) -> AsyncSchedule:
    r"""When each gradient of an asynchronous parameter server was computed.

    Workers pull the weights from the server, compute a gradient and push it;
    meanwhile other workers' gradients are applied, so a gradient updates
    weights newer than the ones it was computed at.  With :math:`w_t` the
    weights after :math:`t` updates (the version), update :math:`t+1` is

    .. math::
        w_{t+1} = w_t - \eta\, g\bigl(w_{t - \tau_{t+1}}\bigr),

    with the *staleness* :math:`\tau_{t+1}` (the number of updates applied
    between the pull and the push).  A gradient cannot be older than
    :math:`w_0`: the first updates use :math:`\min(\tau, t)`.

    ``delay``: an int :math:`\tau \ge 0` (every gradient :math:`\tau` updates
    old; :math:`\tau = 0` is sequential SGD, and :math:`M` workers of equal
    speed taking turns give :math:`\tau = M - 1`), or a pair
    ``(low, high)``: :math:`\tau_t` drawn independently and uniformly from
    the integers :math:`\{\text{low}, \dots, \text{high}\}` by
    ``numpy.random.default_rng([seed, 2])`` (the bounded-delay model of the
    analyses).  One gradient arrives per update.

    Example:
      >>> s = async_schedule(5, 2)
      >>> s.pulled.tolist(), s.staleness.tolist()
      ([0, 0, 0, 1, 2], [0, 1, 2, 2, 2])

    References: J. Dean et al., *NIPS* 2012 (Downpour SGD); X. Lian, Y. Huang,
    Y. Li and J. Liu, "Asynchronous Parallel Stochastic Gradient for
    Nonconvex Optimization", *NIPS* 2015 (bounded staleness);
    S. Zheng et al., *ICML* 2017.
    """
    steps = _count("steps", steps)
    low, high = _delay(delay)
    seed = _count("seed", seed)
    tau = np.full(steps, low, np.int64) if low == high else \
        np.random.default_rng([seed, 2]).integers(low, high, size=steps, endpoint=True)
    t = np.arange(steps, dtype=np.int64)                          # updates applied before this one
    pulled = np.maximum(t - tau, 0)
    return AsyncSchedule(pulled, t - pulled, delay)


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


@dataclass
class ParallelHistory:
    """What :func:`train_data_parallel` measured.

    Attributes:
      train_loss, train_accuracy, test_accuracy: ``(epochs + 1,)``, over the
        whole splits after each epoch (entry 0: before training), as in
        :class:`mxopt.models.History`; NaN after a divergence.
      step_loss: ``(n_steps,)`` the mean loss of each update's batch at the
        weights its gradient was computed at (synchronous: all workers'
        batches together).
      bytes_up, bytes_down: ``(n_steps,)`` int64, bytes sent to / from the
        server at each update (:class:`CommLog`).
      staleness: ``(n_steps,)`` int64, how many updates the server applied
        between the pull of a gradient's weights and that gradient's
        update (0 in the synchronous modes).
      diverged: whether a loss or a weight became non-finite.
      trainer: the :class:`mxopt.Trainer` holding the (server's) weights.
      steps_per_epoch: updates per epoch.
    """

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    step_loss: np.ndarray
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    staleness: np.ndarray
    diverged: bool
    steps_per_epoch: int
    trainer: object = field(repr=False)
    stats: dict = field(default_factory=dict, repr=False)

    @property
    def bytes_per_step(self) -> np.ndarray:
        return self.bytes_up + self.bytes_down

    @property
    def params(self):
        return self.trainer.params


def train_data_parallel(model, data, optimizer="sgd", optimizer_params=None, workers=1, mode="allreduce",
                        batch_size_per_worker=32, epochs=10, seed=0, *, delay=None, partition="iid",
                        worker_momentum=0.0, params=None, before_step=None) -> ParallelHistory:
    r"""Train ``model`` on ``data`` with ``workers`` simulated data-parallel workers; return a :class:`ParallelHistory`.

    The training split is cut into :math:`M` shards (:func:`shard`), and each
    epoch into synchronous steps (:func:`batch_schedule`): at each step,
    worker :math:`k` computes :math:`g^{(k)} = \sum_{i \in \mathcal B^{(k)}} \nabla \ell_i`
    on its own batch of :math:`B_k` = ``batch_size_per_worker`` examples.
    Then, by ``mode``:

    * ``'allreduce'`` (``dist_sync``): the server applies the mean over all
      :math:`B = \sum_k B_k` examples, ``trainer.step(B)`` on
      :func:`allreduce_sum`.  With one worker this is
      :func:`mxopt.models.fit` with ``batch_size = batch_size_per_worker``,
      bit for bit; with :math:`M` it is one process on the concatenated
      batch, up to the order of the float32 sums.  The global batch is
      :math:`M` times larger: the linear scaling rule (Goyal et al. 2017)
      multiplies the learning rate by :math:`M` to keep the progress per
      example.
    * ``'vote'`` (Bernstein et al.'s signSGD / Signum with majority vote):
      each worker keeps its own momentum
      :math:`m^{(k)} \leftarrow \beta m^{(k)} + (1 - \beta)\, g^{(k)}/B_k`
      (:math:`\beta` = ``worker_momentum``; 0 sends the gradient's signs),
      the server's :func:`majority_vote` :math:`V` is the gradient handed to
      the optimizer, ``trainer.step(1)``.  With ``optimizer='sgd'`` and
      ``wd`` :math:`= \lambda` the update is their
      :math:`w \leftarrow w - \eta\,(V + \lambda w)`.
    * ``'async'`` (``dist_async``, a parameter server): the steps' batches
      arrive one at a time, workers taking turns, and each update
      :math:`t+1` applies the gradient computed at the weights
      :math:`w_{t-\tau}` pulled :math:`\tau` updates earlier
      (:func:`async_schedule`; ``delay`` defaults to :math:`M - 1`, the
      staleness of :math:`M` equal workers taking turns), ``trainer.step(B_k)``.
      An epoch is :math:`M S` updates.

    ``before_step(trainer, step, pulled)`` is called after the exchanged
    gradient is written into ``trainer.grads`` and before ``trainer.step``
    (``step`` counts from 1); ``pulled`` is ``{name: array}``, the weights the
    gradient was computed at (in the synchronous modes, the current weights).
    ``trainer.grads`` then holds what ``trainer.step`` divides by the batch:
    the summed gradient (``'allreduce'``, ``'async'``) or the vote.
    DC-ASGD (Zheng et al. 2017) needs ``pulled``: it corrects a stale
    gradient by the first-order Taylor term, with :math:`g \odot g` as a
    diagonal approximation of the Hessian,
    :math:`g(w_t) \approx g + \lambda_{\mathrm{dc}}\, g \odot g \odot (w_t - w_{t-\tau})`
    (:math:`\lambda_{\mathrm{dc}}` is MXNet's ``lamda``).  MXNet's
    ``dcasgd`` uses its own :math:`w_{\text{prev}}` instead, the weights
    before its previous update (one step back, whatever the delay):
    ``before_step=pulled_into_state()`` sets that state to ``pulled``
    (:func:`pulled_into_state`), so that ``'dcasgd'`` compensates the true
    delay.

    Other arguments: ``optimizer``, ``optimizer_params`` as for
    :class:`mxopt.Trainer`; ``params`` ``None`` (``model.init_params(seed)``)
    or a dict of arrays (copied); ``partition`` as for :func:`shard`.  Batch
    norm (if the model has it) normalises each worker's batch with its own
    statistics, as on separate devices; its moving averages are one copy that
    every worker updates in turn.  Training stops at the first non-finite
    loss or weight, as :func:`mxopt.models.fit` does.  The same arguments
    give the same history, bit for bit.

    Example:
      >>> from mxopt import datasets, models
      >>> data = datasets.digits()
      >>> model = models.softmax_regression(data.n_features, data.n_classes)
      >>> h = train_data_parallel(model, data, 'sgd', {'learning_rate': 0.1}, workers=4,
      ...                         mode='vote', batch_size_per_worker=16, epochs=2, seed=0)
      >>> bool(h.test_accuracy[-1] > 0.8), int(h.bytes_per_step[0]), h.steps_per_epoch
      (True, 656, 21)

    References: Dean et al. 2012; Goyal et al. 2017; Bernstein et al. 2018,
    2019; Zheng et al. 2017 (see the module's docstring).
    """
    from .trainer import Trainer

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be an mxopt.datasets.Dataset (it needs the test split), got {type(data).__name__}")
    batch_size = _positive("batch_size_per_worker", batch_size_per_worker)
    epochs = _count("epochs", epochs)
    seed = _count("seed", seed)
    beta = _checks.unit_interval("worker_momentum", worker_momentum)
    if beta and mode != "vote":
        raise ValueError(f"worker_momentum is the workers' own momentum in mode='vote'; got {beta} with mode={mode!r}")
    if delay is not None and mode != "async":
        raise ValueError(f"delay is only for mode='async', got delay={delay!r} with mode={mode!r}")
    if before_step is not None and not callable(before_step):
        raise TypeError(f"before_step must be callable, got {type(before_step).__name__}")
    shards = shard(data, workers, partition, seed)
    workers = len(shards)
    steps = math.ceil(min(len(s.index) for s in shards) / batch_size)
    per_epoch = steps * workers if mode == "async" else steps
    schedule = async_schedule(epochs * per_epoch, workers - 1 if delay is None else delay, seed) \
        if mode == "async" else None

    if params is None:
        params = model.init_params(seed)
    trainer = Trainer(dict(params), optimizer, optimizer_params)
    weights, grads = trainer.params, trainer.grads
    names = list(weights)
    shapes = {n: weights[n].shape for n in names}
    dtype = weights[names[0]].dtype
    stats = model.init_stats(dtype)
    evaluate = EpochRecord(model, weights, data, epochs, stats)
    X, y = evaluate.X, evaluate.y
    momentum = [np.zeros(trainer.data.size, dtype) for _ in range(workers)] if mode == "vote" else None
    step_loss, staleness, log = [], [], CommLog()

    def gradients(at, batches):
        """Each worker's summed loss and flat summed-loss gradient at the weights ``at`` (None at a non-finite loss)."""
        losses, flat = [], []
        for rows in batches:
            with np.errstate(all="ignore"):
                loss, g = model.loss_and_grad(at, X[rows], y[rows], reduction="sum", stats=stats)
            if not math.isfinite(loss):
                return None
            losses.append(loss)
            flat.append(_flatten(g, names))
        return losses, flat

    # Asynchronous mode: the server's past weights that a later gradient will be computed at, by version.
    snapshots, last_use = {}, {}
    if mode == "async":
        last_use = {int(v): i for i, v in enumerate(schedule.pulled)}  # the last update that needs each version
        snapshots[0] = {n: w.copy() for n, w in weights.items()}

    diverged = not evaluate(0)
    step = 0                                                # updates applied: the server's version
    for epoch, epoch_steps in enumerate(batch_schedule(shards, batch_size, epochs, seed), start=1):
        if diverged:
            break
        # synchronous: all workers' batches per update; asynchronous: one batch per update, workers taking turns
        updates = epoch_steps if mode != "async" else [(rows,) for batches in epoch_steps for rows in batches]
        for batches in updates:
            version = int(schedule.pulled[step]) if mode == "async" else step
            pulled = snapshots[version] if mode == "async" else weights
            computed = gradients(pulled, batches)
            if computed is None:
                diverged = True
                break
            losses, flat = computed
            examples = sum(len(rows) for rows in batches)
            if mode == "allreduce":
                g, scale = allreduce_sum(flat, log), examples
            elif mode == "vote":
                for m, g_k, rows in zip(momentum, flat, batches):
                    m *= dtype.type(beta)
                    m += dtype.type(1 - beta) * (g_k / dtype.type(len(rows)))
                g, scale = majority_vote(momentum, log), 1
            else:
                g, scale = flat[0], examples
                log.record(g.nbytes, g.nbytes)              # the gradient pushed, the weights pulled
            step_loss.append(sum(losses) / examples)
            staleness.append(step - version)                # updates the server applied since the pull
            for n, value in _unflatten(g, shapes).items():
                grads[n][...] = value
            if before_step is not None:
                before_step(trainer, step + 1, pulled)
            trainer.step(scale)
            step += 1
            if mode == "async":
                if last_use[version] == step - 1:
                    del snapshots[version]
                if step in last_use:
                    snapshots[step] = {n: w.copy() for n, w in weights.items()}
        diverged = diverged or not evaluate.end_of_epoch(epoch, trainer)
    return ParallelHistory(evaluate.train_loss, evaluate.train_accuracy, evaluate.test_accuracy,
                           np.asarray(step_loss),
                           np.asarray(log.up, np.int64), np.asarray(log.down, np.int64),
                           np.asarray(staleness, np.int64), diverged, per_epoch, trainer, stats)


def pulled_into_state(state="previous_weight"):
    r"""A ``before_step`` hook for :func:`train_data_parallel` that copies the pulled weights into an optimizer state.

    With DCASGD (``'dcasgd'``, whose state ``previous_weight`` is
    :math:`w_{\text{prev}}`) the update becomes Zheng et al.'s compensation
    of the real delay,
    :math:`w_{t+1} = w_t - \eta\,\bigl(g + \lambda_{\mathrm{dc}}\, g \odot g \odot (w_t - w_{t-\tau})\bigr)`
    with :math:`g` computed at :math:`w_{t-\tau}`, instead of MXNet's
    :math:`w_t - w_{t-1}`.  Before the first update the state does not exist
    yet; the optimizer then creates it from the current weights, which are
    the pulled ones (:math:`w_0`).  The driver's Trainer keeps all
    parameters in one group, so the state is one flat array in the order of
    ``trainer.params``.

    Example:
      >>> from mxopt import datasets, models
      >>> data = datasets.digits()
      >>> model = models.softmax_regression(data.n_features, data.n_classes)
      >>> h = train_data_parallel(model, data, 'dcasgd', {'learning_rate': 0.1, 'lamda': 1.0}, workers=4,
      ...                         mode='async', delay=8, batch_size_per_worker=16, epochs=1,
      ...                         before_step=pulled_into_state())
      >>> int(h.staleness.max()), bool(h.test_accuracy[-1] > 0.9)
      (8, True)
    """
    if not isinstance(state, str):
        raise TypeError(f"state must be the name of an optimizer state, got {type(state).__name__}")

    def hook(trainer, step, pulled):
        current = trainer._updater.states.get(0)
        if current is None:
            return
        if state not in current.names:
            raise ValueError(f"the optimizer {type(trainer.optimizer).__name__} has no state {state!r} "
                             f"(it keeps {current.names})")
        current[state][...] = _flatten(pulled, list(trainer.params))

    return hook
