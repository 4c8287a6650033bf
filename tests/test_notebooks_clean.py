"""The notebooks are stored clean and follow the guide's template.

(Running them is nbval's job: ``pytest --nbval-lax notebooks``.)"""
import json
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
GUIDE = ["01_gradient_descent", "02_sgd_weight_decay", "03_momentum", "04_nesterov", "05_adagrad",
         "06_rmsprop", "07_adadelta", "08_adam", "09_adamax", "10_nadam", "11_amsgrad", "12_adamw",
         "13_signum", "14_lars_lbsgd", "15_lamb", "16_dcasgd", "17_ftrl", "18_ftml", "19_sgld",
         "20_schedules", "21_custom_optimizer", "22_choosing", "23_strategies", "24_many_machines"]


def test_the_guide_is_complete():
    assert [p.stem for p in NOTEBOOKS] == GUIDE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name} cell {i} is stored with outputs"
            assert cell["execution_count"] is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_follows_the_template(path):
    nb = json.loads(path.read_text())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "".join(nb["cells"][0]["source"]).startswith("# "), "a one-line title first"
    assert "$$" in text, "the derivation in display math"
    assert "inspect.getsource(" in code, "the mxopt rule shown from the package source"
    assert code.count("assert ") >= 10, "numbers checked by assertions"
    assert "np.random.default_rng(" in code or "seed=" in code, "seeded"
    assert "summary" in text.lower() and "exercise" in text.lower()
