"""Adam step throughput against references measured in the same run.

Prints, for the CPU (and the GPU when one is present): mxopt's Adam in GB/s
(28 bytes per float32 parameter per step: read w, g, m, v; write w, m, v),
the machine's streaming bandwidth for the same access pattern, a naive NumPy
Adam, PyTorch's fused and foreach Adam when PyTorch is installed, and the
Trainer (1000 parameters of 1024 elements) against one array of the same
size. Every figure is the median of several repeats; the ratios are the
numbers to read, because these machines are shared and noisy.

    python benchmarks/bench_adam.py [--n 16777216] [--gpu-n 268435456] [--repeats 7] [--rounds 5] [--skip-cpu]
"""
from __future__ import annotations

import argparse
import os

# PyTorch's OpenMP threads busy-wait after each parallel region; on a 2-core
# machine they then steal the cores from Numba's threads (and the other way
# round), which makes whichever library runs second look slow. Passive waiting
# keeps the comparison fair.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import platform
import statistics
import time

import numpy as np

import mxopt

BYTES_PER_PARAM = 28


def seconds_per_call(fn, repeats, sync=lambda: None, warmup=2):
    """Steady-state time of one call: ``repeats`` calls back to back, then one sync.

    This is how a training loop runs: on a GPU the host queues the next step
    while the current one executes, so the per-call Python overhead is hidden
    as long as it is shorter than the kernel. On the CPU every call is
    synchronous anyway.
    """
    for _ in range(warmup):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t) / repeats


def interleaved(contenders, repeats, rounds, sync=lambda: None):
    """GB/s of each contender, ``(name, fn, bytes)``, measured in turns.

    Each round times every contender once (``repeats`` calls); the result is
    the median over the rounds, so a burst of load from a neighbour on a
    shared machine hits every contender alike.
    """
    results = {name: [] for name, _, _ in contenders}
    for _ in range(rounds):
        for name, fn, nbytes in contenders:
            results[name].append(nbytes / 1e9 / seconds_per_call(fn, repeats, sync))
    return [(name, statistics.median(v)) for name, v in results.items()]


def report(rows, reference):
    ref = dict(rows)[reference]
    width = max(len(name) for name, _ in rows)
    for name, gbs in rows:
        print(f"  {name:<{width}}  {gbs:8.1f} GB/s   {gbs / ref:5.2f}x {reference}")
    d = dict(rows)
    if "torch Adam fused" in d:
        print(f"  mxopt / torch fused = {d['mxopt Adam'] / d['torch Adam fused']:.3f}")


# -- CPU ---------------------------------------------------------------------------
def stream_kernel():
    """Reads four arrays and writes three: Adam's traffic with trivial arithmetic."""
    import numba

    @numba.njit(parallel=True, error_model="numpy")
    def stream(w, g, m, v, a):
        for i in numba.prange(w.shape[0]):
            x, y, z, u = w[i], g[i], m[i], v[i]
            w[i] = x + a * y
            m[i] = z + a * y
            v[i] = u + a * y

    return stream


def numpy_adam(w, g, m, v, lr, b1, b2, eps, t):
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g * g
    w -= lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)


def bench_cpu(n, repeats, rounds):
    import numba

    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba {numba.__version__} ({numba.get_num_threads()} threads), Adam on {n:,} float32 parameters")
    bench_trainer(repeats)
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    s1, s2, s3 = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    gb = BYTES_PER_PARAM * n
    stream = stream_kernel()
    a = np.float32(1e-7)
    dst = np.empty_like(w)
    opt = mxopt.Adam(learning_rate=1e-3)
    state = opt.create_state(0, w)
    w2 = w.copy()
    contenders = [
        ("stream (4 reads, 3 writes)", lambda: stream(s1, g, s2, s3, a), gb),
        ("np.copyto (1 read, 1 write)", lambda: np.copyto(dst, w), 8 * n),
        ("mxopt Adam", lambda: opt.update(0, w, g, state), gb),
        ("naive NumPy Adam", lambda: numpy_adam(w2, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 10), gb),
    ]
    contenders += torch_contenders(w, g, device="cpu")
    report(interleaved(contenders, repeats, rounds), "stream (4 reads, 3 writes)")
    print(f"  numba threading layer: {numba.threading_layer()}")


