"""Arrays that share memory are refused before anything is written.

The kernels read and write element by element (in parallel on the CPU
above a size, and on the GPU): a gradient overlapping its weight, or a state
overlapping either, would be read after it was written, in an order that
depends on the threads. Overlap is found from byte extents, the same way
for NumPy and for CUDA arrays (tested under the simulator in test_cuda)."""
import numpy as np
import pytest

import mxopt
from mxopt import _arrays, _checks

from test_bad_input import assert_unchanged, snapshot


def test_extent_of_views():
    b = np.zeros(10, np.float32)
    lo, hi = _arrays.info(b).extent
    assert hi - lo == b.nbytes
    assert _arrays.info(b[1:]).overlaps(_arrays.info(b[:-1]))
    assert not _arrays.info(b[:5]).overlaps(_arrays.info(b[5:]))  # neighbours, no shared byte
    assert not _arrays.info(b[:0]).overlaps(_arrays.info(b))  # an empty array shares nothing
    assert _arrays.info(b[::-1]).extent == (lo, hi)  # negative strides reach down


def test_cuda_interface_extent():
    def fake(ptr, shape, strides=None):
        class A:
            __cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "data": (ptr, False),
                                        "strides": strides, "version": 3}
        return _arrays.info(A())

    assert fake(1000, (3, 4)).extent == (1000, 1048)
    assert fake(1000, (3, 4)).overlaps(fake(1044, (2,)))
    assert not fake(1000, (3, 4)).overlaps(fake(1048, (2,)))
    assert not fake(1000, (3, 4)).overlaps(_arrays.info(np.zeros(3, np.float32)))  # other target


def test_gradient_overlapping_its_weight():
    opt = mxopt.SGD(learning_rate=0.1)
    b = np.arange(10, dtype=np.float32)
    before = b.copy()
    with pytest.raises(ValueError, match="grad shares memory with weight"):
        opt.update(0, b[1:], b[:-1], None)
    np.testing.assert_array_equal(b, before)
    assert opt._index_update_count == {} and opt.num_update == 0
    with pytest.raises(ValueError, match="grad shares memory with weight"):
        opt.update(0, b, b, None)


@pytest.mark.parametrize("make", ["adam", "sgd"])
def test_state_that_is_the_weight_or_overlaps(make):
    opt = mxopt.Adam(learning_rate=0.1) if make == "adam" else mxopt.SGD(learning_rate=0.1, momentum=0.9)
    w = np.linspace(-1, 1, 8).astype(np.float32)
    g = np.ones_like(w)
    good = opt.create_state(0, w)
    opt.update(0, w, g, good)
    names = good.names
    big = np.zeros(2 * w.size, np.float32)
    cases = {
        "the weight itself": (w,) + tuple(good.arrays[1:]),
        "the gradient": (g,) + tuple(good.arrays[1:]),
    }
    if len(names) == 2:
        cases["two states on one buffer"] = (big[:8], big[4:12])
        cases["one state twice"] = (good.arrays[0], good.arrays[0])
    for label, arrays in cases.items():
        state = mxopt.State(type(opt).__name__, 0, names, arrays)
        before = snapshot(opt, w, state)
        g_before = g.copy()
        with pytest.raises(ValueError, match="shares memory"):
            opt.update(0, w, g, state)
        assert_unchanged(before, opt, w, state), label
        np.testing.assert_array_equal(g, g_before)


def test_float16_weight_inside_its_master_copy():
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True)
    master = np.linspace(-1, 1, 8).astype(np.float32)
    w16 = master.view(np.float16)[:8]  # the float16 weight lives in the master's bytes
    state = opt.create_state(0, w16)
    bad = mxopt.State("SGD", 0, state.names, (state.mom, master))
    before = snapshot(opt, w16, bad)
    with pytest.raises(ValueError, match=r"state\['weight32'\] shares memory with weight"):
        opt.update(0, w16, np.ones(8, np.float16), bad)
    assert_unchanged(before, opt, w16, bad)


def test_disjoint_names_both_arrays():
    b = np.zeros(4)
    with pytest.raises(ValueError, match=r"state\['var'\] shares memory with state\['mean'\]"):
        _checks.disjoint([("weight", _arrays.info(np.zeros(4))), ("state['mean']", _arrays.info(b)),
                          ("state['var']", _arrays.info(b[1:]))])


def test_separate_arrays_and_neighbouring_slices_still_work():
    # the Trainer's layout: weights and gradients are slices of two flat buffers
    opt = mxopt.SGD(learning_rate=0.5)
    data, grads = np.ones(8, np.float32), np.ones(8, np.float32)
    opt.update(0, data[:4], grads[:4], None)
    opt.update(1, data[4:], grads[4:], None)
    np.testing.assert_array_equal(data, 0.5)


@pytest.mark.cuda
def test_cuda_arrays_overlapping_are_refused():
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    opt = mxopt.SGD(learning_rate=0.1, momentum=0.9)
    b = cuda.to_device(np.arange(10, dtype=np.float32))
    w, g = b[:8], b[2:]
    with pytest.raises(ValueError, match="grad shares memory with weight"):
        opt.update(0, w, g, opt.create_state(0, w))
    np.testing.assert_array_equal(b.copy_to_host(), np.arange(10, dtype=np.float32))
    w = cuda.to_device(np.ones(4, np.float32))
    state = mxopt.State("SGD", 0, ("mom",), (w,))
    with pytest.raises(ValueError, match=r"state\['mom'\] shares memory with weight"):
        opt.update(0, w, cuda.to_device(np.ones(4, np.float32)), state)
    good = opt.create_state(0, w)
    opt.update(0, w, cuda.to_device(np.ones(4, np.float32)), good)  # separate device arrays work
    np.testing.assert_allclose(w.copy_to_host(), 0.9)
