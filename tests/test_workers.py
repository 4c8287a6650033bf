"""mxopt.workers: shards, the allreduce and the bit-packed majority vote, the asynchronous schedule, the driver."""
import doctest
import math

import numpy as np
import pytest

from mxopt import datasets, models, workers
from mxopt.trainer import Trainer

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


def _numpy_majority(values):
    """The vote by its definition: signs with sign(0) = +1, their sum, the sign of it with a tie as +1."""
    signs = np.where(np.stack(values) >= 0, 1, -1)
    return np.where(signs.sum(axis=0) >= 0, 1.0, -1.0)


# ---------------------------------------------------------------------------
# The exchange
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("M", [1, 2, 3, 4, 7, 8])
def test_vote_equals_numpy_majority(M):
    rng = np.random.default_rng(M)
    values = [rng.standard_normal(1001).astype(np.float32) for _ in range(M)]
    for v in values:
        v[rng.integers(0, 1001, 50)] = 0.0                     # zeros are sent as +1
    vote = workers.majority_vote(values)
    assert vote.dtype == np.float32 and vote.shape == (1001,)
    np.testing.assert_array_equal(vote, _numpy_majority(values))
    if M % 2:   # odd M and no zeros: the textbook sign(sum(sign)), which never ties
        nonzero = [np.where(v == 0, 1.0, v) for v in values]
        np.testing.assert_array_equal(workers.majority_vote(nonzero), np.sign(np.sign(nonzero).sum(axis=0)))


def test_vote_tie_and_dicts():
    """Even M can tie: the stated rule gives +1.  Dicts are voted on as one message and come back as dicts."""
    tie = workers.majority_vote([np.array([1.0, -1.0, -2.0]), np.array([-1.0, 1.0, -3.0])])
    np.testing.assert_array_equal(tie, [1.0, 1.0, -1.0])
    a = {"w": np.array([[1.0, -1.0]]), "b": np.array([-5.0])}
    b = {"w": np.array([[-2.0, -1.0]]), "b": np.array([-1.0])}
    c = {"w": np.array([[3.0, 4.0]]), "b": np.array([2.0])}
    vote = workers.majority_vote([a, b, c])
    assert list(vote) == ["w", "b"]
    np.testing.assert_array_equal(vote["w"], [[1.0, -1.0]])
    np.testing.assert_array_equal(vote["b"], [-1.0])


