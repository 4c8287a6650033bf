"""Tests of mxopt.lineage: a record for every registered optimizer; parent links forward in time, no cycles."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Annotation  # noqa: E402

import mxopt  # noqa: E402
from mxopt import lineage  # noqa: E402
from mxopt.lineage import RECORDS  # noqa: E402


def test_every_registered_optimizer_has_exactly_one_record():
    owners = {}
    for record in RECORDS.values():
        for name in record.registered:
            assert name not in owners, f"{name} is registered by {owners[name]} and {record.key}"
            owners[name] = record.key
    # the package's own optimizers (other tests register examples of their own in this process)
    shipped = {name for name, cls in mxopt.opt_registry.items() if cls.__module__.startswith("mxopt.")}
    assert set(owners) == shipped
    for name in shipped:
        assert lineage.for_optimizer(name).key == owners[name]
        assert lineage.for_optimizer(name.upper()).key == owners[name]      # as mxopt.create reads names


def test_names_of_one_record_build_one_class():
    # ccsgd is sgd's deprecated alias (a subclass that only warns): the names of one record build one optimizer
    for record in RECORDS.values():
        classes = [mxopt.opt_registry[name] for name in record.registered]
        assert all(issubclass(c, classes[0]) for c in classes), record.key


def test_records_are_well_formed():
    assert list(RECORDS) == sorted(RECORDS, key=lambda k: RECORDS[k].year)           # oldest first
    for key, record in RECORDS.items():
        assert record.key == key
        assert record.family in lineage.FAMILIES, record
        assert record.year == record.paper.year and 1800 < record.year < 2030
        assert record.paper.authors and record.paper.title and record.paper.venue
        assert len(set(record.parents)) == len(record.parents) and key not in record.parents
    assert {r.family for r in RECORDS.values()} == set(lineage.FAMILIES)          # no empty band
    assert list(lineage.COLOURS) == list(lineage.FAMILIES)
    assert len(set(lineage.COLOURS.values())) == len(lineage.FAMILIES)


def test_parents_exist_and_are_not_younger():
    roots = [k for k, r in RECORDS.items() if not r.parents]
    assert roots == ["gd"]
    for record in RECORDS.values():
        for parent in record.parents:
            assert parent in RECORDS, (record.key, parent)
            assert RECORDS[parent].year <= record.year, (parent, record.key)


def test_no_cycles_and_everything_descends_from_gradient_descent():
    order = lineage.topological_order()
    assert sorted(order) == sorted(RECORDS)
    position = {k: i for i, k in enumerate(order)}
    for record in RECORDS.values():
        assert all(position[p] < position[record.key] for p in record.parents)
    assert {r.key for r in lineage.descendants("gd")} == set(RECORDS) - {"gd"}
    assert [r.key for r in lineage.ancestors("nadam")] == ["gd", "momentum", "rprop", "nag", "rmsprop",
                                                            "adam"]


def test_topological_order_finds_a_cycle_and_a_missing_parent():
    a, b = RECORDS["sgd"], RECORDS["momentum"]
    cyclic = {"sgd": a.__class__(**{**a.__dict__, "parents": ("momentum",)}),
              "momentum": b.__class__(**{**b.__dict__, "parents": ("sgd",)})}
    with pytest.raises(ValueError, match="cycle"):
        lineage.topological_order(cyclic)
    with pytest.raises(ValueError, match="not records"):
        lineage.topological_order({"sgd": a})                      # its parent 'gd' is missing


def test_facts_the_guide_relies_on():
    expected = {"momentum": 1964, "nag": 1983, "adagrad": 2011, "rmsprop": 2012, "rmsprop_centered": 2013,
                "adadelta": 2012, "adam": 2015, "adamax": 2015, "nadam": 2016, "amsgrad": 2018, "adamw": 2019,
                "signum": 2018, "lars": 2017, "lbsgd": 2017, "lamb": 2020, "dcasgd": 2017, "ftrl": 2013,
                "ftml": 2017, "sgld": 2011}
    assert {k: RECORDS[k].year for k in expected} == expected
    assert RECORDS["adam"].paper.venue == "ICLR" and RECORDS["ftrl"].paper.venue == "KDD"
    assert set(RECORDS["lamb"].parents) == {"adam", "lars"}


def test_bad_names():
    with pytest.raises(ValueError, match="no record registers 'adamm'"):
        lineage.for_optimizer("adamm")
    with pytest.raises(TypeError, match="name must be"):
        lineage.for_optimizer(3)
    with pytest.raises(ValueError, match="unknown record"):
        lineage.ancestors("adamm")


def test_draw_map_has_a_box_per_record_and_an_arrow_per_link():
    ax = lineage.draw_map(highlight=("adam",))
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    boxes = [t for t in ax.texts if not isinstance(t, Annotation) and t.get_bbox_patch() is not None]
    assert len(arrows) == sum(len(r.parents) for r in RECORDS.values())
    assert sorted(t.get_text() for t in boxes) == sorted(f"{r.name}\n{r.year}" for r in RECORDS.values())
    # x grows with the year; labels of one row of a family do not overlap (estimated widths)
    xs = {t.get_text(): t.get_position()[0] for t in boxes}
    assert xs["Adam\n2015"] < xs["AdamW\n2019"] < xs["LAMB\n2020"]
    seen = {}
    for t in boxes:
        seen.setdefault(t.get_position()[1], []).append(t)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for row in seen.values():
        extents = sorted(tuple(t.get_bbox_patch().get_window_extent(renderer).intervalx) for t in row)
        assert all(left[1] <= right[0] for left, right in zip(extents, extents[1:]))
    plt.close(fig)
