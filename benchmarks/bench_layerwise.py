"""The cost of a layer-wise step: LAMB against Adam, LARS against SGD with momentum.

One parameter of 8,388,608 float32 elements, the four steps timed in turns
(bench_adam's `interleaved`: 9 rounds of 5 steps, median), printed as
milliseconds per step and as the two ratios issue 8 bounds (1.6x each).

    python benchmarks/bench_layerwise.py
"""
import os
import pathlib
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(pathlib.Path(__file__).parent))
import numpy as np  # noqa: E402

import mxopt  # noqa: E402
from bench_adam import interleaved  # noqa: E402

n = 8 * 2**20
rng = np.random.default_rng(0)
g = rng.standard_normal(n, dtype=np.float32) * 0.01
def make(opt):
    w = rng.standard_normal(n, dtype=np.float32)
    s = opt.create_state(0, w)
    return lambda: opt.update(0, w, g, s)
cont = [("adam", make(mxopt.Adam(learning_rate=1e-3)), 1e9), ("lamb", make(mxopt.LAMB(learning_rate=1e-3)), 1e9),
        ("sgd_mom", make(mxopt.SGD(learning_rate=1e-3, momentum=0.9)), 1e9),
        ("lars", make(mxopt.LARS(learning_rate=1e-3, momentum=0.9)), 1e9)]
res = dict(interleaved(cont, 5, 9))
ms = {k: 1e3 / v for k, v in res.items()}
print({k: round(v, 2) for k, v in ms.items()})
print("LAMB/Adam", round(ms["lamb"] / ms["adam"], 3), "LARS/SGDmom", round(ms["lars"] / ms["sgd_mom"], 3))
