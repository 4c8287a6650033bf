"""Independent float64 NumPy transcriptions of the update equations, as
MXNet 1.9.1 computes them (shared/reference/mxnet-1.9.1-semantics.md).
Whole-array code, written from the equations, not from mxopt's rules."""
import numpy as np


def _g(g, rs, clip):
    g = rs * g
    return g if clip is None else np.clip(g, -clip, clip)


def sgd(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, momentum=0.0):
    G = _g(g, rescale_grad, clip_gradient)
    if momentum == 0.0:
        return w - lr * (G + wd * w), state
    m = momentum * state["mom"] - lr * wd * w - lr * G
    return w + m, {"mom": m}


def nag(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, momentum=0.0):
    G = _g(g, rescale_grad, clip_gradient)
    if momentum == 0.0:
        return w - lr * (G + wd * w), state
    m1 = momentum * state["mom"]
    w_new = w - m1 + (1 + momentum) * (m1 - lr * (G + wd * w))
    return w_new, {"mom": m1 - lr * (G + wd * w_new)}


def adam(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None,
         beta1=0.9, beta2=0.999, epsilon=1e-8, host_betas=None):
    """``host_betas``: the betas of the bias correction, which MXNet computes on
    the host in float64 from the unrounded values (default: ``beta1, beta2``)."""
    G = rescale_grad * g + wd * w
    if clip_gradient is not None:
        G = np.clip(G, -clip_gradient, clip_gradient)
    m = beta1 * state["mean"] + (1 - beta1) * G
    v = beta2 * state["var"] + (1 - beta2) * G ** 2
    b1, b2 = host_betas or (beta1, beta2)
    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return w - lr_t * m / (np.sqrt(v) + epsilon), {"mean": m, "var": v}


REFERENCES = {"sgd": sgd, "nag": nag, "adam": adam}
