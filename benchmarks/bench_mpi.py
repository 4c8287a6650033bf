"""Per-step time and bytes of mxopt.kvstore's modes on 1, 2 and 4 MPI ranks (benchmarks/RESULTS.md).

    .venv/bin/python benchmarks/bench_mpi.py [--epochs 2] [--hidden 64 1024]

Runs examples/train_digits_mpi.py under the venv's mpiexec for every mode and number of ranks
(dist_async needs 2 or more: rank 0 serves) and prints a Markdown table:
step = the median time of a worker's whole step (its gradient, the communication and the
update), comm+update = the median of the store's part of it; bytes = the payload one worker
sends (and receives) per step. Every rank is one process with one BLAS thread.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPIEXEC = Path(sys.executable).parent / "mpiexec"
CASES = [("dist_sync", "ordered"), ("dist_sync", "allreduce"), ("signum", "ordered"), ("dist_async", "ordered")]


def run(mode, reduce, ranks, epochs, hidden):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(ROOT / "examples" / "train_digits_mpi.py"),
                        "--mode", mode, "--reduce", reduce, "--epochs", str(epochs), "--hidden", str(hidden),
                        "--json", str(out)], check=True, env=env, timeout=600, capture_output=True)
        return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print("| parameters | mode | ranks (workers) | step ms | comm+update ms | bytes up / down per step | "
          "test accuracy | staleness mean / max |")
    print("|---:|---|---|---:|---:|---:|---:|---|")
    for hidden in args.hidden:
        for mode, reduce in CASES:
            for ranks in args.ranks:
                if mode == "dist_async" and ranks < 2:
                    continue
                r = run(mode, reduce, ranks, args.epochs, hidden)
                label = mode if mode != "dist_sync" else f"dist_sync ({reduce})"
                stale = f"{r['staleness_mean']:.2f} / {r['staleness_max']}" if "staleness_mean" in r else ""
                print(f"| {r['parameters']:,} | {label} | {ranks} ({r['workers']}) | {r['step_ms']:.2f} | "
                      f"{r['comm_update_ms']:.2f} | {r['bytes_up_per_step']:,} / {r['bytes_down_per_step']:,} | "
                      f"{r['test_accuracy']:.4f} | {stale} |", flush=True)


if __name__ == "__main__":
    main()
