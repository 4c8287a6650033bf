"""Every optimizer's CPU step against PyTorch and against a stream kernel, in one run.

For each optimizer (SGD with momentum 0.9, NAG, Adam, AdaGrad, RMSProp plain
and centered, AdaDelta, Adamax, Nadam, AMSGrad, AdamW) it times, in turns:

* mxopt's ``update`` on one float32 array of ``--n`` parameters;
* PyTorch's fastest implementation of the same algorithm: ``fused=True``
  where PyTorch has a fused CPU kernel (SGD, Adam, AdamW, Adam(amsgrad=True),
  Adagrad), ``foreach=True`` otherwise (RMSprop, Adadelta, Adamax, NAdam);
  when the preferred variant fails, the next one is used and the table says
  which ran;
* a stream kernel with the optimizer's memory traffic and trivial
  arithmetic: it reads the weight, the gradient and the k state arrays and
  writes the weight and the states, ``(3 + 2k)·4`` bytes per parameter (Adam,
  k = 2: 28 bytes). That is the speed a memory-bound step can reach.

GB/s counts those bytes for all three, so mxopt/torch is the ratio of step
times. Each figure is the median over ``--rounds`` rounds of ``--repeats``
back-to-back steps, the contenders taking turns within each round (see
``bench_adam.interleaved``). The Trainer case is measured by bench_adam.py.

    python benchmarks/bench_optimizers.py [--n 8388608] [--repeats 5] [--rounds 9] [--only adam,nadam] [--json out.json]
"""
from __future__ import annotations

import os

# As in bench_adam.py: PyTorch's OpenMP threads must not busy-wait (and take
# the cores from Numba's threads) between parallel regions.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import argparse
import json
import platform
import time

import numpy as np

import mxopt
from bench_adam import interleaved