@pytest.mark.parametrize("d", [1, 7, 8, 9, 64, 650, 1001])
def test_packbits_round_trip(d):
    x = np.random.default_rng(d).standard_normal(d)
    x[::5] = 0.0
    x[1::7] = -0.0                                             # -0.0 >= 0: sent as +1
    packed = workers.pack_signs(x)
    assert packed.dtype == np.uint8 and packed.shape == (math.ceil(d / 8),)
    back = workers.unpack_signs(packed, d, np.float64)
    np.testing.assert_array_equal(back, np.where(x >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(workers.pack_signs(back), packed)


@pytest.mark.parametrize("d", [8, 640, 650, 1001])
@pytest.mark.parametrize("M", [1, 3, 4])
def test_vote_sends_a_32nd_of_the_float32_allreduce(d, M):
    """Payload only, no header: ceil(d/8) bytes per worker each way, against 4d; exactly 1/32 when 8 divides d."""
    values = [np.random.default_rng(k).standard_normal(d).astype(np.float32) for k in range(M)]
    log = workers.CommLog()
    workers.allreduce_mean(values, log)
    workers.majority_vote(values, log)
    assert log.up == [M * 4 * d, M * math.ceil(d / 8)] and log.down == log.up
    assert list(log.bytes_per_step) == [2 * M * 4 * d, 2 * M * math.ceil(d / 8)] and len(log) == 2
    assert log.total == 2 * M * (4 * d + math.ceil(d / 8))
    ratio = log.up[1] / log.up[0]
    assert ratio == math.ceil(d / 8) / (4 * d)
    assert (ratio == 1 / 32) == (d % 8 == 0) and 1 / 32 <= ratio < 1 / 32 + 1 / (4 * d)


def test_allreduce_sums_in_worker_order():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(100).astype(np.float32) for _ in range(5)]
    expected = grads[0].copy()
    for g in grads[1:]:
        expected = expected + g
    total = workers.allreduce_sum(grads)
    np.testing.assert_array_equal(total, expected)
    np.testing.assert_array_equal(workers.allreduce_mean(grads), expected / np.float32(5))
    assert workers.allreduce_sum(grads[:1]) is not grads[0]   # a copy, equal bit for bit
    np.testing.assert_array_equal(workers.allreduce_sum(grads[:1]), grads[0])
    log = workers.CommLog()
    workers.allreduce_sum([g.astype(np.float64) for g in grads], log)
    assert log.up == [5 * 8 * 100]                            # float64: 64 bits a coordinate


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_sharded_gradients_sum_to_the_big_batch(digits, dtype, rtol):
    """M workers' summed-loss gradients on the pieces of a batch add up to one process's on the whole batch (rounding only)."""
    model = models.mlp(digits.n_features, digits.n_classes, hidden=(16,))
    params = model.init_params(0, dtype)
    rows = np.random.default_rng(0).permutation(digits.n_train)[:96]
    X, y = digits.X_train.astype(dtype), digits.y_train
    pieces = np.array_split(rows, 4)
    grads = [model.loss_and_grad(params, X[p], y[p], reduction="sum")[1] for p in pieces]
    total = workers.allreduce_sum(grads)
    _, whole = model.loss_and_grad(params, X[rows], y[rows], reduction="sum")
    for name in whole:
        np.testing.assert_allclose(total[name], whole[name], rtol=rtol, atol=rtol * np.abs(whole[name]).max())
    mean = workers.allreduce_mean([model.loss_and_grad(params, X[p], y[p])[1] for p in pieces])
    _, whole_mean = model.loss_and_grad(params, X[rows], y[rows])
    for name in whole:
        np.testing.assert_allclose(mean[name], whole_mean[name], rtol=rtol, atol=rtol * np.abs(whole_mean[name]).max())


# ---------------------------------------------------------------------------
# Shards and batches
# ---------------------------------------------------------------------------


def test_shards(digits):
    for partition in workers.PARTITIONS:
        shards = workers.shard(digits, 4, partition, seed=5)
        every = np.concatenate([s.index for s in shards])
        np.testing.assert_array_equal(np.sort(every), np.arange(digits.n_train))
        assert {len(s.index) for s in shards} <= {digits.n_train // 4, digits.n_train // 4 + 1}
        for s in shards:
            assert np.all(np.diff(s.index) > 0)
            np.testing.assert_array_equal(s.X, digits.X_train[s.index])
            np.testing.assert_array_equal(s.y, digits.y_train[s.index])
        again = workers.shard(digits, 4, partition, seed=5)
        assert all(np.array_equal(a.index, b.index) for a, b in zip(shards, again))
    iid = workers.shard(digits, 4, "iid", seed=5)
    assert all(len(np.unique(s.y)) == 10 for s in iid)
    label = workers.shard(digits, 4, "label")
    assert all(len(np.unique(s.y)) <= 4 for s in label)       # 10 classes over 4 workers: 3 or 4 each
    one = workers.shard((digits.X_train, digits.y_train), 1)
    np.testing.assert_array_equal(one[0].index, np.arange(digits.n_train))


def test_batch_schedule_visits_every_row_once_and_matches_fit_order(digits):
    shards = workers.shard(digits, 3, seed=1)
    epochs = list(workers.batch_schedule(shards, 50, epochs=2, seed=7))
    assert len(epochs) == 2
    steps = math.ceil(min(len(s.index) for s in shards) / 50)
    for epoch in epochs:
        assert len(epoch) == steps and all(len(step) == 3 for step in epoch)
        for k, s in enumerate(shards):
            rows = np.concatenate([step[k] for step in epoch])
            np.testing.assert_array_equal(np.sort(rows), s.index)
    # one worker: fit's batches, numpy.random.default_rng(seed).permutation(N) every epoch
    one = workers.shard(digits, 1)
    rng = np.random.default_rng(7)
    for epoch in workers.batch_schedule(one, 50, epochs=2, seed=7):
        order = rng.permutation(digits.n_train)
        expected = [order[i:i + 50] for i in range(0, digits.n_train, 50)]
        assert len(epoch) == len(expected)
        assert all(np.array_equal(step[0], e) for step, e in zip(epoch, expected))


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------

SETTINGS = [("sgd", {"learning_rate": 0.1, "momentum": 0.9}), ("adam", {"learning_rate": 0.01})]


@pytest.mark.parametrize("optimizer, hyper", SETTINGS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_one_worker_allreduce_is_fit_bit_for_bit(digits, optimizer, hyper, batch_norm):
    model = models.mlp(digits.n_features, digits.n_classes, hidden=(16,), batch_norm=batch_norm)
    fitted = models.fit(model, None, digits, optimizer, hyper, epochs=2, batch_size=40, seed=3, record_steps=True)
    for mode, extra in (("allreduce", {}), ("async", {"delay": 0})):
        h = workers.train_data_parallel(model, digits, optimizer, hyper, workers=1, mode=mode,
                                        batch_size_per_worker=40, epochs=2, seed=3, **extra)
        np.testing.assert_array_equal(h.trainer.data, fitted.trainer.data)
        np.testing.assert_array_equal(h.step_loss, fitted.step_loss)
        for attr in ("train_loss", "train_accuracy", "test_accuracy"):
            np.testing.assert_array_equal(getattr(h, attr), getattr(fitted, attr))
        for name, value in fitted.stats.items():
            np.testing.assert_array_equal(h.stats[name], value)
        assert h.steps_per_epoch == math.ceil(digits.n_train / 40) and not h.diverged
        assert np.all(h.staleness == 0)


def _replay_big_batch(model, data, optimizer, hyper, shards, batch, epochs, seed, dtype):
    """One process, one Trainer, stepping on the concatenation of the workers' batches."""
    trainer = Trainer(model.init_params(seed, dtype), optimizer, hyper)
    X = data.X_train.astype(dtype)
    for epoch in workers.batch_schedule(shards, batch, epochs, seed):
        for step in epoch:
            rows = np.concatenate(step)
            _, g = model.loss_and_grad(trainer.params, X[rows], data.y_train[rows], reduction="sum")
            for name, value in g.items():
                trainer.grads[name][...] = value
            trainer.step(len(rows))
    return trainer


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-4), (np.float64, 1e-11)])
def test_sharded_allreduce_training_equals_one_process_on_the_big_batch(digits, dtype, rtol):
    """Same weights to rounding: float32 sums in another order differ by ULPs, which two epochs grow to ~1e-5 relative."""
    model = models.mlp(digits.n_features, digits.n_classes, hidden=(16,))
    hyper = {"learning_rate": 0.2, "momentum": 0.9}
    h = workers.train_data_parallel(model, digits, "sgd", hyper, workers=4, batch_size_per_worker=8, epochs=2,
                                    seed=1, params=model.init_params(1, dtype))
    shards = workers.shard(digits, 4, seed=1)
    big = _replay_big_batch(model, digits, "sgd", hyper, shards, 8, 2, 1, dtype)
    assert h.trainer.data.dtype == dtype
    np.testing.assert_allclose(h.trainer.data, big.data, rtol=rtol, atol=rtol * np.abs(big.data).max())
    assert h.bytes_up[0] == 4 * big.data.size * np.dtype(dtype).itemsize


