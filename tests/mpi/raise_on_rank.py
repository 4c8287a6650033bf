"""tests/test_kvstore_mpi.py: rank 1 raises while the other ranks wait in a dist_sync step.

The store's exception hook must print rank 1's error and abort the whole job
(MPI_Abort), instead of leaving the other ranks blocked in the collective.
"""
import numpy as np
from mpi4py import MPI

import mxopt

store = mxopt.kvstore.create("dist_sync")
trainer = mxopt.Trainer({"w": np.ones(8, np.float32)}, "sgd", {"learning_rate": 0.1}, kvstore=store)
if MPI.COMM_WORLD.Get_rank() == 1:
    raise ValueError("rank one failed on purpose")
trainer.step(MPI.COMM_WORLD.Get_size())     # waits for rank 1's gradient, which never comes
print("unreachable: the job should have been aborted", flush=True)
