"""Data-parallel training of an MLP on the digits, over MPI, in one of mxopt.kvstore's modes.

    mpiexec -n 4 .venv/bin/python examples/train_digits_mpi.py --mode dist_sync
    mpiexec -n 4 .venv/bin/python examples/train_digits_mpi.py --mode signum       # 1-bit majority vote
    mpiexec -n 4 .venv/bin/python examples/train_digits_mpi.py --mode dist_async   # rank 0 serves, DCASGD

Every rank holds a shard of the training set (mxopt.workers.shard).
* dist_sync: SGD with momentum; each step sums the ranks' gradients (one collective over the
  Trainer's flat buffer) and divides by the global batch; learning rate scaled by the number of
  workers (the linear scaling rule).
* signum: Signum; each rank sends the signs of its momentum (1 bit per coordinate) and applies
  the majority vote ('dist_sync_vote').
* dist_async: DCASGD on a parameter server: rank 0 holds the weights, the other ranks push
  gradients and pull weights without waiting for each other.
Rank 0 prints the test accuracy, the time per step and the bytes each rank sent per step;
``--json FILE`` writes them (benchmarks/bench_mpi.py reads it). The same command runs on a
cluster under the site's mpiexec (or srun).
"""
import argparse
import json
import time

import numpy as np

import mxopt
from mxopt import datasets, kvstore, models, workers

MODES = {"dist_sync": ("dist_sync", "sgd"), "signum": ("dist_sync_vote", "signum"),
         "dist_async": ("dist_async", "dcasgd")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="dist_sync")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="examples per worker and step")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--reduce", choices=kvstore.REDUCTIONS, default="ordered", help="dist_sync's sum")
    parser.add_argument("--json", help="write the measurements to this file (rank 0)")
    args = parser.parse_args()

    kind, optimizer = MODES[args.mode]
    store = kvstore.create(kind, **({"reduce": args.reduce} if kind == "dist_sync" else {}))
    data = datasets.digits()
    model = models.mlp(data.n_features, data.n_classes, hidden=(args.hidden,))
    n = store.num_workers
    optimizer_params = {"dist_sync": {"learning_rate": 0.05 * n, "momentum": 0.9},   # linear scaling
                        "signum": {"learning_rate": 0.005, "momentum": 0.9},
                        "dist_async": {"learning_rate": 0.05, "lamda": 0.5}}[args.mode]
    trainer = mxopt.Trainer(model.init_params(seed=0), optimizer, optimizer_params, kvstore=store)

    start, loop_seconds, steps = time.perf_counter(), [], 0
    if store.is_server:
        steps = store.serve()                                  # until every worker has closed
    else:
        shard = workers.shard(data, n, "iid", seed=0)[store.rank]
        rng = np.random.default_rng([1, store.rank])
        # Synchronous modes: every rank takes the same number of steps (the smallest shard's).
        per_epoch = min(len(s.index) for s in workers.shard(data, n, "iid", seed=0)) // args.batch
        global_batch = args.batch * (1 if kind == "dist_async" else n)
        for epoch in range(args.epochs):
            order = rng.permutation(len(shard.y))
            for k in range(per_epoch):
                tic = time.perf_counter()
                rows = order[k * args.batch:(k + 1) * args.batch]
                _, grads = model.loss_and_grad(trainer.params, shard.X[rows], shard.y[rows], reduction="sum")
                for name, g in grads.items():
                    trainer.grads[name][...] = g
                trainer.step(global_batch)
                loop_seconds.append(time.perf_counter() - tic)
                steps += 1
            if kind != "dist_async" and store.rank == 0:
                accuracy = model.accuracy(trainer.params, data.X_test, data.y_test)
                print(f"epoch {epoch + 1}: test accuracy {accuracy:.4f}", flush=True)
        store.close()                                          # dist_async: receive the final weights
    seconds = time.perf_counter() - start
    # Each worker's medians (the first step compiles the update, so it is left out); rank 0 reports.
    mine = None if store.is_server else (float(np.median(loop_seconds[1:])), float(np.median(store.step_seconds[1:])),
                                         int(np.median(store.comm_log.up)), int(np.median(store.comm_log.down)))
    from mpi4py import MPI
    everyone = [m for m in MPI.COMM_WORLD.gather(mine, root=0) or [] if m is not None]
    if store.mpi_rank == 0:
        loop, comm, up, down = (np.median([m[i] for m in everyone]) for i in range(4))
        result = {"mode": args.mode, "store": kind, "reduce": store.reduce, "ranks": store.mpi_size,
                  "workers": n, "parameters": int(trainer.data.size), "steps": steps,
                  "test_accuracy": model.accuracy(trainer.params, data.X_test, data.y_test), "seconds": seconds,
                  "step_ms": 1e3 * float(loop), "comm_update_ms": 1e3 * float(comm),
                  "bytes_up_per_step": int(up), "bytes_down_per_step": int(down)}
        if store.is_server:
            result.update(staleness_mean=float(np.mean(store.staleness)), staleness_max=int(np.max(store.staleness)))
        print(json.dumps(result, indent=1), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
