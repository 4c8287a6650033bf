"""One MPI job for tests/test_kvstore_mpi.py: every rank runs this; rank 0 writes what it measured as JSON.

    mpiexec -n N python tests/mpi/kvstore_job.py DIGITS.npz OUT.json CHECKPOINT_DIR PART[,PART...]

DIGITS.npz holds mxopt.datasets.digits() (the test saves it once, so that no rank imports
scikit-learn). PARTs, in this order:

* sync (always run): dist_sync, SGD with momentum for two epochs of the digits on N shards, against the
  in-process simulation (mxopt.workers.train_data_parallel, 'allreduce') and against one
  process computing each step's gradient on the whole global batch.
* save / load: 'save' writes the dist_sync optimizer states and weights; 'load' reads them
  (written by a job of another size) on every rank.
* large: LAMB and LBSGD (linear warmup, batch_scale=2) for a few steps against one process
  fed the ranks' summed gradients.
* vote: dist_sync_vote, Signum's majority vote against a NumPy vote over the ranks' momenta, and the bytes.
* async: dist_async, DCASGD and plain SGD on a parameter server: test accuracy and staleness.
"""
import json
import os
import sys

import numpy as np
from mpi4py import MPI

import mxopt
from mxopt import datasets, kvstore, models, workers

digits_path, out_path, ckpt_dir, parts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
world = MPI.COMM_WORLD
rank, size = world.Get_rank(), world.Get_size()
with np.load(digits_path) as f:
    data = datasets.Dataset(f["X_train"], f["y_train"], f["X_test"], f["y_test"], int(f["n_classes"]))
model = models.mlp(data.n_features, data.n_classes, hidden=(26,))   # D = 75*26 + 10 = 1960, a multiple of 8
X, y = data.X_train, data.y_train
B, EPOCHS, SEED = 16, 2, 0
result = {"size": size}


def gathered(x):
    """Every rank's copy of the array ``x`` (on every rank)."""
    x = np.ascontiguousarray(x)
    rows = np.empty((size, x.size), x.dtype)
    world.Allgather(x.reshape(-1), rows)
    return rows


def same_on_every_rank(x):
    rows = gathered(x)
    return bool(all(np.array_equal(rows[0], r) for r in rows))


def write_grads(trainer, rows):
    _, g = model.loss_and_grad(trainer.params, X[rows], y[rows], reduction="sum")
    for n, v in g.items():
        trainer.grads[n][...] = v


def schedule(workers_, epochs):
    """Each synchronous step's rows for every worker (the simulation's shards and orders)."""
    shards = workers.shard(data, workers_, "iid", SEED)
    return [step for epoch in workers.batch_schedule(shards, B, epochs, SEED) for step in epoch]


# -- dist_sync, SGD with momentum, against the simulation and against the whole batch ---------------------
sgd = {"learning_rate": 0.05 * size, "momentum": 0.9}      # linear scaling: the global batch is size*B
store = kvstore.create("dist_sync")
trainer = mxopt.Trainer(model.init_params(SEED), "sgd", sgd, kvstore=store)
steps = schedule(size, EPOCHS)
for step in steps:
    write_grads(trainer, step[rank])
    trainer.step(sum(len(r) for r in step))
result["sync_identical_on_ranks"] = same_on_every_rank(trainer.data)
result["sync_bytes_per_step"] = store.comm_log.up[-1]
result["memory_kinds"], result["cuda_aware"] = sorted(kvstore._memory_kinds(MPI)), store.cuda_aware
result["D"] = int(trainer.data.size)
sync_accuracy = model.accuracy(trainer.params, data.X_test, data.y_test)
result["sync_test_accuracy"] = sync_accuracy
if rank == 0:
    sim = workers.train_data_parallel(model, data, "sgd", sgd, workers=size, mode="allreduce",
                                      batch_size_per_worker=B, epochs=EPOCHS, seed=SEED)
    result["sync_equals_simulation"] = bool(np.array_equal(sim.trainer.data, trainer.data))
    whole = mxopt.Trainer(model.init_params(SEED), "sgd", sgd)
    for step in steps:
        write_grads(whole, np.concatenate(step))
        whole.step(sum(len(r) for r in step))
    diff = np.abs(whole.data - trainer.data)
    result["sync_vs_whole_batch_max_abs"] = float(diff.max())
    result["sync_vs_whole_batch_max_rel"] = float((diff / np.maximum(np.abs(whole.data), 1e-3)).max())
    result["whole_batch_test_accuracy"] = model.accuracy(whole.params, data.X_test, data.y_test)

