"""mxopt.strategies: early stopping with patience (Prechelt 1998) and epochs in a chosen order."""
import math

import numpy as np
import pytest

import mxopt
from mxopt import datasets, models
from mxopt.strategies import EarlyStopping, train_epoch


def test_early_stopping_patience_and_best_epoch():
    stop = EarlyStopping(patience=3)
    losses = [2.0, 1.5, 1.6, 1.4, 1.45, 1.41, 1.42, 1.0]
    flags = [stop.update(v) for v in losses[:7]]
    assert flags == [False] * 6 + [True]
    assert (stop.best_epoch, stop.best_loss, stop.stopped_epoch) == (3, 1.4, 6)
    with pytest.raises(ValueError, match="already stopped"):
        stop.update(losses[7])


def test_min_delta_and_first_epoch():
    stop = EarlyStopping(patience=2, min_delta=0.05, first_epoch=1)
    results = [(stop.update(v), stop.improved) for v in [1.0, 0.97, 0.96]]   # 0.97 and 0.96: not 0.05 better
    assert results == [(False, True), (False, False), (True, False)]
    assert stop.best_epoch == 1 and stop.stopped_epoch == 3


def test_nan_never_improves():
    stop = EarlyStopping(patience=2)
    assert [stop.update(v) for v in [math.nan, math.nan]] == [False, True]
    assert stop.best_epoch is None and stop.stopped_epoch == 1


@pytest.mark.parametrize("kwargs, error, word", [
    ({"patience": 0}, ValueError, "patience"), ({"patience": 2.0}, TypeError, "patience"),
    ({"min_delta": -1e-3}, ValueError, "min_delta"), ({"first_epoch": -1}, ValueError, "first_epoch"),
])
def test_bad_arguments(kwargs, error, word):
    with pytest.raises(error, match=word):
        EarlyStopping(**kwargs)


def test_bad_loss_changes_nothing():
    stop = EarlyStopping(patience=2)
    stop.update(1.0)
    with pytest.raises(TypeError, match="loss"):
        stop.update("0.5")
    assert (stop.epoch, stop.best_epoch, stop.best_loss) == (0, 0, 1.0)


def test_train_epoch_matches_fit_for_the_same_order():
    data = datasets.digits()
    model = models.mlp(data.n_features, data.n_classes, hidden=(8,))
    reference = models.fit(model, None, data, "sgd", {"learning_rate": 0.1, "momentum": 0.9}, epochs=1,
                           batch_size=50, seed=4, record_steps=True)
    order = np.random.default_rng(4).permutation(data.n_train)          # fit's first-epoch order for seed 4
    trainer = mxopt.Trainer(model.init_params(4), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    steps = []
    losses = train_epoch(model, trainer, data.X_train, data.y_train, order, 50,
                         before_step=lambda tr, step: steps.append(step), first_step=1)
    np.testing.assert_array_equal(trainer.data, reference.trainer.data)
    np.testing.assert_allclose(losses, reference.step_loss, rtol=1e-12)
    assert steps == list(range(1, 28))                                   # ⌈1347/50⌉ = 27 batches


def test_train_epoch_bad_order():
    data = datasets.digits()
    model = models.softmax_regression(data.n_features, data.n_classes)
    trainer = mxopt.Trainer(model.init_params(0), "sgd", {"learning_rate": 0.1})
    before = trainer.data.copy()
    for order in (np.array([0, data.n_train]), np.array([[0, 1]]), np.array([0.0, 1.0])):
        with pytest.raises(ValueError, match="order"):
            train_epoch(model, trainer, data.X_train, data.y_train, order, 10)
    np.testing.assert_array_equal(trainer.data, before)
