r"""Data-parallel training over MPI, under the names of MXNet's KVStore.

A *store* synchronises one :class:`mxopt.Trainer` across processes.  Make
it with :func:`create`, hand it to the Trainer (``Trainer(params, optimizer,
optimizer_params, kvstore=store)``), and ``trainer.step(batch_size)`` does
the communication.  The processes are MPI ranks: ``pip install
'mxopt[mpi]'`` brings mpi4py and an MPI library (MPICH), and

.. code-block:: sh

    mpiexec -n 4 python train.py

runs four of them on one machine, or on a cluster under the site's MPI.

The kinds (``store.type``):

``'local'``
    One process, no communication (MXNet's ``'local'``): ``step`` is the
    plain Trainer step.  Needs no MPI.

``'dist_sync'``
    Every rank writes the gradient of its own batch's *summed* loss into
    ``trainer.grads`` and calls ``trainer.step(B)`` with :math:`B` the
    *global* batch (all ranks' examples together).  The store sums the
    ranks' gradients, :math:`g = \sum_{r=0}^{N-1} g^{(r)}`, and every rank
    applies the same update with :math:`g / B`: the mean gradient over every
    example of every rank, the step one process would take on the union of
    the batches.  The Trainer's parameters live in one flat buffer, so the
    sum is one exchange over that buffer whatever the number of parameters
    (a gather and a broadcast, or one allreduce; or one per bucket of
    ``bucket_size`` elements).

    ``reduce='ordered'`` (the default) fixes the order of the sum: the
    ranks' buffers are gathered on rank 0, added in rank order,
    :math:`((g^{(0)} + g^{(1)}) + g^{(2)}) + \dots` in the buffer's dtype,
    and the sum is broadcast, so every rank holds the same bits and
    :math:`N` ranks give *bit for bit* the weights of the in-process
    simulation :func:`mxopt.workers.train_data_parallel` (``'allreduce'``,
    which sums in the same order).  Against one process computing the
    gradient of the whole global batch at once the weights differ by the
    rounding of the float32 sums (a BLAS product sums the examples in its
    own order): at most 3.6e-7 on 2 ranks and 9.5e-7 on 4 after two epochs
    of an MLP on the digits (``tests/test_kvstore_mpi.py``).
    ``reduce='allreduce'`` hands the buffer to ``MPI_Allreduce`` (ring or
    tree, chosen by the MPI library): less traffic through rank 0 on many
    ranks, but the order of the sum, hence the last bits, may depend on the
    number of ranks and on the library.

``'dist_sync_vote'``
    signSGD and Signum with majority vote (Bernstein et al. 2018, 2019),
    for a :class:`mxopt.Signum` optimizer.  Each rank keeps its *own*
    momentum, updated by Signum's rule from its own gradient (with
    ``rescale_grad / (B/N)``: its local batch mean); it sends only the
    signs, bit-packed (:func:`mxopt.workers.pack_signs`, 1 bit per
    coordinate); rank 0 counts the votes (:func:`mxopt.workers.majority_vote`)
    and broadcasts the packed answer :math:`V`; every rank applies Signum's
    weight step with :math:`V` in place of the sign of its momentum,
    :math:`w \leftarrow (1 - \eta\lambda_{lh})\,w + \eta V` (with
    ``momentum=0``, signSGD's :math:`w \leftarrow (1 - \eta\lambda - \eta\lambda_{lh})\,w - \eta V`,
    the vote over the gradients' signs).  A sign of 0 is sent as :math:`+1`
    and a tie is decided as :math:`+1` (one bit cannot hold three values;
    Signum alone would not move a coordinate whose momentum is exactly 0).
    Each rank sends :math:`\lceil D/8\rceil` bytes and receives as many:
    :math:`1/32` of ``'dist_sync'``'s :math:`4D` for float32 (exactly, when
    8 divides :math:`D`).  The ranks' momenta differ, so a checkpoint holds
    rank 0's.

``'dist_async'``
    A parameter server (Dean et al. 2012): MPI rank 0 holds the weights and
    the optimizer and serves (:meth:`KVStore.serve`); ranks 1 to
    :math:`N-1` are the workers (``store.rank`` 0 to ``num_workers - 1``).
    A worker's ``trainer.step(B)`` pushes its gradient and batch size to
    the server (point-to-point) and receives the weights as they are once
    the server has applied it; no worker waits for another.  The server
    applies each gradient as it arrives, ``step(B)`` of that worker alone,
    so a gradient computed at the weights :math:`w_{t-\tau}` a worker pulled
    lands on :math:`w_t`, :math:`\tau` updates later (its *staleness*,
    recorded in ``store.staleness``).  With :class:`mxopt.DCASGD` the server
    sets the optimizer's ``previous_weight`` to the weights that worker
    pulled, so the compensation :math:`\lambda_{dc}\, g \odot g \odot (w_t - w_{t-\tau})`
    uses the true delay (Zheng et al. 2017); any other optimizer (plain
    SGD, for comparison) applies the stale gradient as it is.  A worker
    calls :meth:`KVStore.close` when it is done (it is called at exit too);
    :meth:`KVStore.serve` returns when every worker has closed, and each
    worker's ``close`` then receives the final weights.

As in MXNet the store *sums* and ``batch_size`` is the global batch, so the
learning rate of :math:`N` ranks of batch :math:`b` is that of one process
of batch :math:`Nb` (the linear scaling rule multiplies it by :math:`N`
against batch :math:`b`; Goyal et al. 2017).  The layer-wise optimizers
(:class:`mxopt.LARS`, :class:`mxopt.LAMB`, :class:`mxopt.LBSGD` with
``'lars'``) compute their norms from the summed gradient, the same on every
rank: the global batch's, as on one machine.  :class:`mxopt.LBSGD`'s
``batch_scale`` :math:`k` is a number of calls, as in MXNet's code: it sums
:math:`k` of these global steps, an effective batch of :math:`k N b`
examples, and warms its rate up to :math:`k` times over
``warmup_epochs · updates_per_epoch`` calls.  MXNet's documentation asks for
"batch size × workers" there; with a store, the workers' factor :math:`N`
is already in every call (scale ``learning_rate`` for the :math:`N b`
examples of one call), ``batch_scale`` adds the rest, and
``updates_per_epoch`` counts the steps of the distributed run, about
:math:`1/N` of one process's.

**Start-up.**  The Trainer's construction is collective: every rank checks
that all ranks have the same parameter names, shapes and dtype, the same
multiplier groups, the same optimizer class and the same kind of store, and
refuses a mismatch with a ValueError naming the first rank that differs;
then rank 0's initial weights are broadcast (MXNet's ``kv.init``), so every
rank starts from the same weights.

**Failures.**  Once a store with more than one rank exists, an uncaught
exception on any rank prints that rank's traceback (prefixed by its rank)
and calls ``MPI_Abort``, which ends every rank of the job: no rank is left
waiting in a collective for a peer that has died.  MPI has no time-outs on
collectives, so a rank that *hangs* (rather than raises) still stalls the
others; run jobs under a wall-clock limit (``timeout``, the scheduler's).

**Checkpoints.**  :meth:`KVStore.save_optimizer_states` writes
``trainer.save_states()`` from one rank (rank 0: the server of
``'dist_async'``), and :meth:`KVStore.load_optimizer_states` reads it on
rank 0 and broadcasts the bytes, so a file written by a job of any size
loads in a job of any size (and in one process, by
``Trainer.load_states``): it is keyed by parameter name, not by rank.

**GPU arrays.**  A Trainer on a CUDA device (CuPy, PyTorch or Numba arrays)
works with every kind.  When the MPI library is CUDA-aware the device
buffers go to MPI directly, after the stream that produced them is
synchronised; otherwise each collective goes through a host copy.
``cuda_aware=None`` asks the library: MPI 4.1 lists the memory kinds it
supports in the info key ``mpi_memory_alloc_kinds`` of ``MPI_COMM_WORLD``,
and a CUDA-aware library names ``cuda`` there (MPICH 5's wheel, here, says
``mpi,system``); the environment variable ``MXOPT_MPI_CUDA_AWARE=0`` or
``1`` overrides the answer, and ``cuda_aware=True``/``False`` sets it.
An MPI older than 4.1 has no such key and counts as not CUDA-aware: set it
then.
``reduce='ordered'`` and the vote sum on rank 0's host, so they always stage
through host memory; ``reduce='allreduce'`` is the one to pair with a
CUDA-aware MPI.  (Not tested on a GPU here: the tests run on CPUs.)

**Bytes.**  ``store.comm_log`` (a :class:`mxopt.workers.CommLog`) records
for every step the payload this rank sent (``up``) and received
(``down``), headers not counted, in the parameter-server convention of
:mod:`mxopt.workers`: its message up and the result down (rank 0's own
gathering traffic is not counted twice).

Example (one process; ``mpiexec -n 4`` runs it on four):
  >>> import numpy as np, mxopt
  >>> store = mxopt.kvstore.create('local')
  >>> store.rank, store.num_workers
  (0, 1)
  >>> tr = mxopt.Trainer({'w': np.ones(2, np.float32)}, 'sgd', {'learning_rate': 0.5}, kvstore=store)
  >>> tr.grads['w'][...] = 2; tr.step(batch_size=2); tr.params['w']
  array([0.5, 0.5], dtype=float32)

References: J. Dean et al., "Large Scale Distributed Deep Networks", *NIPS*
2012; P. Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
1 Hour", arXiv:1706.02677, 2017; J. Bernstein et al., "signSGD: Compressed
Optimisation for Non-Convex Problems", *ICML* 2018, and "signSGD with
Majority Vote is Communication Efficient and Fault Tolerant", *ICLR* 2019;
S. Zheng et al., "Asynchronous Stochastic Gradient Descent with Delay
Compensation", *ICML* 2017; Message Passing Interface Forum, *MPI: A
Message-Passing Interface Standard*, version 4.1, 2023.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
import time

import numpy as np

from . import _arrays, _checks, workers
from .workers import CommLog

__all__ = ["KVStore", "create", "KINDS", "REDUCTIONS"]

#: The kinds of store :func:`create` makes.
KINDS = ("local", "dist_sync", "dist_sync_vote", "dist_async")
#: How ``'dist_sync'`` sums: in rank order through rank 0, or by MPI_Allreduce.
REDUCTIONS = ("ordered", "allreduce")

_TAG_PUSH, _TAG_GRAD, _TAG_DONE, _TAG_PULL, _TAG_WEIGHTS = 11, 12, 13, 14, 15


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("the 'dist_*' stores need mpi4py and an MPI library: pip install 'mxopt[mpi]' "
                          f"(mpi4py and mpich), then run with mpiexec ({e})") from None
    return MPI


# -- failures: one rank's exception ends the job ------------------------------------------------------
_HOOKED = []


def _abort_on_uncaught_exception(comm):
    """Replace ``sys.excepthook`` so that an uncaught exception prints, then aborts every rank."""
    if _HOOKED:
        return
    previous = sys.excepthook
    rank, size = comm.Get_rank(), comm.Get_size()

    def hook(kind, value, tb):
        sys.stderr.write(f"mxopt.kvstore: rank {rank} of {size} raised {kind.__name__}; aborting the MPI job\n")
        previous(kind, value, tb)
        sys.stderr.flush()
        sys.stdout.flush()
        comm.Abort(1)

    sys.excepthook = hook
    _HOOKED.append(hook)


# -- GPU buffers ----------------------------------------------------------------------------------------
def _cuda_aware_default(MPI):
    env = os.environ.get("MXOPT_MPI_CUDA_AWARE")
    if env in ("0", "1"):
        return env == "1"
    if env not in (None, ""):
        raise ValueError(f"MXOPT_MPI_CUDA_AWARE must be 0 or 1, got {env!r}")
    return "cuda" in _memory_kinds(MPI)


def _memory_kinds(MPI):
    """The memory kinds the MPI library supports (MPI 4.1's ``mpi_memory_alloc_kinds`` info key), without
    restrictors: ``{'mpi', 'system'}`` for a host-only MPI, with ``'cuda'`` for a CUDA-aware one."""
    try:
        info = MPI.COMM_WORLD.Get_info()
        try:
            kinds = info.get("mpi_memory_alloc_kinds") or ""
        finally:
            info.Free()
    except Exception:  # an MPI older than 4.1 has no such key
        kinds = ""
    return {kind.split(":")[0].strip() for kind in kinds.split(",") if kind.strip()}


class _Staged:
    """A buffer as MPI sees it: the array itself (host, or device with a CUDA-aware MPI) or a host copy."""

    def __init__(self, array, cuda_aware, write_back=True):
        self.array, self.write_back = array, write_back
        if _arrays.target_of(array) == _arrays.CPU:
            self.buffer, self.staged = array, False
        elif cuda_aware:
            stream = _arrays.stream_of(array)
            (stream.synchronize() if stream != 0 else _cuda_synchronize())
            self.buffer, self.staged = array, False
        else:
            self.buffer, self.staged = np.array(_arrays.to_host(array), copy=True), True

    def done(self):
        if self.staged and self.write_back:
            _arrays.copy_into(self.array, self.buffer)


def _cuda_synchronize():
    from numba import cuda

    cuda.synchronize()


# -- the store ------------------------------------------------------------------------------------------
class KVStore:
    """A store of :data:`KINDS`, made by :func:`create`; synchronises one :class:`mxopt.Trainer`.

    Attributes (MXNet's names where MXNet has them):
      type: the kind, ``'local'``, ``'dist_sync'``, ``'dist_sync_vote'`` or ``'dist_async'``.
      rank: this worker's number, 0 to ``num_workers - 1`` (``None`` on
        the server of ``'dist_async'``).
      num_workers: the number of workers (MPI ranks, less the server for ``'dist_async'``).
      is_server: True only on MPI rank 0 of ``'dist_async'``.
      mpi_rank, mpi_size: the rank in, and size of, the MPI communicator.
      comm_log: bytes sent and received per step (:class:`mxopt.workers.CommLog`).
      staleness: ``'dist_async'`` server: for each update, how many updates
        were applied between the pull of its gradient's weights and the update.
      step_seconds: wall-clock seconds of each ``step`` (communication and update).
    """

    def __init__(self, kind, reduce="ordered", bucket_size=None, cuda_aware=None, comm=None):
        if kind not in KINDS:
            raise ValueError(f"name must be one of {list(KINDS)}, got {kind!r}")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {list(REDUCTIONS)}, got {reduce!r}")
        if kind != "dist_sync" and reduce != "ordered":
            raise ValueError(f"reduce={reduce!r} is for 'dist_sync'; {kind!r} has one way to communicate")
        self.bucket_size = None if bucket_size is None else _checks.integer(1)("bucket_size", bucket_size)
        if cuda_aware is not None and not isinstance(cuda_aware, bool):
            raise TypeError(f"cuda_aware must be None (detect), True or False, got {cuda_aware!r}")
        self.type, self.reduce = kind, reduce
        self.comm_log, self.staleness, self.step_seconds = CommLog(), [], []
        self._trainer = None
        self._closed = False
        if kind == "local":
            if comm is not None:
                raise ValueError("a 'local' store does not communicate: give no comm")
            self.comm, self.mpi_rank, self.mpi_size, self.cuda_aware = None, 0, 1, False
        else:
            MPI = _mpi()
            self.comm = (MPI.COMM_WORLD if comm is None else comm).Dup()
            self.mpi_rank, self.mpi_size = self.comm.Get_rank(), self.comm.Get_size()
            self.cuda_aware = _cuda_aware_default(MPI) if cuda_aware is None else cuda_aware
            if kind == "dist_async" and self.mpi_size < 2:
                raise ValueError("'dist_async' needs at least 2 MPI ranks (rank 0 serves, the others work); "
                                 "run it with mpiexec -n 2 or more")
            if self.mpi_size > 1:
                _abort_on_uncaught_exception(MPI.COMM_WORLD)
        self.is_server = kind == "dist_async" and self.mpi_rank == 0
        if kind == "dist_async":
            self.rank = None if self.is_server else self.mpi_rank - 1
            self.num_workers = self.mpi_size - 1
        else:
            self.rank, self.num_workers = self.mpi_rank, self.mpi_size

    def __repr__(self):
        return (f"KVStore({self.type!r}, rank={self.rank}, num_workers={self.num_workers}"
                + (", server" if self.is_server else "") + ")")

    @property
    def bytes_sent(self) -> int:
        """Payload bytes this rank has sent, over all steps."""
        return int(sum(self.comm_log.up))

    # -- start-up -----------------------------------------------------------------------------------
    def _attach(self, trainer):
        """Called by the Trainer's constructor: check the layout on every rank, then broadcast rank 0's weights."""
        if self._trainer is not None:
            raise ValueError("this store already synchronises a Trainer; make one store per Trainer")
        if self.type == "dist_sync_vote":
            from .optimizers.signum import Signum

            if not isinstance(trainer.optimizer, Signum):
                raise ValueError(f"'dist_sync_vote' votes on Signum's signs; the optimizer is "
                                 f"{type(trainer.optimizer).__name__} (use 'signum', or 'dist_sync')")
            if _arrays.info(trainer.data).dtype == np.float16:
                raise ValueError("'dist_sync_vote' does not take float16 parameters (multi_precision); use float32")
        if self.comm is not None:
            self._check_layouts(trainer)
            staged = _Staged(trainer.data, self.cuda_aware)
            self.comm.Bcast(staged.buffer, root=0)
            staged.done()
        self._trainer = trainer
        if self.type == "dist_async":
            self._pulled_version = 0
            if self.is_server:
                host = _arrays.to_host(trainer.data)
                self._pulled = {k: (np.array(host, copy=True), 0) for k in range(1, self.mpi_size)}
            else:
                atexit.register(self.close)

    def _signature(self, trainer):
        info = _arrays.info(trainer.data)
        return {"store": self.type, "reduce": self.reduce, "optimizer": type(trainer.optimizer).__name__,
                "dtype": str(info.dtype), "parameters": [[n, list(shape)] for n, _, shape in trainer._layout],
                "groups": [list(names) for _, _, names in trainer._groups],
                "multipliers": [[trainer.optimizer.lr_mult.get(i, 1.0), trainer.optimizer.wd_mult.get(i, 1.0)]
                                for i in range(len(trainer._groups))]}

    def _check_layouts(self, trainer):
        mine = json.dumps(self._signature(trainer), sort_keys=True).encode()
        sizes = np.zeros(self.mpi_size, np.int64)
        self.comm.Allgather(np.array([len(mine)], np.int64), sizes)
        everyone = np.empty(int(sizes.sum()), np.uint8)
        self.comm.Allgatherv(np.frombuffer(mine, np.uint8), (everyone, sizes))
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        docs = [json.loads(everyone[offsets[r]:offsets[r + 1]].tobytes()) for r in range(self.mpi_size)]
        for r, doc in enumerate(docs[1:], start=1):
            if doc != docs[0]:
                what = [k for k in docs[0] if doc.get(k) != docs[0][k]]
                details = "; ".join(f"{k}: rank 0 has {docs[0][k]!r}, rank {r} has {doc.get(k)!r}" for k in what)
                raise ValueError(f"the Trainers of the {self.mpi_size} MPI ranks do not match (every rank must "
                                 f"build the same parameters, in the same order, with the same optimizer and "
                                 f"store): {details}")

    # -- a step --------------------------------------------------------------------------------------
    def _step(self, trainer, batch):
        """``trainer.step(batch)`` under this store (``batch`` is checked already)."""
        if trainer is not self._trainer:
            raise ValueError("this store synchronises another Trainer")
        if self.is_server:
            raise RuntimeError("the 'dist_async' server (MPI rank 0) does not step: it applies the workers' "
                               "gradients in store.serve(); run the training loop where not store.is_server")
        if self._closed:
            raise RuntimeError("this worker has closed its store (store.close()); it takes no more steps")
        start = time.perf_counter()
        if self.type == "local" or (self.type == "dist_sync" and self.mpi_size == 1):
            self.comm_log.record(0, 0)
            trainer._locked_step(batch)
        elif self.type == "dist_sync":
            self._sum(trainer.grad_data)
            trainer._locked_step(batch)
        elif self.type == "dist_sync_vote":
            self._vote_step(trainer, batch)
        else:
            self._push_pull(trainer, batch)
        self.step_seconds.append(time.perf_counter() - start)

    def _buckets(self, n):
        size = n if self.bucket_size is None else self.bucket_size
        return [(start, min(start + size, n)) for start in range(0, max(n, 1), size)]

    def _sum(self, buffer):
        """Replace ``buffer`` on every rank by the sum of all ranks' buffers (``reduce``'s order)."""
        MPI = _mpi()
        staged = _Staged(buffer, self.cuda_aware and self.reduce == "allreduce")
        flat = staged.buffer
        n = _arrays.info(flat).size
        if self.reduce == "allreduce":
            requests = [self.comm.Iallreduce(MPI.IN_PLACE, flat[a:b], op=MPI.SUM) for a, b in self._buckets(n)]
            MPI.Request.Waitall(requests)
        else:
            for a, b in self._buckets(n):
                part = flat[a:b]
                rows = np.empty((self.mpi_size, b - a), part.dtype) if self.mpi_rank == 0 else None
                self.comm.Gather(part, rows, root=0)
                if self.mpi_rank == 0:
                    part[...] = workers.allreduce_sum(list(rows))  # rank order: ((g0 + g1) + g2) + ...
                self.comm.Bcast(part, root=0)
        staged.done()
        nbytes = n * _arrays.info(flat).dtype.itemsize
        self.comm_log.record(nbytes, nbytes)

    def _vote_step(self, trainer, batch):
        """Signum/signSGD with majority vote: local momentum, packed signs up, the vote down, the weight step."""
        from .optimizers.signum import SIGNSGD_RULE
        from . import _engine

        optimizer = trainer.optimizer
        if not hasattr(self, "_scratch"):
            self._scratch = _arrays.empty(trainer.data, (_arrays.info(trainer.data).size,),
                                          _arrays.info(trainer.data).dtype)
        # 1. Signum's own rule on a copy of the weights: it updates this rank's momentum (the weights
        #    it moves are thrown away); rescaled by this rank's share of the batch.
        _arrays.copy_into(self._scratch, trainer.data)
        trainer._locked_step(batch / self.mpi_size, data=self._scratch)
        momentum = optimizer.momentum > 0
        if momentum:   # the negated momentum: the weight moves along +sign(mom)
            signs_of = np.concatenate([_arrays.to_host(a).reshape(-1) for a in trainer._state_arrays("mom")])
        else:          # signSGD: the vote is over the gradients' signs, and the weight moves along -V
            signs_of = _arrays.to_host(trainer.grad_data)
        d = signs_of.size
        # 2. The vote: packed signs up to rank 0, the packed answer down to every rank.
        packed = workers.pack_signs(signs_of)
        rows = np.empty((self.mpi_size, packed.size), np.uint8) if self.mpi_rank == 0 else None
        self.comm.Gather(packed, rows, root=0)
        answer = np.empty_like(packed)
        if self.mpi_rank == 0:
            dtype = signs_of.dtype
            answer[...] = workers.pack_signs(workers.majority_vote([workers.unpack_signs(r, d, dtype) for r in rows]))
        self.comm.Bcast(answer, root=0)
        vote = workers.unpack_signs(answer, d, signs_of.dtype)
        self.comm_log.record(packed.nbytes, answer.nbytes)
        # 3. Signum's weight step with the vote: signSGD's rule, fed g = -V (Signum) or V (signSGD).
        g = _arrays.empty(trainer.data, (d,), signs_of.dtype)
        _arrays.copy_into(g, -vote if momentum else vote)
        dtype = optimizer._compute_dtype(signs_of.dtype)
        for index, (a, b, _) in enumerate(trainer._groups):
            wd = optimizer._get_wd(index) if not momentum else 0.0  # with momentum, wd went into it
            args = _checks.step_scalars({"lr": optimizer._get_lr(index), "wd": wd, "wd_lh": optimizer.wd_lh},
                                        SIGNSGD_RULE.scalar_names, dtype)
            _engine.launch(SIGNSGD_RULE, trainer.data[a:b], g[a:b], (), args)

    # -- the parameter server ------------------------------------------------------------------------
    def _push_pull(self, trainer, batch):
        """A worker's step: push (version, batch) and the gradient; receive the server's current weights."""
        grad = _Staged(trainer.grad_data, self.cuda_aware, write_back=False)
        self.comm.Send(np.array([batch, self._pulled_version], np.float64), dest=0, tag=_TAG_PUSH)
        self.comm.Send(grad.buffer, dest=0, tag=_TAG_GRAD)
        self._receive_weights(trainer, _TAG_PULL)
        n = _arrays.info(trainer.data).size * _arrays.info(trainer.data).dtype.itemsize
        self.comm_log.record(n, n)

    def _receive_weights(self, trainer, tag):
        header = np.empty(1, np.float64)
        self.comm.Recv(header, source=0, tag=tag)
        weights = _Staged(trainer.data, self.cuda_aware)
        self.comm.Recv(weights.buffer, source=0, tag=tag)
        weights.done()
        self._pulled_version = int(header[0])

    def serve(self, before_update=None):
        """Rank 0 of ``'dist_async'``: apply the workers' gradients as they arrive, until every worker closes.

        Returns the number of updates applied.  The Trainer then holds the
        final weights (and they have been sent to every worker's ``close``).
        ``before_update(trainer, worker, pulled, batch_size)``, if given, is
        called before each update, with the gradient in ``trainer.grads``:
        ``worker`` is the worker's rank, ``pulled`` (read-only) the flat
        weights it computed the gradient at, ``batch_size`` what it passed
        to ``step``.
        """
        if before_update is not None and not callable(before_update):
            raise TypeError(f"before_update must be callable, got {type(before_update).__name__}")
        if not self.is_server:
            raise RuntimeError("serve() runs on the 'dist_async' server only (MPI rank 0)")
        MPI = _mpi()
        trainer = self._trainer
        if trainer is None:
            raise RuntimeError("no Trainer uses this store yet: Trainer(..., kvstore=store) first")
        grad = np.empty(_arrays.info(trainer.grad_data).size, _arrays.info(trainer.grad_data).dtype)
        active, version = set(range(1, self.mpi_size)), 0
        status = MPI.Status()
        header = np.empty(2, np.float64)
        while active:
            self.comm.Recv(header, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=status)
            source, tag = status.Get_source(), status.Get_tag()
            if tag == _TAG_DONE:
                active.discard(source)
                continue
            start = time.perf_counter()
            self.comm.Recv(grad, source=source, tag=_TAG_GRAD)
            _arrays.copy_into(trainer.grad_data, grad)
            pulled, pulled_version = self._pulled[source]
            if before_update is not None:
                pulled.flags.writeable = False
                before_update(trainer, source - 1, pulled, float(header[0]))
            if "previous_weight" in trainer.optimizer.state_names(_arrays.info(trainer.data).dtype):
                trainer._set_state("previous_weight", pulled)   # DCASGD: w_prev = the weights this worker pulled
            trainer._locked_step(float(header[0]))
            self.staleness.append(version - pulled_version)
            version += 1
            self._send_weights(trainer, source, version, _TAG_PULL)
            self.step_seconds.append(time.perf_counter() - start)
        for worker in range(1, self.mpi_size):
            self._send_weights(trainer, worker, version, _TAG_WEIGHTS)
        return version

    def _send_weights(self, trainer, worker, version, tag):
        host = np.array(_arrays.to_host(trainer.data), copy=True)
        self.comm.Send(np.array([version], np.float64), dest=worker, tag=tag)
        self.comm.Send(host, dest=worker, tag=tag)
        self._pulled[worker] = (host, version)
        n = host.nbytes
        self.comm_log.record(n, n)

    def close(self):
        """A ``'dist_async'`` worker is done: tell the server, then receive the final weights (once all are done).

        Called at exit if the program does not; on other stores it does nothing.
        """
        if self.type != "dist_async" or self.is_server or self._closed or self._trainer is None:
            return
        self._closed = True
        self.comm.Send(np.zeros(2, np.float64), dest=0, tag=_TAG_DONE)
        self._receive_weights(self._trainer, _TAG_WEIGHTS)

    def barrier(self):
        """Wait until every rank gets here (nothing to wait for on ``'local'``)."""
        if self.comm is not None:
            self.comm.Barrier()

    # -- checkpoints ---------------------------------------------------------------------------------
    def save_optimizer_states(self, fname, dump_optimizer=False):
        """Write ``trainer.save_states(dump_optimizer)`` to ``fname`` from rank 0 (collective: every rank calls it).

        The file is written to a temporary name and renamed, so a reader
        never sees half of it; every rank returns once it is in place.
        """
        trainer = self._require_trainer()
        error = None
        if self.mpi_rank == 0:  # identical states everywhere (dist_sync), the server's (dist_async)
            try:
                data = trainer.save_states(dump_optimizer=dump_optimizer)
                tmp = f"{fname}.tmp{os.getpid()}"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, fname)
            except Exception as e:  # raise on every rank, not only on the writer
                error = e
        failed = self._any(error is not None)
        if error is not None:
            raise error
        if failed:
            raise RuntimeError(f"rank 0 could not write {fname!r} (see its error)")

    def load_optimizer_states(self, fname):
        """Read ``fname`` on rank 0, broadcast its bytes, and load them into every rank's Trainer.

        A file saved by a job of any number of ranks (or by one process's
        ``Trainer.save_states``) loads: it is keyed by parameter name.
        """
        trainer = self._require_trainer()
        data, error = b"", None
        if self.mpi_rank == 0:
            try:
                with open(fname, "rb") as f:
                    data = f.read()
            except OSError as e:
                error = e
        if self._any(error is not None):
            raise error if error is not None else OSError(f"rank 0 could not read {fname!r} (see its error)")
        if self.comm is not None:
            size = np.array([len(data)], np.int64)
            self.comm.Bcast(size, root=0)
            buf = np.frombuffer(data, np.uint8).copy() if self.mpi_rank == 0 else np.empty(int(size[0]), np.uint8)
            self.comm.Bcast(buf, root=0)
            data = buf.tobytes()
        trainer.load_states(data)

    def _require_trainer(self):
        if self._trainer is None:
            raise RuntimeError("no Trainer uses this store yet: Trainer(..., kvstore=store) first")
        return self._trainer

    def _any(self, flag):
        if self.comm is None:
            return flag
        out = np.zeros(1, np.int32)
        self.comm.Allreduce(np.array([int(flag)], np.int32), out)
        return bool(out[0])


def create(name="local", *, reduce="ordered", bucket_size=None, cuda_aware=None, comm=None) -> KVStore:
    r"""A new store (``mx.kv.create``): ``'local'``, ``'dist_sync'``, ``'dist_sync_vote'`` or ``'dist_async'``.

    See :mod:`mxopt.kvstore` for what each kind computes.  Keyword
    arguments (mxopt's; MXNet's ``create`` takes the name only):

    * ``reduce``: for ``'dist_sync'``, ``'ordered'`` (gather, sum in rank
      order, broadcast: the same bits on every rank and as
      :func:`mxopt.workers.allreduce_sum`) or ``'allreduce'`` (MPI_Allreduce).
    * ``bucket_size``: sum the flat gradient buffer in pieces of this many
      elements (``None``: one piece); ``'allreduce'`` starts them all
      (MPI_Iallreduce) and waits for them together.
    * ``cuda_aware``: ``None`` (ask the MPI library, or read
      ``MXOPT_MPI_CUDA_AWARE``), ``True`` or ``False``.
    * ``comm``: the mpi4py communicator to use (default ``MPI.COMM_WORLD``;
      the store works on a duplicate of it).

    Example:
      >>> import mxopt
      >>> store = mxopt.kvstore.create('local'); store.type, store.num_workers
      ('local', 1)
      >>> mxopt.kvstore.create('dist_sink')
      Traceback (most recent call last):
      ...
      ValueError: name must be one of ['local', 'dist_sync', 'dist_sync_vote', 'dist_async'], got 'dist_sink'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {list(KINDS)}, got {type(name).__name__}")
    return KVStore(name, reduce=reduce, bucket_size=bucket_size, cuda_aware=cuda_aware, comm=comm)
