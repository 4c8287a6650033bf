"""The Trainer: parameters are views of one flat buffer, one launch per step,
and the same numbers as updating each array on its own."""
import numpy as np
import pytest

import mxopt
from mxopt import _engine


def make_params(rng, dtype=np.float32):
    return {"conv_weight": rng.standard_normal((4, 3, 2)).astype(dtype),
            "conv_bias": rng.standard_normal(4).astype(dtype),
            "fc_weight": rng.standard_normal((5, 6)).astype(dtype)}


@pytest.fixture
def count_launches(monkeypatch):
    calls = []
    real = _engine.launch

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(_engine, "launch", counting)
    return calls


@pytest.mark.parametrize("name, kwargs", [("sgd", {"momentum": 0.9, "wd": 0.01}),
                                          ("nag", {"momentum": 0.8}), ("adam", {"wd": 1e-3})])
def test_trainer_equals_per_array_updates_with_one_launch(rng, name, kwargs, count_launches):
    params = make_params(rng)
    tr = mxopt.Trainer(params, name, {"learning_rate": 0.05, **kwargs})
    assert all(np.shares_memory(tr.params[k], tr.data) for k in params)
    assert [k for k in tr.params] == list(params)
    solo = {k: (mxopt.create(name, learning_rate=0.05, **kwargs), v.copy()) for k, v in params.items()}
    states = {k: opt.create_state(0, w) for k, (opt, w) in solo.items()}
    for step in range(4):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        for k, g in grads.items():
            tr.grads[k][...] = g * 8  # summed over a batch of 8
        count_launches.clear()
        tr.step(batch_size=8)
        assert len(count_launches) == 1
        for k, (opt, w) in solo.items():
            opt.update(0, w, grads[k], states[k])
            np.testing.assert_allclose(tr.params[k], w, rtol=1e-6, atol=1e-7)
    assert tr.optimizer.num_update == 4


def test_multipliers_make_groups(rng, count_launches):
    params = make_params(rng)
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1}, lr_mult={"fc_weight": 0.0},
                       wd_mult={"conv_bias": 0.0})
    before = tr.params["fc_weight"].copy()
    tr.grads["fc_weight"][...] = 1
    tr.grads["conv_bias"][...] = 1
    tr.step()
    assert len(count_launches) == 3
    np.testing.assert_array_equal(tr.params["fc_weight"], before)  # lr_mult 0: frozen
    np.testing.assert_allclose(tr.params["conv_bias"], params["conv_bias"] - 0.1, rtol=1e-6)


def test_float16_trainer_uses_master_weights(rng):
    params = make_params(rng, np.float16)
    tr = mxopt.Trainer(params, "adam", {"learning_rate": 1e-3, "multi_precision": True})
    tr.grads["fc_weight"][...] = 1
    tr.step()
    state = tr._updater.states[0]
    assert state.weight32.dtype == np.float32 and tr.data.dtype == np.float16
    np.testing.assert_array_equal(tr.data, state.weight32.astype(np.float16))


def test_trainer_states_round_trip(rng):
    params = make_params(rng)
    tr = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})
    tr.grads["conv_weight"][...] = 0.5
    tr.step()
    other = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})
    other.load_states(tr.save_states())
    other.data[...] = tr.data
    other.grad_data[...] = tr.grad_data
    for t in (tr, other):
        t.grads["fc_weight"][...] = -1
        t.step()
    np.testing.assert_array_equal(tr.data, other.data)


def test_trainer_bad_input(rng):
    params = make_params(rng)
    with pytest.raises(ValueError, match="one buffer"):
        mxopt.Trainer({**params, "x": np.ones(3)}, "sgd")
    with pytest.raises(TypeError, match="params"):
        mxopt.Trainer({"x": [1.0, 2.0]}, "sgd")
    with pytest.raises(ValueError, match="lr_mult names unknown"):
        mxopt.Trainer(params, "sgd", lr_mult={"nope": 1.0})
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1})
    before = tr.data.copy()
    with pytest.raises(ValueError, match="batch_size"):
        tr.step(batch_size=0)
    np.testing.assert_array_equal(tr.data, before)