#: name -> (mxopt constructor, torch optimizer class name, torch kwargs, torch variants in order of preference)
OPTIMIZERS = {
    "sgd": (lambda: mxopt.SGD(learning_rate=0.01, momentum=0.9),
            "SGD", {"lr": 0.01, "momentum": 0.9}, ("fused", "foreach")),
    "nag": (lambda: mxopt.NAG(learning_rate=0.01, momentum=0.9),
            "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}, ("fused", "foreach")),
    "adam": (lambda: mxopt.Adam(learning_rate=1e-3),
             "Adam", {"lr": 1e-3}, ("fused", "foreach")),
    "adagrad": (lambda: mxopt.AdaGrad(learning_rate=0.01, eps=1e-7),
                "Adagrad", {"lr": 0.01, "eps": 1e-7}, ("fused", "foreach")),
    "rmsprop": (lambda: mxopt.RMSProp(learning_rate=1e-3, gamma1=0.9),
                "RMSprop", {"lr": 1e-3, "alpha": 0.9}, ("foreach", "single")),
    "rmsprop_centered": (lambda: mxopt.RMSProp(learning_rate=1e-3, gamma1=0.9, gamma2=0.9, centered=True),
                         "RMSprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.9, "centered": True},
                         ("foreach", "single")),
    "adadelta": (lambda: mxopt.AdaDelta(rho=0.9, epsilon=1e-5),
                 "Adadelta", {"lr": 1.0, "rho": 0.9, "eps": 1e-5}, ("foreach", "single")),
    "adamax": (lambda: mxopt.Adamax(learning_rate=2e-3),
               "Adamax", {"lr": 2e-3}, ("foreach", "single")),
    "nadam": (lambda: mxopt.Nadam(learning_rate=1e-3),
              "NAdam", {"lr": 1e-3, "momentum_decay": 4e-3}, ("foreach", "single")),
    "amsgrad": (lambda: mxopt.AMSGrad(learning_rate=1e-3),
                "Adam", {"lr": 1e-3, "amsgrad": True}, ("fused", "foreach")),
    "adamw": (lambda: mxopt.AdamW(learning_rate=1e-3, wd=0.01),
              "AdamW", {"lr": 1e-3, "weight_decay": 0.01}, ("fused", "foreach")),
}

_STREAM = """
def stream({args}):
    for i in prange(w.shape[0]):
        y = g[i]
        {body}
"""


def stream_kernel(k):
    """A kernel with an optimizer's traffic and no arithmetic to speak of: reads w, g and k
    states, writes w and the k states (for k = 2, bench_adam's stream kernel)."""
    import numba

    names = ["w"] + [f"s{j}" for j in range(k)]
    body = "\n        ".join(f"{x}[i] = {x}[i] + a * y" for x in names)
    namespace = {"prange": numba.prange}
    exec(_STREAM.format(args=", ".join(["w", "g", *names[1:], "a"]), body=body), namespace)  # noqa: S102
    return numba.njit(parallel=True, error_model="numpy")(namespace["stream"])


def torch_step(name, w, g):
    """(variant, step function) for PyTorch's version of optimizer ``name`` on copies of w, g."""
    import torch

    _, cls, kwargs, variants = OPTIMIZERS[name]
    for variant in variants:
        flags = {"single": {"foreach": False}}.get(variant, {variant: True})
        p = torch.nn.Parameter(torch.from_numpy(w.copy()))
        p.grad = torch.from_numpy(g)  # shared with mxopt's gradient: read only
        opt = getattr(torch.optim, cls)([p], **kwargs, **flags)
        try:
            opt.step()
        except (RuntimeError, NotImplementedError) as e:
            print(f"  ({cls} {variant} unavailable: {e}; trying the next variant)")
            continue
        return variant, opt.step
    raise RuntimeError(f"no PyTorch variant of {cls} ran")


def bench_one(name, n, repeats, rounds, with_torch):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    opt = OPTIMIZERS[name][0]()
    state = opt.create_state(0, w)
    k = len(opt.rule.state_names)
    nbytes = (3 + 2 * k) * w.itemsize * n
    stream = stream_kernel(k)
    scratch = [rng.standard_normal(n, dtype=np.float32) for _ in range(1 + k)]
    a = np.float32(1e-7)
    wm = w.copy()
    contenders = [("stream", lambda: stream(scratch[0], g, *scratch[1:], a), nbytes),
                  ("mxopt", lambda: opt.update(0, wm, g, state), nbytes)]
    variant = None
    if with_torch:
        variant, step = torch_step(name, w, g)
        contenders.append(("torch", step, nbytes))
    row = dict(interleaved(contenders, repeats, rounds))
    row.update(name=name, bytes_per_param=nbytes // n, torch_variant=variant)
    if not np.isfinite(wm).all():
        raise RuntimeError(f"{name}: mxopt produced non-finite weights")
    return row


def print_table(rows):
    print(f"  {'optimizer':<17} {'B/param':>7} {'stream':>8} {'mxopt':>8} {'torch':>8}  {'torch variant':<13}"
          f" {'mxopt/torch':>11} {'mxopt/stream':>12} {'torch/stream':>12}")
    for r in rows:
        torch_gbs = r.get("torch")
        t = (f"{torch_gbs:8.1f}  {r['torch_variant']:<13} {r['mxopt'] / torch_gbs:11.3f}" if torch_gbs
             else f"{'-':>8}  {'-':<13} {'-':>11}")
        ts = f"{torch_gbs / r['stream']:12.2f}" if torch_gbs else f"{'-':>12}"
        print(f"  {r['name']:<17} {r['bytes_per_param']:>7} {r['stream']:8.1f} {r['mxopt']:8.1f} {t}"
              f" {r['mxopt'] / r['stream']:12.2f} {ts}")
    print("  (GB/s; bytes per parameter = (3 + 2k)·4 for k float32 state arrays)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8 * 2**20, help="float32 parameters (default 8M)")
    parser.add_argument("--repeats", type=int, default=5, help="steps timed back to back per round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of turns (the median is reported)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"optimizer(s) to run, comma-separated or repeated; of {', '.join(OPTIMIZERS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args()
    names = [x for arg in args.only or [",".join(OPTIMIZERS)] for x in arg.split(",") if x]
    unknown = sorted(set(names) - set(OPTIMIZERS))
    if unknown:
        parser.error(f"--only: unknown optimizer(s) {unknown}; choose from {', '.join(OPTIMIZERS)}")
    if args.n < 1 or args.repeats < 1 or args.rounds < 1:
        parser.error("--n, --repeats and --rounds must be >= 1")

    import numba
    try:
        import torch
        versions = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch, versions = None, "torch not installed (mxopt and stream only)"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or platform.machine()) if os.path.exists("/proc/cpuinfo") else platform.machine()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"CPU: {cpu}, {os.cpu_count()} cores")
    print(f"  numpy {np.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads), {versions}, "
          f"mxopt {mxopt.__version__}; {args.n:,} float32 parameters, median of {args.rounds} rounds "
          f"of {args.repeats} steps")
    rows = []
    for name in names:
        rows.append(bench_one(name, args.n, args.repeats, args.rounds, torch is not None))
        print(f"  {name}: done", flush=True)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "cores": os.cpu_count(), "n": args.n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
