"""A short demonstration: train a small neural network with mxopt and watch its loss fall.

    python -m mxopt.demo [--optimizer adam] [--epochs 30]

A two-layer network (tanh hidden layer) learns y = sin(3x)·x on [-1, 1] from
noisy samples. Forward and backward passes are plain NumPy; the parameters
live in one :class:`mxopt.Trainer` buffer and every step updates all of them
with one kernel launch.
"""
from __future__ import annotations

import argparse

import numpy as np

import mxopt


def make_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    y = (np.sin(3 * x) * x + 0.05 * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


def init_params(hidden=32, seed=1):
    rng = np.random.default_rng(seed)
    return {"fc1_weight": (rng.standard_normal((1, hidden)) * 1.0).astype(np.float32),
            "fc1_bias": np.zeros(hidden, np.float32),
            "fc2_weight": (rng.standard_normal((hidden, 1)) / np.sqrt(hidden)).astype(np.float32),
            "fc2_bias": np.zeros(1, np.float32)}


def loss_and_grads(p, x, y, grads):
    """Mean squared error/2 of the network; writes the summed gradients into ``grads``."""
    h = np.tanh(x @ p["fc1_weight"] + p["fc1_bias"])
    err = h @ p["fc2_weight"] + p["fc2_bias"] - y
    grads["fc2_weight"][...] = h.T @ err
    grads["fc2_bias"][...] = err.sum(0)
    dh = (err @ p["fc2_weight"].T) * (1 - h * h)
    grads["fc1_weight"][...] = x.T @ dh
    grads["fc1_bias"][...] = dh.sum(0)
    return 0.5 * float(np.mean(err ** 2))


def train(optimizer="adam", epochs=30, batch_size=32, learning_rate=None, seed=0, log=print):
    """Train and return the loss (over all data) after each epoch."""
    x, y = make_data(seed=seed)
    lr = learning_rate if learning_rate is not None else {"sgd": 0.05, "nag": 0.05}.get(optimizer, 0.01)
    extra = {"momentum": 0.9} if optimizer in ("sgd", "nag") else {}
    trainer = mxopt.Trainer(init_params(), optimizer, {"learning_rate": lr, **extra})
    rng = np.random.default_rng(seed)
    history = [loss_and_grads(trainer.params, x, y, trainer.grads)]
    log(f"mxopt {mxopt.__version__}: {type(trainer.optimizer).__name__}(learning_rate={lr}) on a "
        f"{sum(v.size for v in trainer.params.values())}-parameter network, {len(x)} samples")
    log(f"epoch {0:3d}  loss {history[0]:.5f}")
    for epoch in range(1, epochs + 1):
        for batch in np.array_split(rng.permutation(len(x)), len(x) // batch_size):
            loss_and_grads(trainer.params, x[batch], y[batch], trainer.grads)
            trainer.step(batch_size=len(batch))
        history.append(loss_and_grads(trainer.params, x, y, trainer.grads))
        if epoch % 5 == 0 or epoch == epochs:
            log(f"epoch {epoch:3d}  loss {history[-1]:.5f}")
    return history


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a small network with mxopt.")
    parser.add_argument("--optimizer", default="adam", choices=["sgd", "nag", "adam"])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    history = train(args.optimizer, args.epochs)
    print(f"loss fell from {history[0]:.4f} to {history[-1]:.4f} ({history[0] / history[-1]:.0f}x)")


if __name__ == "__main__":
    main()
