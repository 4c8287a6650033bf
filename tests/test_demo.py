import pytest

from mxopt import demo


@pytest.mark.parametrize("optimizer", ["sgd", "nag", "adam"])
def test_demo_loss_falls(optimizer):
    history = demo.train(optimizer, epochs=8, log=lambda *_: None)
    assert history[-1] < history[0] / 8, history
    assert all(h == h for h in history)  # no NaN