def test_async_without_delay_is_sequential_sgd_over_the_workers_turns(digits):
    """τ = 0 with 3 workers: each update uses the current weights, batches in turn (worker 0, 1, 2, 0, ...), bit for bit."""
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    hyper = {"learning_rate": 0.05, "momentum": 0.5}
    h = workers.train_data_parallel(model, digits, "sgd", hyper, workers=3, mode="async", delay=0,
                                    batch_size_per_worker=32, epochs=2, seed=2)
    trainer = Trainer(model.init_params(2), "sgd", hyper)
    X, y = digits.X_train, digits.y_train
    losses = []
    for epoch in workers.batch_schedule(workers.shard(digits, 3, seed=2), 32, 2, seed=2):
        for step in epoch:
            for rows in step:
                loss, g = model.loss_and_grad(trainer.params, X[rows], y[rows], reduction="sum")
                losses.append(loss / len(rows))
                for name, value in g.items():
                    trainer.grads[name][...] = value
                trainer.step(len(rows))
    np.testing.assert_array_equal(h.trainer.data, trainer.data)
    np.testing.assert_array_equal(h.step_loss, losses)
    assert h.steps_per_epoch == 3 * math.ceil(449 / 32) and np.all(h.staleness == 0)


@pytest.mark.parametrize("delay", [1, 3, 7])
def test_measured_staleness_is_the_configured_delay(digits, delay):
    """The hook sees the weights each gradient was computed at: those of `delay` updates back (fewer at the start)."""
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    history, seen = [], []

    def record(trainer, step, pulled):
        history.append(trainer.data.copy())                   # w_{step-1}: the weights this update changes
        seen.append(np.concatenate([pulled[n].ravel() for n in trainer.params]))

    h = workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.05}, workers=4, mode="async",
                                    delay=delay, batch_size_per_worker=64, epochs=1, seed=0, before_step=record)
    expected = np.minimum(np.arange(len(h.step_loss)), delay)
    np.testing.assert_array_equal(h.staleness, expected)
    for t, (pulled, tau) in enumerate(zip(seen, h.staleness)):
        np.testing.assert_array_equal(pulled, history[t - tau])
    assert not np.array_equal(seen[-1], history[-1])          # stale: not the weights being updated
    default = workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.05}, workers=4, mode="async",
                                          batch_size_per_worker=64, epochs=1, seed=0)
    assert default.staleness.max() == 3                       # M - 1 by default
    assert list(default.bytes_up[:2]) == [4 * 650, 4 * 650] and list(default.bytes_down[:2]) == [4 * 650] * 2


