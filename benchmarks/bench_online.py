"""FTRL, FTML and SGLD against the steps the issue compares them with, in one run.

Issue 9's cost targets, each a ratio of step times measured in the same run
on one float32 array of ``--n`` parameters:

* FTRL (reads w, g, z, n; writes w, z, n: Adam's traffic) within 1.25x Adam;
* FTML (three state arrays: 36 bytes per parameter) within 1.5x Adam;
* SGLD (no state; its Gaussian noise drawn inside the kernel from the
  counter-based generator of ``mxopt._random``) within 2x SGD with momentum
  0.9 (20 bytes per parameter).

The contenders take turns in every round (``bench_adam.interleaved``); each
figure is the median over ``--rounds`` rounds of ``--repeats`` back-to-back
steps. The stream kernel (Adam's traffic, trivial arithmetic, from
bench_optimizers.py) is the memory-bandwidth reference. On a machine with a
CUDA GPU the same contenders run on device arrays (PyTorch CUDA tensors, else
CuPy, else Numba device arrays).

    python benchmarks/bench_online.py [--n 8388608] [--gpu-n 268435456] [--repeats 5] [--rounds 9] [--skip-cpu]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in bench_adam.py
import argparse
import time

import numpy as np

import mxopt
from bench_adam import interleaved
from bench_optimizers import stream_kernel

#: name -> (constructor, state arrays k); bytes per parameter are (3 + 2k)·4 for float32.
CONTENDERS = {
    "adam": (lambda: mxopt.Adam(learning_rate=1e-3), 2),
    "ftrl": (lambda: mxopt.Ftrl(learning_rate=0.1, lamda1=0.01), 2),
    "ftml": (lambda: mxopt.FTML(learning_rate=1e-3), 3),
    "sgd_momentum": (lambda: mxopt.SGD(learning_rate=0.01, momentum=0.9), 1),
    "sgld": (lambda: mxopt.SGLD(learning_rate=1e-4, seed=7), 0),
}
#: (label, numerator, denominator, target)
RATIOS = [("FTRL / Adam", "ftrl", "adam", 1.25), ("FTML / Adam", "ftml", "adam", 1.5),
          ("SGLD / SGD-momentum", "sgld", "sgd_momentum", 2.0)]


def steps(w, g, like=lambda x: x.copy()):
    """``[(name, step function, bytes)]``: each optimizer on its own copy of ``w`` (``like`` copies)."""
    out = []
    for name, (make, k) in CONTENDERS.items():
        opt, wi = make(), like(w)
        state = opt.create_state(0, wi)
        out.append((name, lambda opt=opt, wi=wi, state=state: opt.update(0, wi, g, state), (3 + 2 * k) * 4 * n_of(w)))
    return out


def n_of(x):
    return int(np.prod(x.shape))


def report(rows, reference):
    """Print ms per step and GB/s of each contender, and the issue's ratios (of times, same run)."""
    ms = {name: nbytes / 1e6 / gbs for name, gbs, nbytes in rows}
    gbs = {name: g for name, g, _ in rows}
    for name, _, _ in rows:
        print(f"  {name:<14} {ms[name]:9.3f} ms/step {gbs[name]:8.1f} GB/s  {gbs[name] / gbs[reference]:5.2f}x {reference}")
    for label, a, b, target in RATIOS:
        r = ms[a] / ms[b]
        print(f"  {label:<20} {r:6.2f}  (target <= {target}: {'met' if r <= target else 'NOT met'})")
    return {label: ms[a] / ms[b] for label, a, b, _ in RATIOS}


def timed(contenders, repeats, rounds, sync=lambda: None):
    nbytes = {name: b for name, _, b in contenders}
    return [(name, gbs, nbytes[name]) for name, gbs in interleaved(contenders, repeats, rounds, sync)]


def bench_cpu(n, repeats, rounds):
    import numba

    print(f"CPU: {os.cpu_count()} cores, numba {numba.__version__} ({numba.get_num_threads()} threads), "
          f"{n:,} float32 parameters, load average {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n, dtype=np.float32) * np.float32(0.1)
    g = rng.standard_normal(n, dtype=np.float32)
    stream = stream_kernel(2)
    scratch = [rng.standard_normal(n, dtype=np.float32) for _ in range(3)]
    a = np.float32(1e-7)
    contenders = [("stream (Adam)", lambda: stream(scratch[0], g, *scratch[1:], a), 28 * n)] + steps(w, g)
    return report(timed(contenders, repeats, rounds), "stream (Adam)")


def gpu_arrays():
    """``(to_device, copy, sync, label)`` for the first CUDA array library present, or None."""
    from numba import config, cuda

    if config.ENABLE_CUDASIM or not cuda.is_available():
        return None
    try:
        import torch

        return (lambda x: torch.as_tensor(x, device="cuda"), lambda x: x.clone(), torch.cuda.synchronize,
                f"PyTorch {torch.__version__} CUDA tensors")
    except ImportError:
        pass
    try:
        import cupy

        return (cupy.asarray, lambda x: x.copy(), cupy.cuda.Device().synchronize, f"CuPy {cupy.__version__} arrays")
    except ImportError:
        pass

    def copy(x):
        y = cuda.device_array_like(x)
        y.copy_to_device(x)
        return y

    return cuda.to_device, copy, cuda.synchronize, "Numba device arrays"


def bench_gpu(n, repeats, rounds):
    arrays = gpu_arrays()
    if arrays is None:
        print("GPU: none (skipped)")
        return None
    to_device, copy, sync, label = arrays
    from numba import cuda

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    print(f"GPU: {name}, {n:,} float32 parameters ({label})")
    rng = np.random.default_rng(0)
    w = to_device(rng.standard_normal(n, dtype=np.float32) * np.float32(0.1))
    g = to_device(rng.standard_normal(n, dtype=np.float32))
    src, dst = copy(w), copy(w)

    def device_copy():
        dst[:] = src

    contenders = [("device copy", device_copy, 8 * n)] + steps(w, g, like=copy)
    return report(timed(contenders, repeats, rounds, sync), "device copy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8 * 2**20, help="CPU parameters (default 8M)")
    parser.add_argument("--gpu-n", type=int, default=8 * 2**20, help="GPU parameters (default 8M)")
    parser.add_argument("--repeats", type=int, default=5, help="steps timed back to back per round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of turns (the median is reported)")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    if args.n < 1 or args.gpu_n < 1 or args.repeats < 1 or args.rounds < 1:
        parser.error("--n, --gpu-n, --repeats and --rounds must be >= 1")
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"numpy {np.__version__}, mxopt {mxopt.__version__}")
    if not args.skip_cpu:
        bench_cpu(args.n, args.repeats, args.rounds)
    bench_gpu(args.gpu_n, args.repeats, args.rounds)


if __name__ == "__main__":
    main()
