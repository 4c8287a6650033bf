import json
import pathlib

import numpy as np
import pytest

GOLDEN = pathlib.Path(__file__).parent / "data" / "mxnet-1.9.1"


def golden_index():
    return json.loads((GOLDEN / "index.json").read_text())


def load_case(case):
    with np.load(GOLDEN / case["file"], allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)