def torch_contenders(w, g, device):
    try:
        import torch
    except ImportError:
        print("  (PyTorch not installed: pip install torch to compare with torch.optim.Adam)")
        return []
    out = []
    for label, flags in (("torch Adam fused", {"fused": True}), ("torch Adam foreach", {"foreach": True})):
        p = torch.nn.Parameter(torch.as_tensor(w, device=device).clone())
        p.grad = torch.as_tensor(g, device=device).clone()
        opt = torch.optim.Adam([p], lr=1e-3, **flags)
        try:
            opt.step()
        except (RuntimeError, NotImplementedError) as e:
            print(f"  ({label} unavailable: {e})")
            continue
        out.append((label, opt.step, BYTES_PER_PARAM * p.numel()))
    return out


def bench_trainer(repeats, like=None, sync=lambda: None):
    """1000 parameters of 1024 elements in one Trainer vs one array of 1,024,000."""
    make = (lambda shape: np.zeros(shape, np.float32)) if like is None else like
    many = mxopt.Trainer({f"p{i}": make((1024,)) for i in range(1000)}, "adam", {"learning_rate": 1e-3})
    one = mxopt.Trainer({"all": make((1024 * 1000,))}, "adam", {"learning_rate": 1e-3})
    contenders = [("many", many.step, 1e9), ("one", one.step, 1e9)]
    if like is None:  # the alternative the Trainer replaces: one update call per array
        opt = mxopt.Adam(learning_rate=1e-3)
        ws = [np.zeros(1024, np.float32) for _ in range(1000)]
        gs = [np.zeros(1024, np.float32) for _ in range(1000)]
        sts = [opt.create_state(i, w) for i, w in enumerate(ws)]

        def per_array():
            for i, (w, g, s) in enumerate(zip(ws, gs, sts)):
                opt.update(i, w, g, s)

        contenders.append(("per-array", per_array, 1e9))
    ms = {name: 1e3 / rate for name, rate in interleaved(contenders, repeats * 3, 5, sync)}
    print(f"  Trainer, 1000 x 1024 parameters: {ms['many']:.3f} ms/step; one array of the same size: "
          f"{ms['one']:.3f} ms/step; ratio {ms['many'] / ms['one']:.2f}")
    if "per-array" in ms:
        print(f"  (1000 separate update calls instead: {ms['per-array']:.3f} ms/step)")


# -- GPU ---------------------------------------------------------------------------
def bench_gpu(n, repeats, rounds):
    from numba import config, cuda

    if config.ENABLE_CUDASIM or not cuda.is_available():
        print("GPU: none (skipped)")
        return
    import torch

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    print(f"GPU: {name}, Adam on {n:,} float32 parameters (PyTorch {torch.__version__} CUDA tensors)")
    sync = torch.cuda.synchronize
    w = torch.randn(n, device="cuda")
    g = torch.randn(n, device="cuda")
    dst = torch.empty_like(w)
    opt = mxopt.Adam(learning_rate=1e-3)
    state = opt.create_state(0, w)
    contenders = [("device copy (1 read, 1 write)", lambda: dst.copy_(w), 8 * n),
                  ("mxopt Adam", lambda: opt.update(0, w, g, state), BYTES_PER_PARAM * n)]
    contenders += torch_contenders(w, g, device="cuda")
    report(interleaved(contenders, repeats, rounds, sync), "device copy (1 read, 1 write)")
    del contenders, state, w, g, dst
    torch.cuda.empty_cache()
    bench_trainer(repeats, like=lambda shape: torch.zeros(shape, device="cuda"), sync=sync)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16 * 2**20, help="CPU parameters (default 16M)")
    parser.add_argument("--gpu-n", type=int, default=268_435_456, help="GPU parameters (default 268M)")
    parser.add_argument("--repeats", type=int, default=7, help="calls timed per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of turns (the median is reported)")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"numpy {np.__version__}, mxopt {mxopt.__version__}")
    if not args.skip_cpu:
        bench_cpu(args.n, args.repeats, args.rounds)
    bench_gpu(args.gpu_n, args.repeats, args.rounds)


if __name__ == "__main__":
    main()