def test_random_delay_is_seeded_and_uniform():
    s = workers.async_schedule(20_000, (2, 6), seed=4)
    again = workers.async_schedule(20_000, (2, 6), seed=4)
    np.testing.assert_array_equal(s.pulled, again.pulled)
    assert not np.array_equal(s.pulled, workers.async_schedule(20_000, (2, 6), seed=5).pulled)
    steady = s.staleness[6:]
    assert steady.min() == 2 and steady.max() == 6
    counts = np.bincount(steady, minlength=7)[2:] / len(steady)
    np.testing.assert_allclose(counts, 0.2, atol=0.015)        # ~6 standard deviations of a frequency at n = 20000
    np.testing.assert_array_equal(s.pulled, np.arange(20_000) - s.staleness)
    fixed = workers.async_schedule(6, 2)
    assert fixed.pulled.tolist() == [0, 0, 0, 1, 2, 3] and fixed.staleness.tolist() == [0, 1, 2, 2, 2, 2]


def test_vote_mode(digits):
    """Bytes per update, the workers' momentum, a real model trained, and the same run twice is the same run."""
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    d = digits.n_features * digits.n_classes + digits.n_classes
    args = dict(workers=5, mode="vote", batch_size_per_worker=16, epochs=3, seed=0)
    h = workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.01}, worker_momentum=0.9, **args)
    again = workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.01}, worker_momentum=0.9, **args)
    np.testing.assert_array_equal(h.trainer.data, again.trainer.data)
    assert np.all(h.bytes_up == 5 * math.ceil(d / 8)) and np.all(h.bytes_down == h.bytes_up)
    assert h.test_accuracy[-1] > 0.85 and h.train_loss[-1] < h.train_loss[0] / 3

    # Each update moves every coordinate by exactly the learning rate (SGD without momentum on ±1).
    moves = []
    workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.125}, workers=3, mode="vote",
                                batch_size_per_worker=16, epochs=1, seed=0,
                                before_step=lambda tr, step, pulled: moves.append(tr.grad_data.copy()))
    assert all(set(np.unique(m)) <= {-1.0, 1.0} for m in moves)


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_vote_mode_is_signum_with_majority_vote(digits, beta):
    """Bernstein et al.'s Algorithm: m_k <- beta m_k + (1 - beta) g_k / B_k per worker, V = vote, w <- w - lr (V + wd w); replayed."""
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    hyper = {"learning_rate": 0.01, "wd": 0.001}
    h = workers.train_data_parallel(model, digits, "sgd", hyper, workers=4, mode="vote", batch_size_per_worker=24,
                                    epochs=2, seed=6, worker_momentum=beta, partition="label")
    trainer = Trainer(model.init_params(6), "sgd", hyper)
    X, y = digits.X_train, digits.y_train
    momentum = [np.zeros(trainer.data.size, np.float32) for _ in range(4)]
    for epoch in workers.batch_schedule(workers.shard(digits, 4, "label", seed=6), 24, 2, seed=6):
        for step in epoch:
            for k, rows in enumerate(step):
                _, g = model.loss_and_grad(trainer.params, X[rows], y[rows], reduction="sum")
                flat = np.concatenate([g[n].ravel() for n in trainer.params]) / np.float32(len(rows))
                momentum[k] = np.float32(beta) * momentum[k] + np.float32(1 - beta) * flat
            vote = _numpy_majority(momentum).astype(np.float32)
            offset = 0
            for name, view in trainer.grads.items():
                view[...] = vote[offset:offset + view.size].reshape(view.shape)
                offset += view.size
            trainer.step(1)
    np.testing.assert_array_equal(h.trainer.data, trainer.data)