def trained(rng, name="adam", steps=2, **kwargs):
    params = make_params(rng)
    tr = mxopt.Trainer(params, name, {"learning_rate": 0.01}, **kwargs)
    for _ in range(steps):
        for k, g in tr.grads.items():
            g[...] = rng.standard_normal(g.shape)
        tr.step()
    return params, tr


def trainer_snapshot(tr):
    opt = tr.optimizer
    return (tr.data.copy(), tr.grad_data.copy(), dict(opt._index_update_count), opt.num_update,
            dict(opt.lr_mult), {k: None if s is None else [a.copy() for a in s] for k, s in tr._updater.states.items()})


def assert_unchanged(tr, before):
    after = trainer_snapshot(tr)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:5] == before[2:5] and after[5].keys() == before[5].keys()
    for k in before[5]:
        assert (after[5][k] is None) == (before[5][k] is None)
        for a, b in zip(after[5][k] or (), before[5][k] or ()):
            np.testing.assert_array_equal(a, b)


def test_checkpoint_is_keyed_by_parameter_name_and_independent_of_grouping(rng):
    import safetensors.numpy

    params, tr = trained(rng)
    data = tr.save_states()
    tensors = safetensors.numpy.load(data)
    assert sorted(tensors) == sorted(f"{n}/{s}" for n in params for s in ("mean", "var"))
    for n, p in params.items():
        assert tensors[f"{n}/mean"].shape == p.shape
    # Another grouping of the same parameters (lr_mult makes three groups) reads it.
    other = mxopt.Trainer(params, "adam", {"learning_rate": 0.01}, lr_mult={"conv_bias": 1.0 + 0.0,
                                                                             "fc_weight": 0.5})
    other.load_states(data)
    assert len(other._groups) == 2 and other.optimizer._index_update_count == {0: 2, 1: 2}
    for n in params:
        other.params[n][...] = tr.params[n]
    for t in (tr, other):
        t.grads["conv_weight"][...] = 0.5
        t.step()
    np.testing.assert_array_equal(tr.params["conv_weight"], other.params["conv_weight"])
    assert safetensors.numpy.load(other.save_states()).keys() == tensors.keys()


@pytest.mark.parametrize("change", ["shape", "missing", "extra", "optimizer"])
def test_checkpoint_of_other_parameters_is_refused_before_anything_changes(rng, change):
    params, tr = trained(rng)
    data = tr.save_states()
    if change == "shape":  # the first group fits, the second does not
        other_params = {**params, "fc_weight": np.zeros((6, 5), np.float32)}
    elif change == "missing":
        other_params = {**params, "extra_weight": np.zeros(3, np.float32)}
    elif change == "extra":
        other_params = {k: v for k, v in params.items() if k != "conv_weight"}
    else:
        other_params = params
    other = mxopt.Trainer(other_params, "sgd" if change == "optimizer" else "adam",
                          {"learning_rate": 0.01, "momentum": 0.9} if change == "optimizer" else {"learning_rate": 0.01},
                          lr_mult={"fc_weight": 0.5})
    other.grads["conv_bias"][...] = 1
    other.step()
    before = trainer_snapshot(other)
    with pytest.raises(ValueError):
        other.load_states(data)
    assert_unchanged(other, before)
    other.step()  # still works, with its own states


def test_float16_trainer_checkpoint_carries_master_weights(rng):
    params = make_params(rng, np.float16)
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9, "multi_precision": True})
    tr.grads["fc_weight"][...] = 1
    tr.step()
    other = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9, "multi_precision": True})
    other.load_states(tr.save_states())
    np.testing.assert_array_equal(other._updater.states[0].weight32, tr._updater.states[0].weight32)
    f32 = mxopt.Trainer({k: v.astype(np.float32) for k, v in params.items()}, "sgd",
                        {"learning_rate": 0.1, "momentum": 0.9})
    with pytest.raises(ValueError, match="weight32"):
        f32.load_states(tr.save_states())


