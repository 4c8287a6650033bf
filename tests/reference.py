"""Independent NumPy transcriptions of the update equations, whole-array code,
written from the equations and from MXNet 1.9.1's source, not from mxopt's rules
(shared/reference/mxnet-1.9.1-semantics.md).

``REFERENCES``: the equations in float64, for tolerance tests of any dtype.

``MXNET_FLOAT32``: MXNet's float32 CPU kernels operation for operation (each
NumPy float32 operation rounds once, as each C++ float operation does), for
bit-exact tests over hyperparameters the recorded golden cases do not cover.
Sources (apache/mxnet at tag 1.9.1): ``MultiSGDKernel`` (SGD, with and without
momentum, src/operator/optimizer_op-inl.h), ``SGDKernel`` (NAG with momentum 0)
and ``NAGMomKernel`` (same file), ``AdamUpdateKernel`` (same file) with the
learning rate of ``Adam.update`` (python/mxnet/optimizer/optimizer.py).
"""
import math

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


# -- MXNet's float32 kernels, operation for operation --------------------------------
f32 = np.float32


def _clip32(x, c):
    return np.clip(x, -f32(c), f32(c))     # mshadow_op::clip: x > c -> c, x < -c -> -c


def sgd_mxnet_f32(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, momentum=0.0):
    """``MultiSGDKernel``: mom = momentum*mom - lr*wd*w - lr*clip(rs*g, c)  [- lr*rs*g], w = w + mom
    (C++ evaluates ``a*b*c`` as ``(a*b)*c`` and ``a - b - c`` as ``(a - b) - c``)."""
    lr, wd, rs, mu = f32(lr), f32(wd), f32(rescale_grad), f32(momentum)
    mom = state["mom"] if momentum > 0 else np.zeros_like(w)
    if clip_gradient is not None:
        mom = mu * mom - (lr * wd) * w - lr * _clip32(rs * g, clip_gradient)
    else:
        mom = mu * mom - (lr * wd) * w - (lr * rs) * g
    return w + mom, ({"mom": mom} if momentum > 0 else state)


def nag_mxnet_f32(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, momentum=0.0):
    """``NAGMomKernel``, or ``SGDKernel`` for momentum 0: w = (1.f - lr*wd)*w - lr*clip(rs*g, c)  [- (lr*rs)*g]."""
    lr, wd, rs, mu = f32(lr), f32(wd), f32(rescale_grad), f32(momentum)
    G = rs * g if clip_gradient is None else _clip32(rs * g, clip_gradient)
    if momentum == 0.0:
        if clip_gradient is not None:
            return (f32(1) - lr * wd) * w - lr * G, state
        return (f32(1) - lr * wd) * w - (lr * rs) * g, state
    m1 = mu * state["mom"]
    w_new = w - m1 + (mu + f32(1)) * (m1 - lr * (G + wd * w))
    return w_new, {"mom": m1 - lr * (G + wd * w_new)}


def adam_mxnet_f32(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None,
                   beta1=0.9, beta2=0.999, epsilon=1e-8):
    """``Adam.update``: lr *= sqrt(1 - beta2**t)/(1 - beta1**t) in Python floats; then
    ``AdamUpdateKernel`` in float32, with (1.f - beta) computed in float."""
    lr_t = f32(lr * (math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)))
    b1, b2, eps, wd, rs = f32(beta1), f32(beta2), f32(epsilon), f32(wd), f32(rescale_grad)
    G = g * rs + w * wd
    if clip_gradient is not None:
        G = _clip32(G, clip_gradient)
    m = b1 * state["mean"] + (f32(1) - b1) * G
    v = b2 * state["var"] + (f32(1) - b2) * G * G
    return w - lr_t * m / (np.sqrt(v) + eps), {"mean": m, "var": v}


MXNET_FLOAT32 = {"sgd": sgd_mxnet_f32, "nag": nag_mxnet_f32, "adam": adam_mxnet_f32}