def test_dcasgd_compensates_the_real_delay_with_the_pulled_weights(digits):
    """pulled_into_state(): w <- w - lr (g + lamda g g (w - w_pulled)), g at w_pulled, replayed in NumPy float32."""
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    hyper = {"learning_rate": 0.1, "lamda": 2.0}
    args = dict(workers=3, mode="async", delay=4, batch_size_per_worker=40, epochs=1, seed=0)
    h = workers.train_data_parallel(model, digits, "dcasgd", hyper, before_step=workers.pulled_into_state(), **args)
    names = list(model.param_shapes())
    X, y = digits.X_train, digits.y_train
    w = np.concatenate([v.ravel() for v in model.init_params(0).values()])
    history = [w.copy()]
    schedule = workers.async_schedule(h.steps_per_epoch, 4)
    turns = [rows for step in next(workers.batch_schedule(workers.shard(digits, 3), 40, 1)) for rows in step]
    lr, lamda = np.float32(0.1), np.float32(2.0)
    for t, rows in enumerate(turns):
        pulled = history[schedule.pulled[t]]
        _, g = model.loss_and_grad(workers._unflatten(pulled, model.param_shapes()), X[rows], y[rows],
                                   reduction="sum")
        g = np.float32(1 / len(rows)) * np.concatenate([g[n].ravel() for n in names])
        w = w + -lr * (g + np.float32(0) * w + lamda * g * g * (w - pulled))
        history.append(w.copy())
    np.testing.assert_array_equal(h.trainer.data, w)        # the kernel keeps NumPy's float32 order: 0 ULP
    plain = workers.train_data_parallel(model, digits, "dcasgd", hyper, **args)  # MXNet's one-step w_prev
    assert not np.allclose(plain.trainer.data, w, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="previous_weight"):
        workers.train_data_parallel(model, digits, "sgd", {"momentum": 0.9}, before_step=workers.pulled_into_state(),
                                    **args)


