"""The CUDA kernels give the CPU kernels' results.

Run on a real GPU, or without one under the simulator:
``NUMBA_ENABLE_CUDASIM=1 pytest -m cuda`` (small arrays: every simulated
thread is a Python thread)."""
import numpy as np
import pytest

import mxopt

cuda = pytest.importorskip("numba.cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")]

CASES = [("sgd", {}), ("sgd", {"momentum": 0.9, "wd": 0.01, "clip_gradient": 0.5, "rescale_grad": 2.0}),
         ("nag", {"momentum": 0.9, "wd": 0.01}), ("adam", {"wd": 0.01, "clip_gradient": 1.0})]


def run(name, kwargs, w, grads, on_gpu):
    opt = mxopt.create(name, learning_rate=0.05, **kwargs)
    w = cuda.to_device(w) if on_gpu else w.copy()
    state = opt.create_state(0, w)
    for g in grads:
        opt.update(0, w, cuda.to_device(g) if on_gpu else g, state)
    host = (lambda a: a.copy_to_host()) if on_gpu else (lambda a: a)
    return host(w), [] if state is None else [host(a) for a in state]


@pytest.mark.parametrize("name, kwargs", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_matches_cpu(name, kwargs, dtype):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((5, 7)).astype(dtype)
    grads = [rng.standard_normal((5, 7)).astype(dtype) for _ in range(3)]
    w_cpu, s_cpu = run(name, kwargs, w, grads, on_gpu=False)
    w_gpu, s_gpu = run(name, kwargs, w, grads, on_gpu=True)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(w_gpu, w_cpu, rtol=rtol, atol=rtol)
    for a, b in zip(s_gpu, s_cpu):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_cuda_multi_precision_matches_cpu(name):
    rng = np.random.default_rng(2)
    w = rng.standard_normal(40).astype(np.float16)
    grads = [rng.standard_normal(40).astype(np.float16) for _ in range(3)]
    kwargs = {"multi_precision": True, **({"momentum": 0.9} if name == "sgd" else {})}
    w_cpu, s_cpu = run(name, kwargs, w, grads, on_gpu=False)
    w_gpu, s_gpu = run(name, kwargs, w, grads, on_gpu=True)
    assert w_gpu.dtype == np.float16
    np.testing.assert_array_equal(w_gpu, w_cpu)
    for a, b in zip(s_gpu, s_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_trainer_on_cuda_one_buffer():
    rng = np.random.default_rng(3)
    params = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    cpu = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})
    gpu = mxopt.Trainer({k: cuda.to_device(v) for k, v in params.items()}, "adam", {"learning_rate": 0.01})
    for _ in range(2):
        g = rng.standard_normal(cpu.grad_data.shape).astype(np.float32)
        cpu.grad_data[...] = g
        gpu.grad_data.copy_to_device(g)
        cpu.step(batch_size=4)
        gpu.step(batch_size=4)
    np.testing.assert_allclose(gpu.data.copy_to_host(), cpu.data, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gpu.params["b"].copy_to_host(), cpu.params["b"], rtol=1e-6, atol=1e-7)


def test_gpu_weight_with_cpu_gradient_is_rejected():
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
    w = cuda.to_device(np.ones(4, np.float32))
    state = opt.create_state(0, w)
    with pytest.raises(ValueError, match="same device"):
        opt.update(0, w, np.ones(4, np.float32), state)
    np.testing.assert_array_equal(w.copy_to_host(), 1)
    assert opt.num_update == 0


def test_checkpoint_from_gpu_restores_on_gpu():
    opt = mxopt.Adam(learning_rate=0.01)
    up = mxopt.get_updater(opt)
    w = cuda.to_device(np.linspace(-1, 1, 8).astype(np.float32))
    up(0, cuda.to_device(np.ones(8, np.float32)), w)
    fresh = mxopt.get_updater(mxopt.Adam(learning_rate=0.01))
    fresh.set_states(up.get_states())
    w2 = cuda.to_device(w.copy_to_host())
    g = cuda.to_device(np.full(8, 0.5, np.float32))
    up(0, g, w)
    fresh(0, g, w2)
    np.testing.assert_array_equal(w.copy_to_host(), w2.copy_to_host())


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch without CUDA")
    return torch


@pytest.mark.gpu
def test_torch_and_cupy_arrays_update_in_place():
    torch = _torch_cuda()
    rng = np.random.default_rng(4)
    w_np = rng.standard_normal(1000).astype(np.float32)
    g_np = rng.standard_normal(1000).astype(np.float32)
    ref, _ = run("adam", {}, w_np, [g_np], on_gpu=False)
    w = torch.tensor(w_np, device="cuda")
    ptr = w.data_ptr()
    opt = mxopt.Adam(learning_rate=0.05)
    state = opt.create_state(0, w)
    assert isinstance(state.mean, torch.Tensor) and state.mean.is_cuda
    opt.update(0, w, torch.tensor(g_np, device="cuda"), state)
    torch.cuda.synchronize()
    assert w.data_ptr() == ptr
    np.testing.assert_allclose(w.cpu().numpy(), ref, rtol=1e-6, atol=1e-7)
    cupy = pytest.importorskip("cupy")
    wc = cupy.asarray(w_np)
    opt = mxopt.Adam(learning_rate=0.05)
    state = opt.create_state(0, wc)
    opt.update(0, wc, cupy.asarray(g_np), state)
    np.testing.assert_allclose(cupy.asnumpy(wc), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_float32_cuda_kernel_has_no_float64_arithmetic():
    from numba import config

    if config.ENABLE_CUDASIM:
        pytest.skip("PTX exists on a real GPU only")
    rule = mxopt.optimizers.adam.ADAM_RULE
    w = cuda.to_device(np.zeros(64, np.float32))
    opt = mxopt.Adam()
    opt.update(0, w, cuda.to_device(np.ones(64, np.float32)), opt.create_state(0, w))
    kernel = rule.kernel("cuda")
    from numba import float32

    (sig,) = [s for s in kernel.signatures if s[-1] == float32]
    ptx = kernel.inspect_asm(sig)
    assert ".f64" not in ptx, "float64 arithmetic in the float32 Adam kernel"
