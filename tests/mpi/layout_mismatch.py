"""tests/test_kvstore_mpi.py: the ranks build Trainers of different shapes; the store refuses at start-up.

Every rank raises the same ValueError from the Trainer's constructor (the
exception hook then aborts the job), before any gradient is exchanged.
"""
import numpy as np
from mpi4py import MPI

import mxopt

rank = MPI.COMM_WORLD.Get_rank()
hidden = 5 if rank == 1 else 4                       # rank 1 builds a wider layer
params = {"fc1_weight": np.ones((hidden, 3), np.float32), "fc1_bias": np.zeros(hidden, np.float32)}
mxopt.Trainer(params, "sgd", {"learning_rate": 0.1}, kvstore=mxopt.kvstore.create("dist_sync"))
print("unreachable: the mismatch should have been refused", flush=True)