def test_doc_examples_run():
    failures, tried = doctest.testmod(workers, optionflags=doctest.ELLIPSIS)
    assert tried > 10 and failures == 0


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def test_bad_input_names_the_argument(digits):
    model = models.softmax_regression(digits.n_features, digits.n_classes)
    X, y = digits.X_train[:3], digits.y_train[:3]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="workers"):
            workers.shard((X, y), bad)
    with pytest.raises(ValueError, match=r"workers=5 is more than the 3 training examples"):
        workers.shard((X, y), 5)
    with pytest.raises(TypeError, match="workers"):
        workers.shard((X, y), 2.0)
    with pytest.raises(ValueError, match="partition"):
        workers.shard((X, y), 2, "by-colour")
    with pytest.raises(TypeError, match="data"):
        workers.shard(X, 2)
    with pytest.raises(ValueError, match="batch_size"):
        next(workers.batch_schedule(workers.shard((X, y), 1), 0, 1))

    def train(**kw):
        args = dict(workers=2, mode="allreduce", batch_size_per_worker=8, epochs=1, seed=0)
        args.update(kw)
        return workers.train_data_parallel(model, digits, "sgd", {"learning_rate": 0.1}, **args)

    for kw, error, name in [
            (dict(workers=0), ValueError, "workers"),
            (dict(workers=digits.n_train + 1), ValueError, "workers"),
            (dict(mode="gossip"), ValueError, "mode"),
            (dict(batch_size_per_worker=0), ValueError, "batch_size_per_worker"),
            (dict(epochs=-1), ValueError, "epochs"),
            (dict(seed=-3), ValueError, "seed"),
            (dict(mode="async", delay=-1), ValueError, "delay"),
            (dict(mode="async", delay=(3, 1)), ValueError, "delay"),
            (dict(mode="async", delay=(1, 2, 3)), ValueError, "delay"),
            (dict(mode="async", delay=1.5), TypeError, "delay"),
            (dict(delay=2), ValueError, "delay"),
            (dict(mode="vote", worker_momentum=1.0), ValueError, "worker_momentum"),
            (dict(worker_momentum=0.9), ValueError, "worker_momentum"),
            (dict(partition="nope"), ValueError, "partition"),
            (dict(before_step=3), TypeError, "before_step")]:
        with pytest.raises(error, match=name):
            train(**kw)
    with pytest.raises(TypeError, match="data"):
        workers.train_data_parallel(model, (X, y), workers=1)

    params = model.init_params(0)
    kept = {n: v.copy() for n, v in params.items()}
    with pytest.raises(ValueError, match="delay"):
        train(mode="async", delay=-1, params=params)
    assert all(np.array_equal(params[n], kept[n]) for n in params)

    g = np.ones(4, np.float32)
    for fn in (workers.allreduce_sum, workers.allreduce_mean, workers.majority_vote):
        arg = "values" if fn is workers.majority_vote else "grads"
        with pytest.raises(ValueError, match=arg):
            fn([])
        with pytest.raises(TypeError, match=arg):
            fn(g)                                               # one array, not a list per worker
        with pytest.raises(ValueError, match=rf"{arg}\[1\]"):
            fn([g, np.ones(5, np.float32)])
        with pytest.raises(TypeError, match=arg):
            fn([g, g.astype(np.float64)])
        with pytest.raises(ValueError, match=rf"{arg}\[1\]"):
            fn([{"w": g}, {"v": g}])
    with pytest.raises(ValueError, match=r"values\[1\] holds NaN"):
        workers.majority_vote([g, np.array([1, np.nan, 1, 1], np.float32)])
    with pytest.raises(ValueError, match="packed"):
        workers.unpack_signs(np.zeros(2, np.uint8), 17)
    with pytest.raises(ValueError, match="x holds NaN"):
        workers.pack_signs(np.array([np.inf]))
    log = workers.CommLog()
    with pytest.raises(ValueError):
        workers.majority_vote([g, np.array([1, np.nan, 1, 1], np.float32)], log)
    assert len(log) == 0                                        # nothing recorded for a refused exchange
