"""The three data-parallel modes of mxopt.kvstore in one MPI job, for the chapter "Training on many machines".

    mpiexec -n 4 .venv/bin/python examples/digits_modes_mpi.py DIGITS.npz OUT_DIR [--epochs 3] [--sizes 1,2,4]

For each size N of --sizes (default: all the job's ranks) the first N ranks train on their own
communicator (MPI_Comm_split) while the others wait without spinning, so that one job of 4
processes measures 1, 2 and 4 ranks and pays the imports and compilation once. On those N
ranks, one after the other in the same processes:

* dist_sync: SGD with momentum 0.9, learning rate 0.05 per 16 examples of the global batch (the
  linear scaling rule: 0.05 N on N ranks); the shards and batches of mxopt.workers.batch_schedule,
  so that the weights can be compared with mxopt.workers.train_data_parallel bit for bit;
* dist_sync_vote: Signum (momentum 0.9, learning rate 0.01) with the 1-bit majority vote, on the
  same batches;
* dist_async (two ranks or more; rank 0 serves): DCASGD (learning rate 0.1, lamda 0.5), worker k
  taking its own batches of the schedule of N - 1 shards, at its own pace; the server logs every update
  (the gradient, its batch size and the weights the worker pulled) so that it can be replayed
  in one process.

DIGITS.npz holds mxopt.datasets.digits() (X_train, y_train, X_test, y_test, n_classes), so
that no rank imports scikit-learn. Rank 0 writes OUT_DIR/result.json (per mode: the median time
of a worker's step, of the store's part of it, the bytes one worker sends and receives per step,
the number of steps; the async staleness), keyed by N, and OUT_DIR/weights.npz (each mode's
final flat weights, and the async server's log, under "N/mode"). Every rank is one process;
set OPENBLAS_NUM_THREADS=1.
"""
import argparse
import json
import os
import time

import numpy as np
from mpi4py import MPI

import mxopt
from mxopt import datasets, kvstore, models, workers

B, SEED, HIDDEN = 16, 0, 26           # D = 64*26 + 26 + 26*10 + 10 = 1960, a multiple of 8
SYNC = {"learning_rate": 0.05, "momentum": 0.9}       # per 16 examples; times N on N ranks
SIGNUM = {"learning_rate": 0.01, "momentum": 0.9}
DCASGD = {"learning_rate": 0.1, "lamda": 0.5}