def test_trainer_dump_optimizer_keeps_its_own_multipliers(rng):
    params, tr = trained(rng, "sgd", lr_mult={"fc_weight": 0.0})
    tr.optimizer.wd = 0.25
    other = mxopt.Trainer(params, "sgd", {"learning_rate": 0.5})
    other.load_states(tr.save_states(dump_optimizer=True))
    assert other.optimizer.wd == 0.25 and other.optimizer.learning_rate == 0.01
    assert other.optimizer.lr_mult == {0: 1.0}  # its own single group, not tr's two


def test_one_optimizer_is_not_shared_by_two_trainers(rng):
    params = make_params(rng)
    opt = mxopt.Adam(learning_rate=0.01)
    first = mxopt.Trainer(params, opt, lr_mult={"fc_weight": 0.0})
    before = dict(opt.lr_mult)
    with pytest.raises(ValueError, match="another Trainer"):
        mxopt.Trainer(params, opt)
    assert opt.lr_mult == before and first.optimizer is opt
    first.step()
    used = mxopt.SGD()
    mxopt.get_updater(used)(0, np.ones(2, np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="already updated"):
        mxopt.Trainer(params, used)
    del first  # a trainer that is gone no longer holds its optimizer, but its counts stay
    import gc

    gc.collect()
    with pytest.raises(ValueError, match="already updated"):
        mxopt.Trainer(params, opt)
    fresh = mxopt.SGD()
    mxopt.Trainer(params, fresh)  # dropped at once: fresh is free again
    gc.collect()
    kept = mxopt.Trainer(params, fresh)
    with pytest.raises(ValueError, match="another Trainer"):
        mxopt.Trainer(params, fresh)
    assert kept.optimizer is fresh


def test_params_and_grads_cannot_be_rebound(rng):
    params = make_params(rng)
    tr = mxopt.Trainer(params, "sgd", {"learning_rate": 0.1})
    for label in ("grads", "params"):
        with pytest.raises(TypeError, match=rf"trainer.{label}\['fc_weight'\]\[...\] = "):
            getattr(tr, label)["fc_weight"] = np.ones((5, 6), np.float32)
        with pytest.raises(TypeError):
            del getattr(tr, label)["fc_weight"]
        with pytest.raises(AttributeError):
            setattr(tr, label, {})
        assert np.shares_memory(getattr(tr, label)["fc_weight"], tr.data if label == "params" else tr.grad_data)
    tr.grads["fc_weight"][...] = 1  # the way to write a gradient
    tr.step()
    np.testing.assert_allclose(tr.params["fc_weight"], params["fc_weight"] - 0.1, rtol=1e-6)
    assert dict(tr.params).keys() == params.keys() and len(tr.grads) == 3


def test_float16_without_multi_precision_is_refused_at_construction(rng):
    params = make_params(rng, np.float16)
    opt = mxopt.Adam()
    with pytest.raises(TypeError, match="multi_precision=True") as err:
        mxopt.Trainer(params, opt)
    assert "MXNet" in str(err.value) and "float32 master copy" in str(err.value)
    mxopt.Trainer(params, opt.__class__(multi_precision=True))


@pytest.mark.parametrize("batch_size, error", [
    (float("inf"), ValueError), (float("nan"), ValueError), (0, ValueError), (-1, ValueError),
    ("2", TypeError), (10 ** 400, ValueError), (True, TypeError), (None, TypeError), (1e308, None)])
def test_bad_batch_size_names_batch_size_and_changes_nothing(rng, batch_size, error):
    params, tr = trained(rng, "sgd", steps=1)
    tr.grads["fc_weight"][...] = 1
    before = trainer_snapshot(tr)
    rescale = tr.optimizer.rescale_grad
    with pytest.raises(error or ValueError, match="batch_size") as err:
        tr.step(batch_size=batch_size)
    if batch_size == 1e308:
        assert "rescale_grad" in str(err.value)
    assert "rescale_grad must" not in str(err.value)
    assert_unchanged(tr, before)
    assert tr.optimizer.rescale_grad == rescale


def test_copies_of_a_trainer(rng):
    import copy

    params, tr = trained(rng, "adam", steps=1)
    twin = copy.deepcopy(tr)
    assert twin.optimizer is not tr.optimizer and twin._updater.optimizer is twin.optimizer
    assert all(np.shares_memory(twin.params[k], twin.data) for k in params)
    assert not np.shares_memory(twin.data, tr.data)
    same = copy.copy(tr)
    assert same.data is tr.data
    for t in (tr, twin):
        t.grads["conv_bias"][...] = 1
        t.step()
    np.testing.assert_array_equal(tr.data, twin.data)
    assert twin.optimizer._index_update_count == tr.optimizer._index_update_count == {0: 2}
    twin.grads["conv_bias"][...] = 3
    twin.step()
    assert tr.optimizer.num_update == 2 and twin.optimizer.num_update == 3
    assert not np.array_equal(tr.data, twin.data)


@pytest.mark.cuda
def test_trainer_on_cuda_checkpoint_and_deepcopy():
    import copy

    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and NUMBA_ENABLE_CUDASIM is not set")
    rng = np.random.default_rng(5)
    params = {"a": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}
    gpu = mxopt.Trainer({k: cuda.to_device(v) for k, v in params.items()}, "adam", {"learning_rate": 0.01},
                        lr_mult={"b": 0.5})
    g = rng.standard_normal(gpu.grad_data.shape).astype(np.float32)
    gpu.grad_data.copy_to_device(g)
    gpu.step()
    cpu = mxopt.Trainer(params, "adam", {"learning_rate": 0.01})  # another device, another grouping
    cpu.load_states(gpu.save_states())
    cpu.data[...] = np.concatenate([gpu.params[k].copy_to_host().ravel() for k in ("a", "b")])
    back = mxopt.Trainer({k: cuda.to_device(v) for k, v in params.items()}, "adam", {"learning_rate": 0.01},
                         lr_mult={"b": 0.5})
    back.load_states(cpu.save_states())
    back.data.copy_to_device(gpu.data.copy_to_host())
    twin = copy.deepcopy(gpu)
    from mxopt import _arrays

    assert not _arrays.info(twin.data).overlaps(_arrays.info(gpu.data))
    assert _arrays.info(twin.params["b"]).overlaps(_arrays.info(twin.data))
    for t in (gpu, back, twin):
        t.grad_data.copy_to_device(g)
        t.step()
    np.testing.assert_array_equal(back.data.copy_to_host(), gpu.data.copy_to_host())
    np.testing.assert_array_equal(twin.data.copy_to_host(), gpu.data.copy_to_host())
    assert twin.optimizer is not gpu.optimizer and twin.optimizer.num_update == 2


def test_trainer_checkpoint_carries_per_index_scalars(rng):
    """Nadam's momentum-schedule product is per index: saved per parameter, one value per group."""
    params, tr = trained(rng, "nadam", steps=3)
    other = mxopt.Trainer(params, "nadam", {"learning_rate": 0.01})
    other.load_states(tr.save_states())
    assert other._updater.states[0].scalars == tr._updater.states[0].scalars != {}
    other.data[...] = tr.data
    for t in (tr, other):
        t.zero_grad()
        t.grads["fc_weight"][...] = 0.5
        t.step()
    np.testing.assert_array_equal(tr.data, other.data)


def test_a_step_that_fails_in_a_later_group_changes_nothing():
    # The second group's learning rate (1e-3 x lr_mult 1e45) overflows float32: the
    # step must raise before the first group is updated (one aggregated update).
    tr = mxopt.Trainer({"a": np.ones(3, np.float32), "b": np.ones(2, np.float32)}, "adam",
                       {"learning_rate": 1e-3}, lr_mult={"b": 1e45})
    tr.grads["a"][...] = 1.0
    tr.grads["b"][...] = 1.0
    before = tr.data.copy()
    scale = tr.optimizer.rescale_grad
    with pytest.raises(ValueError, match="lr"):
        tr.step(batch_size=4)
    np.testing.assert_array_equal(tr.data, before)
    assert tr.optimizer.num_update == 0 and tr.optimizer._index_update_count == {}
    assert tr.optimizer.rescale_grad == scale
    assert tr._updater.states == {}