# -- buckets, and MPI_Allreduce's own order ----------------------------------------------------------------
runs = {}
for label, options in (("one", {}), ("buckets", {"bucket_size": 500}),
                       ("allreduce", {"reduce": "allreduce", "bucket_size": 500})):
    tr = mxopt.Trainer(model.init_params(SEED), "sgd", sgd, kvstore=kvstore.create("dist_sync", **options))
    for step in steps[:5]:
        write_grads(tr, step[rank])
        tr.step(sum(len(r) for r in step))
    runs[label] = tr.data
    result[f"{label}_identical_on_ranks"] = same_on_every_rank(tr.data)
result["buckets_equal_one_message"] = bool(np.array_equal(runs["one"], runs["buckets"]))
result["allreduce_max_abs_diff"] = float(np.abs(runs["one"] - runs["allreduce"]).max())

# -- checkpoints: written by one rank, loaded by every rank of a job of another size ------------------------
ckpt, weights_file = os.path.join(ckpt_dir, "states.safetensors"), os.path.join(ckpt_dir, "weights.npy")
if "save" in parts:
    store.save_optimizer_states(ckpt)
    if rank == 0:
        np.save(weights_file, trainer.data)
if "load" in parts:
    saved = np.load(weights_file)
    start = model.init_params(SEED)
    again = mxopt.Trainer({n: np.zeros_like(v) for n, v in start.items()}, "sgd", sgd,
                          kvstore=kvstore.create("dist_sync"))
    again.data[...] = saved
    again.kvstore.load_optimizer_states(ckpt)
    with open(ckpt, "rb") as f:
        alone = mxopt.Trainer({n: np.zeros_like(v) for n, v in start.items()}, "sgd", sgd)
        alone.load_states(f.read())
    mom = again._state_arrays("mom")[0]
    result["ckpt_state_equal"] = bool(np.array_equal(mom, alone._state_arrays("mom")[0])
                                      and same_on_every_rank(mom) and np.abs(mom).max() > 0)
    result["ckpt_counts_equal"] = again.optimizer.num_update == alone.optimizer.num_update > 0

# -- LAMB and LBSGD ('lars', batch_scale=2): the norms of the global gradient -------------------------------
few = steps[:4]
for name, params in (("lamb", {"learning_rate": 0.01}),
                     ("lbsgd", {"learning_rate": 0.1, "momentum": 0.9, "warmup_epochs": 1,
                                "updates_per_epoch": 2, "batch_scale": 2})):
    if "large" not in parts:
        break
    tr = mxopt.Trainer(model.init_params(SEED), name, params, kvstore=kvstore.create("dist_sync"))
    for step in few:
        write_grads(tr, step[rank])
        tr.step(sum(len(r) for r in step))
    if rank == 0:
        ref = mxopt.Trainer(model.init_params(SEED), name, params)
        for step in few:
            summed = []
            for r in range(size):
                write_grads(ref, step[r])
                summed.append(ref.grad_data.copy())
            ref.grad_data[...] = workers.allreduce_sum(summed)
            ref.step(sum(len(r) for r in step))
        result[f"{name}_equals_one_process"] = bool(np.array_equal(ref.data, tr.data))