def wait_quietly(comm):
    """A barrier that sleeps instead of spinning (MPICH's blocking barrier polls a core at 100 %)."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.002)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("digits")
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sizes", help="comma-separated numbers of ranks to run on, one after the other")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    sizes = [world.Get_size()] if args.sizes is None else [int(n) for n in args.sizes.split(",")]
    if not all(1 <= n <= world.Get_size() for n in sizes):
        raise ValueError(f"--sizes must be between 1 and the job's {world.Get_size()} ranks, got {args.sizes!r}")
    with np.load(args.digits) as f:
        data = datasets.Dataset(f["X_train"], f["y_train"], f["X_test"], f["y_test"], int(f["n_classes"]))
    # Compile the update rules on every rank at once (the first call of a rule compiles it), rather than rank
    # by rank as each size's run reaches them; no measurement includes it. The vote's weight step is signSGD's
    # rule; only the server (rank 0) applies DCASGD.
    rules = [("sgd", SYNC), ("signum", SIGNUM), ("signum", {"momentum": 0.0})]
    for optimizer, params in rules + ([("dcasgd", DCASGD)] if world.Get_rank() == 0 else []):
        warm = mxopt.Trainer({"w": np.zeros(8, np.float32)}, optimizer, params)
        warm.step(1)
    wait_quietly(world)
    result, weights = {"epochs": args.epochs, "batch_per_worker": B}, {}
    for n in sizes:
        comm = world.Split(0 if world.Get_rank() < n else MPI.UNDEFINED, world.Get_rank())
        if comm != MPI.COMM_NULL:
            result[str(n)] = train_modes(comm, data, args.epochs, weights)
            comm.Free()
        wait_quietly(world)
    if world.Get_rank() == 0:
        os.makedirs(args.out_dir, exist_ok=True)
        np.savez(os.path.join(args.out_dir, "weights.npz"), **weights)
        with open(os.path.join(args.out_dir, "result.json"), "w") as f:
            json.dump(result, f, indent=1)


def train_modes(world, data, epochs, weights):
    """The three modes on the ranks of ``world``; rank 0 returns the measurements and fills ``weights``."""
    rank, size = world.Get_rank(), world.Get_size()
    model = models.mlp(data.n_features, data.n_classes, hidden=(HIDDEN,))
    X, y = data.X_train, data.y_train
    shards = workers.shard(data, size, "iid", SEED)
    steps = [step for epoch in workers.batch_schedule(shards, B, epochs, SEED) for step in epoch]
    result = {}

    def write_grads(trainer, rows):
        _, g = model.loss_and_grad(trainer.params, X[rows], y[rows], reduction="sum")
        for name, value in g.items():
            trainer.grads[name][...] = value

    def report(label, store, trainer, loop_seconds):
        """Medians over this rank's steps (the first, which compiles, left out), then over the workers."""
        mine = None
        if not store.is_server:
            mine = (float(np.median(loop_seconds[1:])), float(np.median(store.step_seconds[1:])),
                    int(np.median(store.comm_log.up)), int(np.median(store.comm_log.down)), len(loop_seconds))
        everyone = [m for m in world.gather(mine, root=0) or [] if m is not None]
        if rank == 0:
            step, comm, up, down, n = (np.median([m[i] for m in everyone]) for i in range(5))
            result[label] = {"store": store.type, "workers": store.num_workers, "steps_per_worker": int(n),
                             "step_ms": 1e3 * float(step), "comm_update_ms": 1e3 * float(comm),
                             "bytes_up_per_step": int(up), "bytes_down_per_step": int(down)}
            weights[f"{size}/{label}"] = np.array(trainer.data, copy=True)

    def train_synchronously(kind, optimizer, optimizer_params):
        """Every rank takes each step of ``steps`` on its own rows; the store combines them."""
        store = kvstore.create(kind, comm=world)
        trainer = mxopt.Trainer(model.init_params(SEED), optimizer, optimizer_params, kvstore=store)
        seconds = []
        for step in steps:
            tic = time.perf_counter()
            write_grads(trainer, step[rank])
            trainer.step(sum(len(rows) for rows in step))  # the global batch
            seconds.append(time.perf_counter() - tic)
        report(kind, store, trainer, seconds)

    # -- dist_sync: the sum of the ranks' gradients, the step of the global batch --------------------------
    train_synchronously("dist_sync", "sgd", dict(SYNC, learning_rate=SYNC["learning_rate"] * size))
    # -- dist_sync_vote: Signum's momentum signs, one bit per coordinate, and the majority vote ----------------
    train_synchronously("dist_sync_vote", "signum", SIGNUM)

    # -- dist_async: a parameter server on rank 0, DCASGD with the pulled weights as w_prev ---------------------
    if size > 1:
        store = kvstore.create("dist_async", comm=world)
        trainer = mxopt.Trainer(model.init_params(SEED), "dcasgd", DCASGD, kvstore=store)
        seconds, log = [], []
        if store.is_server:
            store.serve(lambda t, worker, pulled, b: log.append((worker, t.grad_data.copy(), b, pulled.copy())))
        else:
            # this worker's batches: its column of mxopt.workers' schedule for num_workers shards
            mine = [step[store.rank] for epoch in workers.batch_schedule(
                workers.shard(data, store.num_workers, "iid", SEED), B, epochs, SEED) for step in epoch]
            for rows in mine:
                tic = time.perf_counter()
                write_grads(trainer, rows)
                trainer.step(len(rows))                          # each push is this worker's batch alone
                seconds.append(time.perf_counter() - tic)
            store.close()                                        # receive the final weights
        report("dist_async", store, trainer, seconds)
        if store.is_server:
            result["dist_async"].update(updates=len(log), staleness=[int(s) for s in store.staleness])
            weights[f"{size}/async_worker"] = np.array([w for w, _, _, _ in log])
            weights[f"{size}/async_grad"] = np.array([g for _, g, _, _ in log])
            weights[f"{size}/async_batch"] = np.array([b for _, _, b, _ in log])
            weights[f"{size}/async_pulled"] = np.array([p for _, _, _, p in log])

    return result


if __name__ == "__main__":
    main()