# -- FTRL-Proximal (tests/test_ftrl.py; not in the tables above, whose tests list their hyperparameters) --
def ftrl(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, lamda1=0.01, beta=1.0):
    """McMahan et al. (2013), Algorithm 1, per coordinate, with α = lr and λ₂ = wd:
    σ = (√(n + g²) − √n)/α, z ← z + g − σ·w, n ← n + g², and w = 0 where |z| ≤ λ₁, else
    w = −(z − sgn(z)·λ₁) / ((β + √n)/α + λ₂)."""
    G = _g(g, rescale_grad, clip_gradient)
    n = state["n"] + G ** 2
    sigma = (np.sqrt(n) - np.sqrt(state["n"])) / lr
    z = state["z"] + G - sigma * w
    with np.errstate(divide="ignore", invalid="ignore"):
        w_new = -(z - lamda1 * np.sign(z)) / ((beta + np.sqrt(n)) / lr + wd)
    return np.where(np.abs(z) <= lamda1, 0.0, w_new), {"z": z, "n": n}


def ftrl_mxnet_f32(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, lamda1=0.01, beta=1.0):
    """``FtrlKernel`` (src/operator/optimizer_op-inl.h) in float32: z += g' − (sqrt(n + g'²) − sqrt(n))·w/lr;
    n += g'²; w = (sign(z)·lamda1 − z) / ((beta + sqrt(n))/lr + wd) · (|z| > lamda1), with
    g' = grad·rescale_grad, clipped when clip_gradient is given. The product with the 0/1 factor keeps
    MXNet's signed zeros (and its NaN where the denominator is 0)."""
    lr, wd, rs, l1, beta = f32(lr), f32(wd), f32(rescale_grad), f32(lamda1), f32(beta)
    G = g * rs if clip_gradient is None else _clip32(g * rs, clip_gradient)
    n = state["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = state["z"] + (G - (np.sqrt(n + G * G) - np.sqrt(n)) * w / lr)
        n = n + G * G
        w_new = (np.sign(z) * l1 - z) / ((beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > l1).astype(f32)
    return w_new, {"z": z, "n": n}


REFERENCES["ftrl"] = ftrl


# -- FTML (tests/test_ftml.py) ---------------------------------------------------------------------
def ftml(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, beta1=0.6, beta2=0.999,
         epsilon=1e-8, powers=None):
    """Zheng & Kwok (2017), Algorithm 1 without a constraint set, with MXNet's gradient
    g' = clip(r·g + λ·w, c): v ← β₂v + (1 − β₂)g'², d_t = (1 − β₁ᵗ)/η·(√(v/(1 − β₂ᵗ)) + ε),
    σ = d_t − β₁d, z ← β₁z + (1 − β₁)g' − σ·w, w = −z/d_t. ``powers``: (β₁ᵗ, β₂ᵗ) when given
    (MXNet's float32 kernel takes them from powf), else computed here in float64."""
    G = rescale_grad * g + wd * w
    if clip_gradient is not None:
        G = np.clip(G, -clip_gradient, clip_gradient)
    b1t, b2t = powers if powers is not None else (beta1 ** t, beta2 ** t)
    v = beta2 * state["v"] + (1 - beta2) * G ** 2
    d = (1 - b1t) / lr * (np.sqrt(v / (1 - b2t)) + epsilon)
    sigma = d - beta1 * state["d"]
    z = beta1 * state["z"] + (1 - beta1) * G - sigma * w
    return -z / d, {"d": d, "v": v, "z": z}


def ftml_mxnet_f32(w, g, state, t, lr, wd=0.0, rescale_grad=1.0, clip_gradient=None, beta1=0.6, beta2=0.999,
                   epsilon=1e-8):
    """``FTMLKernel`` (src/operator/optimizer_op-inl.h) in float32: g' = clip(rs·g + wd·w, c);
    v = β₂·v + (1 − β₂)·square(g'); d_t = (1 − pow(β₁, t))/lr·(sqrt(v/(1 − pow(β₂, t))) + ε);
    z = β₁·z + (1 − β₁)·g' − (d_t − β₁·d)·w; d = d_t; w = −z/d_t, with pow the float ``powf``
    and t a float (NumPy's float32 scalar power calls the C library's powf)."""
    lr, wd, rs, b1, b2, eps, tf = (f32(x) for x in (lr, wd, rescale_grad, beta1, beta2, epsilon, t))
    G = rs * g + wd * w
    if clip_gradient is not None:
        G = _clip32(G, clip_gradient)
    v = b2 * state["v"] + (f32(1) - b2) * (G * G)
    d_t = (f32(1) - b1 ** tf) / lr * (np.sqrt(v / (f32(1) - b2 ** tf)) + eps)
    z = b1 * state["z"] + (f32(1) - b1) * G - (d_t - b1 * state["d"]) * w
    return -z / d_t, {"d": d_t, "v": v, "z": z}