# -- the vote: Signum's momentum signs, one bit each ----------------------------------------------------------
if "vote" in parts:
    signum = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4}
    vote_steps = steps[:5]
    vote_store = kvstore.create("dist_sync_vote")
    tr = mxopt.Trainer(model.init_params(SEED), "signum", signum, kvstore=vote_store)
    vote_ok, mom_ok, moved = True, True, 0
    m_numpy = np.zeros(tr.data.size, np.float32)
    for step in vote_steps:
        before = tr.data.copy()
        rows = step[rank]
        write_grads(tr, rows)
        g_local = tr.grad_data.copy()
        tr.step(sum(len(r) for r in step))
        m = tr._state_arrays("mom")[0]
        # Signum's negated momentum, in NumPy: m <- mu*m - (1-mu)*wd*w - (1-mu)*g/b_local
        f = np.float32
        m_numpy = f(0.9) * m_numpy - f(0.1) * f(1e-4) * before - f(0.1) * (g_local * f(size / sum(map(len, step))))
        mom_ok &= bool(np.allclose(m, m_numpy, rtol=1e-4, atol=1e-6))
        everyone = gathered(m)
        votes = np.where(everyone >= 0, 1, -1).sum(axis=0)
        V = np.where(votes >= 0, f(1), f(-1))
        expected = (f(1) - f(0.01) * f(0)) * before + f(0.01) * V     # (1 - lr*wd_lh) w + lr V
        vote_ok &= bool(np.array_equal(tr.data, expected))
        moved += int(np.sum(V != np.where(m >= 0, 1, -1)))             # coordinates where this rank was outvoted
    result["vote_equals_numpy"] = bool(world.allreduce(int(vote_ok), MPI.MIN))
    result["vote_momentum_close"] = bool(world.allreduce(int(mom_ok), MPI.MIN))
    result["vote_outvoted_coordinates"] = int(world.allreduce(moved))
    result["vote_bytes_per_step"] = [vote_store.comm_log.up[-1], vote_store.comm_log.down[-1]]
    result["vote_identical_on_ranks"] = same_on_every_rank(tr.data)

# -- dist_async: a parameter server with DCASGD, and with plain SGD -------------------------------------------
for name, params in (("dcasgd", {"learning_rate": 0.1, "lamda": 0.5}), ("sgd", {"learning_rate": 0.1})):
    if "async" not in parts:
        break
    astore = kvstore.create("dist_async")
    tr = mxopt.Trainer(model.init_params(SEED), name, params, kvstore=astore)
    if astore.is_server:
        log = []   # every update as the server saw it: the gradient, its batch and the weights it was computed at
        updates = astore.serve(lambda t, worker, pulled, b: log.append((t.grad_data.copy(), b, pulled.copy())))
        # Replay in one process with mxopt.workers' DCASGD hook (w_prev = the pulled weights): the same bits.
        replay = mxopt.Trainer(model.init_params(SEED), name, params)
        hook = workers.pulled_into_state()
        for k, (g, b, pulled) in enumerate(log, start=1):
            replay.grad_data[...] = g
            hook(replay, k, workers._unflatten(pulled, {n: s for n, _, s in replay._layout}))
            replay.step(b)
        result[f"async_{name}_equals_replay"] = bool(np.array_equal(replay.data, tr.data))
        result[f"async_{name}_updates"] = updates
        result[f"async_{name}_test_accuracy"] = model.accuracy(tr.params, data.X_test, data.y_test)
        result[f"async_{name}_staleness_mean"] = float(np.mean(astore.staleness))
        result[f"async_{name}_staleness_max"] = int(np.max(astore.staleness))
    else:
        shards = workers.shard(data, astore.num_workers, "iid", SEED)
        rng = np.random.default_rng([SEED, astore.rank])
        mine = shards[astore.rank].index
        for epoch in range(EPOCHS):
            order = mine[rng.permutation(len(mine))]
            for begin in range(0, len(order), B):
                rows = order[begin:begin + B]
                write_grads(tr, rows)
                tr.step(len(rows))          # each push is this worker's batch alone
        astore.close()
    result[f"async_{name}_identical_on_ranks"] = same_on_every_rank(tr.data)

if rank == 0:
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
