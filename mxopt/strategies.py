r"""Training strategies around an optimizer: early stopping with patience, and epochs in a chosen order.

:class:`EarlyStopping` watches a validation loss once per epoch and says
when to stop; :func:`train_epoch` runs one pass over the training examples
in an order the caller chooses (sorted by class, shuffled, easy to hard), for
the experiments on shuffling and curricula that :func:`mxopt.models.fit`,
which always shuffles, cannot run.
"""
from __future__ import annotations

import math

import numpy as np

from . import _checks, models

__all__ = ["EarlyStopping", "train_epoch"]


class EarlyStopping:
    r"""Stop training when the validation loss has not improved for ``patience`` epochs in a row.

    After epoch :math:`k` the caller passes the validation loss :math:`v_k`.
    The best loss so far is :math:`v^\star = v_{k^\star}`; epoch :math:`k`
    *improves* when :math:`v_k < v^\star - \delta` (``min_delta``
    :math:`= \delta \ge 0`).  :meth:`update` returns True, and
    :attr:`stopped_epoch` is set, at the first epoch :math:`k` with
    :math:`k - k^\star = p` (``patience``): :math:`p` epochs without an
    improvement.  The weights worth keeping are those of epoch
    :attr:`best_epoch` :math:`= k^\star` (:attr:`improved` says when to save
    them).  A NaN loss never improves.

    This is Prechelt's criterion "stop after :math:`p` successive epochs
    without a new minimum of the validation error" with the best weights
    restored, the form most libraries ship.

    Example:
      >>> stop = EarlyStopping(patience=2)
      >>> [stop.update(loss) for loss in [1.0, 0.8, 0.9, 0.7, 0.75, 0.71]]
      [False, False, False, False, False, True]
      >>> stop.best_epoch, stop.best_loss, stop.stopped_epoch
      (3, 0.7, 5)

    Reference: L. Prechelt, "Early Stopping — But When?", in *Neural
    Networks: Tricks of the Trade*, LNCS 1524, Springer 1998, pp. 55–69.
    """

    def __init__(self, patience=5, min_delta=0.0, first_epoch=0):
        self.patience = _checks.integer(1)("patience", patience)
        self.min_delta = _checks.at_least(0.0)("min_delta", min_delta)
        self.first_epoch = _checks.integer(0)("first_epoch", first_epoch)
        self.epoch = self.first_epoch - 1
        self.best_epoch = None
        self.best_loss = math.inf
        self.stopped_epoch = None
        self.improved = False

    def __repr__(self):
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"best_epoch={self.best_epoch}, stopped_epoch={self.stopped_epoch})")

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None

    def update(self, loss) -> bool:
        """Record the next epoch's validation loss; True when training should stop (here or before)."""
        if isinstance(loss, bool) or not isinstance(loss, (int, float, np.floating, np.integer)):
            raise TypeError(f"loss must be a real number, got {type(loss).__name__} {loss!r}")
        loss = float(loss)
        if self.stopped:
            raise ValueError(f"training already stopped at epoch {self.stopped_epoch}; "
                             "make a new EarlyStopping to watch another run")
        self.epoch += 1
        self.improved = loss < self.best_loss - self.min_delta
        if self.improved:
            self.best_epoch, self.best_loss = self.epoch, loss
        waited = self.epoch - (self.first_epoch - 1 if self.best_epoch is None else self.best_epoch)
        if waited >= self.patience:
            self.stopped_epoch = self.epoch
        return self.stopped


def train_epoch(model, trainer, X, y, order, batch_size, *, stats=None, before_step=None, first_step=1):
    r"""One pass over ``X[order]`` in batches of ``batch_size``, each a step of ``trainer``; returns the batch losses.

    The batches are ``order[0:B]``, ``order[B:2B]``, … (the last one smaller
    when :math:`B` does not divide ``len(order)``), in that order, so the
    caller decides what the optimizer sees: the examples sorted by class,
    shuffled, or a curriculum.  Each step writes the gradient of the batch's
    summed loss into ``trainer.grads`` and calls ``trainer.step(B)`` (Gluon's
    convention, as :func:`mxopt.models.fit` does), so the optimizer sees
    the batch mean :math:`g_t = \frac1B\sum_{i\in\mathcal B_t}\nabla\ell_i(w_t)`.
    ``before_step(trainer, step)`` runs between the two, with steps counted
    from ``first_step``.  Stops at the first non-finite batch loss (the
    returned array then ends with it).

    Example:
      >>> import numpy as np, mxopt
      >>> from mxopt import datasets, models
      >>> data = datasets.digits()
      >>> model = models.softmax_regression(data.n_features, data.n_classes)
      >>> trainer = mxopt.Trainer(model.init_params(seed=0), 'sgd', {'learning_rate': 0.1})
      >>> losses = train_epoch(model, trainer, data.X_train, data.y_train, np.arange(data.n_train), 64)
      >>> len(losses), bool(losses[-1] < losses[0])
      (22, True)
    """
    weights = trainer.params
    dtype = next(iter(weights.values())).dtype
    X, y = model._check(weights, np.asarray(X, dtype=dtype), y)
    order = np.asarray(order)
    if order.ndim != 1 or not np.issubdtype(order.dtype, np.integer) or \
            (order.size and (order.min() < 0 or order.max() >= len(y))):
        raise ValueError(f"order must be a 1-D array of row indices in 0..{len(y) - 1}")
    batch_size = _checks.integer(1)("batch_size", batch_size)
    step = _checks.integer(1)("first_step", first_step)
    if before_step is not None and not callable(before_step):
        raise TypeError(f"before_step must be callable, got {type(before_step).__name__}")
    return np.asarray(models._steps(model, trainer, X, y, order, batch_size, stats, before_step, step))
