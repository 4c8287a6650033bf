"""tests/test_kvstore_mpi.py (cuda): CUDA arrays through a store that is told the MPI is not CUDA-aware.

Every collective then goes through host copies. Each kind trains the same tiny problem on
device arrays and on NumPy arrays; the weights must agree bit for bit on every rank. Under
NUMBA_ENABLE_CUDASIM=1 the device arrays are Numba's simulated ones.
"""
import numpy as np
from mpi4py import MPI
from numba import cuda

import mxopt

rank = MPI.COMM_WORLD.Get_rank()
CASES = (("dist_sync", "sgd", {"learning_rate": 0.1, "momentum": 0.9}),
         ("dist_sync_vote", "signum", {"learning_rate": 0.1}),
         ("dist_async", "dcasgd", {"learning_rate": 0.1, "lamda": 0.5}))


def train(kind, optimizer, params, on_device):
    store = mxopt.kvstore.create(kind, cuda_aware=False)
    w0 = np.linspace(-1, 1, 12).astype(np.float32)
    trainer = mxopt.Trainer({"w": cuda.to_device(w0) if on_device else w0}, optimizer, params, kvstore=store)
    if store.is_server:
        store.serve()
    else:
        for k in range(3):
            g = np.cos(np.arange(12, dtype=np.float32) * (rank + 1) + k).astype(np.float32)
            if on_device:
                trainer.grads["w"].copy_to_device(g)
            else:
                trainer.grads["w"][...] = g
            trainer.step(2)
        store.close()
    return trainer.data.copy_to_host() if on_device else trainer.data.copy()


for kind, optimizer, params in CASES:
    device, host = train(kind, optimizer, params, True), train(kind, optimizer, params, False)
    assert np.array_equal(device, host), (kind, device, host)
    rows = np.empty((MPI.COMM_WORLD.Get_size(), 12), np.float32)
    MPI.COMM_WORLD.Allgather(device, rows)
    assert all(np.array_equal(rows[0], r) for r in rows), kind
    assert not np.array_equal(device, np.linspace(-1, 1, 12).astype(np.float32)), kind
if rank == 0:
    print("staged through the host: device == host in every kind", flush=True)
