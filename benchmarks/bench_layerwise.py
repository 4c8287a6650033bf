"""The cost of a layer-wise step: LAMB against Adam, LARS against SGD with momentum.

One parameter of 8,388,608 float32 elements, the four steps timed in turns
(bench_adam's `interleaved`: 9 rounds of 5 steps, median), printed as
milliseconds per step and as the two ratios issue 8 bounds (1.6x each).
``--profile`` also times each of the three launches of a LAMB and a LARS
step on their own (median over the steps), and the Python time around them.
``--t0 N`` starts every optimizer's update count at N (LAMB's bias
corrections depend on it; default 0, the first steps of a run).
``--trainer`` times instead a Trainer of 1000 parameters of 1024 elements
against one of a single 1,024,000-element parameter, for LAMB and LARS
(issue 8: within 2x). ``--cpu-time`` measures process CPU seconds (both
threads together) instead of wall time: on a machine shared with other jobs
the wall time also counts the waits for a core, the CPU time much less.

    python benchmarks/bench_layerwise.py [--n 8388608] [--profile] [--t0 1000] [--trainer] [--cpu-time]
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import numpy as np  # noqa: E402

import mxopt  # noqa: E402
from mxopt import _reduce  # noqa: E402
from bench_adam import interleaved  # noqa: E402


def make(opt, n, g, rng):
    w = rng.standard_normal(n, dtype=np.float32)
    s = opt.create_state(0, w)
    return lambda: opt.update(0, w, g, s)


def per_launch(step, rule, steps=20, clock=time.perf_counter):
    """Median milliseconds of each launch of ``rule`` in ``step()`` and of the rest of the step."""
    original = _reduce.LayerwiseRule.kernel
    times = {}

    def timed(self, part, *args, **kwargs):
        kernel = original(self, part, *args, **kwargs)
        if self is not rule:
            return kernel

        def run(*a):
            t = clock()
            kernel(*a)
            times.setdefault(part, []).append(clock() - t)
        return run

    step()
    _reduce.LayerwiseRule.kernel = timed
    try:
        total = []
        for _ in range(steps):
            t = clock()
            step()
            total.append(clock() - t)
    finally:
        _reduce.LayerwiseRule.kernel = original
    ms = {part: 1e3 * statistics.median(v) for part, v in times.items()}
    ms["python"] = 1e3 * statistics.median(total) - sum(ms.values())
    return ms


def trainer_ratios(t0):
    """Milliseconds per Trainer step, 1000 x 1024 elements and 1 x 1,024,000, and their ratio."""
    rng = np.random.default_rng(1)
    conts = []
    for name, kw in (("lamb", {"learning_rate": 1e-3}), ("lars", {"learning_rate": 1e-3, "momentum": 0.9})):
        for label, params in (("1000x1024", {f"l{i}_weight": rng.standard_normal(1024, dtype=np.float32)
                                             for i in range(1000)}),
                              ("1x1024000", {"w": rng.standard_normal(1024000, dtype=np.float32)})):
            tr = mxopt.Trainer(params, name, dict(kw, begin_num_update=t0))
            tr.grad_data[...] = rng.standard_normal(tr.grad_data.shape, dtype=np.float32) * 0.01
            conts.append((f"{name} {label}", tr.step, 1e9))
    ms = {k: 1e3 / v for k, v in interleaved(conts, 20, 9)}
    print({k: round(v, 3) for k, v in ms.items()})
    for name in ("lamb", "lars"):
        print(f"{name}: 1000x1024 / 1x1024000 = {ms[name + ' 1000x1024'] / ms[name + ' 1x1024000']:.3f}")


def interleaved_cpu(contenders, repeats, rounds):
    """Like bench_adam's ``interleaved``, in process CPU seconds per call (1e9 units per second)."""
    results = {name: [] for name, _, _ in contenders}
    for _, fn, _ in contenders:  # warm-up
        fn()
        fn()
    for _ in range(rounds):
        for name, fn, nbytes in contenders:
            t = time.process_time()
            for _ in range(repeats):
                fn()
            results[name].append(nbytes / 1e9 / ((time.process_time() - t) / repeats))
    return [(name, statistics.median(v)) for name, v in results.items()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=8 * 2**20)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--t0", type=int, default=0)
    ap.add_argument("--trainer", action="store_true")
    ap.add_argument("--cpu-time", action="store_true")
    a = ap.parse_args()
    if a.trainer:
        return trainer_ratios(a.t0)
    rng = np.random.default_rng(0)
    g = rng.standard_normal(a.n, dtype=np.float32) * 0.01
    opts = {"adam": mxopt.Adam(learning_rate=1e-3, begin_num_update=a.t0),
            "lamb": mxopt.LAMB(learning_rate=1e-3, begin_num_update=a.t0),
            "sgd_mom": mxopt.SGD(learning_rate=1e-3, momentum=0.9, begin_num_update=a.t0),
            "lars": mxopt.LARS(learning_rate=1e-3, momentum=0.9, begin_num_update=a.t0)}
    steps = {k: make(o, a.n, g, rng) for k, o in opts.items()}
    timer = interleaved_cpu if a.cpu_time else interleaved
    res = dict(timer([(k, f, 1e9) for k, f in steps.items()], 5, 9))
    ms = {k: 1e3 / v for k, v in res.items()}
    print({k: round(v, 2) for k, v in ms.items()})
    print("LAMB/Adam", round(ms["lamb"] / ms["adam"], 3), "LARS/SGDmom", round(ms["lars"] / ms["sgd_mom"], 3))
    if a.profile:
        for k in ("lamb", "lars"):
            clock = time.process_time if a.cpu_time else time.perf_counter
            print(k, "per launch (ms):", {p: round(v, 2) for p, v in per_launch(steps[k], opts[k].rule,
                                                                               clock=clock).items()})


if __name__ == "__main__":
    main()
