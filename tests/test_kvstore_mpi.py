"""mxopt.kvstore: real MPI jobs (mpiexec -n 2 and -n 4) launched from the test suite.

The jobs' scripts are in tests/mpi/. Each job's ranks run the script; rank 0 writes what it
measured as JSON and the tests here assert on it. Without mpi4py or the venv's mpiexec
(pip install 'mxopt[mpi]') the MPI tests are skipped, with a message that says so.

Two ranks per core is oversubscription on a 2-core machine; MPICH needs no flag for it.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

import mxopt
from mxopt import kvstore

HERE = Path(__file__).parent / "mpi"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
if not MPIEXEC.exists():
    MPIEXEC = shutil.which("mpiexec")
HAVE_MPI = find_spec("mpi4py") is not None and MPIEXEC is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="MPI is not installed: the kvstore MPI tests need mpi4py and mpiexec "
                         "(pip install 'mxopt[mpi]', which make's venv does)")

#: One rank per process and one thread per rank: four ranks already oversubscribe two cores.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
TRAIN_TIMEOUT, FAIL_TIMEOUT = 240, 60


def mpirun(n, script, *args, timeout):
    """Run ``script`` on ``n`` ranks; the CompletedProcess, and the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run([str(MPIEXEC), "-n", str(n), sys.executable, str(HERE / script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=HERE.parent.parent)
    return done, time.perf_counter() - start


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """The digits split, saved once, so that the ranks need not import scikit-learn."""
    data = mxopt.datasets.digits()
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(path, X_train=data.X_train, y_train=data.y_train, X_test=data.X_test, y_test=data.y_test,
             n_classes=data.n_classes)
    return path


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("checkpoint")


def train_job(n, parts, digits_file, checkpoint_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"job{n}") / "result.json"
    done, seconds = mpirun(n, "kvstore_job.py", digits_file, out, checkpoint_dir, ",".join(parts),
                           timeout=TRAIN_TIMEOUT)
    assert done.returncode == 0, f"mpiexec -n {n} failed:\n{done.stdout}\n{done.stderr}"
    result = json.loads(out.read_text())
    result["seconds"] = seconds
    return result


@pytest.fixture(scope="module")
def job2(digits_file, checkpoint_dir, tmp_path_factory):
    """Two ranks: dist_sync, the checkpoint written, LAMB and LBSGD."""
    return train_job(2, ["sync", "save", "large"], digits_file, checkpoint_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def job4(job2, digits_file, checkpoint_dir, tmp_path_factory):
    """Four ranks: dist_sync, the two-rank checkpoint loaded, the vote, the parameter server."""
    return train_job(4, ["sync", "load", "vote", "async"], digits_file, checkpoint_dir, tmp_path_factory)


# -- dist_sync ---------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.parametrize("job", ["job2", "job4"])
def test_dist_sync_equals_one_process(job, request):
    r = request.getfixturevalue(job)
    # Every rank holds the same bits, and they are the in-process simulation's (same order of sums).
    assert r["sync_identical_on_ranks"] and r["sync_equals_simulation"]
    # One process on the whole global batch sums the examples in BLAS's order instead of shard by
    # shard: after two epochs (86 steps on 2 ranks, 42 on 4) the weights differ in the last float32
    # bits (measured: at most 3.6e-7 on 2 ranks, 9.5e-7 on 4, for weights of order 0.1-1).
    assert r["sync_vs_whole_batch_max_abs"] < 1e-5
    assert abs(r["sync_test_accuracy"] - r["whole_batch_test_accuracy"]) <= 1 / 450
    assert r["sync_test_accuracy"] > 0.9
    assert r["sync_bytes_per_step"] == 4 * r["D"]            # float32 up (and down)
    # MPICH's wheel is not CUDA-aware and says so in MPI 4.1's memory kinds; the store read them.
    assert "system" in r["memory_kinds"] and r["cuda_aware"] == ("cuda" in r["memory_kinds"])
    # Buckets of 500 elements (4 messages) change nothing; MPI_Allreduce sums in its own order, so
    # its weights may differ in the last bits from the rank-order sum, but not across ranks.
    assert r["buckets_equal_one_message"] and r["buckets_identical_on_ranks"]
    assert r["allreduce_identical_on_ranks"] and r["allreduce_max_abs_diff"] < 1e-6


@needs_mpi
def test_checkpoint_written_on_two_ranks_loads_on_four(job4):
    # job2 saved from rank 0; every rank of job4 loaded it: the same state as one process loading it.
    assert job4["ckpt_state_equal"] and job4["ckpt_counts_equal"]


@needs_mpi
def test_layerwise_and_large_batch_see_the_global_gradient(job2):
    # LAMB's trust ratios and LBSGD's accumulated mean come from the summed gradient, as on one machine.
    assert job2["lamb_equals_one_process"] and job2["lbsgd_equals_one_process"]


# -- the vote ------------------------------------------------------------------------------------------
@needs_mpi
def test_signum_vote_is_numpy_majority_vote_in_one_32nd_of_the_bytes(job4):
    assert job4["vote_equals_numpy"] and job4["vote_identical_on_ranks"] and job4["vote_momentum_close"]
    assert job4["vote_outvoted_coordinates"] > 0            # the vote overruled ranks: not each its own sign
    d = job4["D"]
    assert d % 8 == 0 and job4["vote_bytes_per_step"] == [d // 8, d // 8]
    assert job4["vote_bytes_per_step"][0] * 32 == job4["sync_bytes_per_step"]


# -- the parameter server --------------------------------------------------------------------------------
@needs_mpi
def test_dist_async_dcasgd_trains_like_sync_sgd(job4):
    # Three workers push 2 epochs of batches of 16 (2 x 3 x 29 = 174): each is one update, applied on arrival.
    assert job4["async_dcasgd_updates"] == job4["async_sgd_updates"] >= 2 * (1347 // 16)
    assert job4["async_dcasgd_staleness_max"] >= 1 and job4["async_dcasgd_staleness_mean"] > 0.5
    assert job4["async_dcasgd_identical_on_ranks"]           # close() hands every worker the final weights
    # The server used each worker's pulled weights as DCASGD's w_prev: replaying the updates it saw in one
    # process, with mxopt.workers' hook for that, gives its weights bit for bit.
    assert job4["async_dcasgd_equals_replay"] and job4["async_sgd_equals_replay"]
    # Measured: 0.935-0.94 for both, against 0.951 for dist_sync (SGD with momentum, 42 global steps).
    for name in ("dcasgd", "sgd"):
        assert job4[f"async_{name}_test_accuracy"] > 0.9
        assert job4[f"async_{name}_test_accuracy"] >= job4["sync_test_accuracy"] - 0.05


# -- failures --------------------------------------------------------------------------------------------
@needs_mpi
def test_a_raising_rank_aborts_the_job_with_its_message():
    done, seconds = mpirun(2, "raise_on_rank.py", timeout=FAIL_TIMEOUT)
    assert done.returncode != 0
    assert "rank 1 of 2 raised ValueError" in done.stderr and "rank one failed on purpose" in done.stderr
    assert "unreachable" not in done.stdout


@needs_mpi
def test_mismatched_layouts_are_refused_at_start_up():
    done, _ = mpirun(2, "layout_mismatch.py", timeout=FAIL_TIMEOUT)
    assert done.returncode != 0
    assert "do not match" in done.stderr and "rank 1 has [['fc1_weight', [5, 3]]" in done.stderr
    assert "unreachable" not in done.stdout


# -- GPU arrays ---------------------------------------------------------------------------------------------
@needs_mpi
@pytest.mark.cuda
def test_cuda_arrays_staged_through_the_host():
    # Numba device arrays (simulated under NUMBA_ENABLE_CUDASIM=1) with cuda_aware=False: the host
    # copies give the NumPy run's bits in every kind. The CUDA-aware path needs a GPU and an MPI
    # built with CUDA, which these machines lack: it is not tested here.
    done, _ = mpirun(2, "gpu_staging.py", timeout=TRAIN_TIMEOUT)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "device == host in every kind" in done.stdout


# -- in this process: the 'local' store and the arguments (no MPI) ----------------------------------------
def test_local_store_is_the_plain_trainer():
    params = {"w": np.arange(4, dtype=np.float32), "b": np.ones(2, np.float32)}
    plain = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    local = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9}, kvstore="local")
    assert local.kvstore.type == "local" and (local.kvstore.rank, local.kvstore.num_workers) == (0, 1)
    for tr in (plain, local):
        for step in range(3):
            tr.grads["w"][...] = np.sin(np.arange(4) + step); tr.grads["b"][...] = step
            tr.step(4)
    np.testing.assert_array_equal(plain.data, local.data)
    assert plain.kvstore is None and len(local.kvstore.comm_log) == 3 and local.kvstore.bytes_sent == 0


def test_bad_store_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        kvstore.create("dist_sink")
    with pytest.raises(TypeError, match="name must be a string"):
        kvstore.create(3)
    with pytest.raises(ValueError, match="reduce must be one of"):
        kvstore.create("dist_sync", reduce="tree")
    with pytest.raises(ValueError, match="is for 'dist_sync'"):
        kvstore.create("local", reduce="allreduce")
    with pytest.raises(TypeError, match="cuda_aware"):
        kvstore.create("local", cuda_aware="yes")
    with pytest.raises(ValueError, match="bucket_size"):
        kvstore.create("local", bucket_size=0)
    with pytest.raises(TypeError, match="kvstore must be"):
        mxopt.Trainer({"w": np.ones(2, np.float32)}, "sgd", kvstore=3.0)
    store = kvstore.create("local")
    mxopt.Trainer({"w": np.ones(2, np.float32)}, "sgd", kvstore=store)
    with pytest.raises(ValueError, match="already synchronises a Trainer"):
        mxopt.Trainer({"w": np.ones(2, np.float32)}, "sgd", kvstore=store)
