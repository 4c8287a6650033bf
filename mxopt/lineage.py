r"""Where the package's optimizers come from: each one's paper, year, family and the methods it builds on.

:data:`RECORDS` holds one :class:`Record` per optimizer the package
registers (:data:`mxopt.opt_registry`) and per idea they descend from that
the package runs only as an option or not at all (gradient descent, heavy-ball
momentum, Rprop, centred RMSProp).  Each record names its paper
(:class:`Paper`: authors, title, venue, year) and its parents, the records it
builds on; the parents form a directed acyclic graph whose edges never go
back in time.  :func:`for_optimizer` finds the record of a registered name,
:func:`ancestors` walks the graph back, and :func:`draw_map` draws it:
publication years along the horizontal axis, one band per family, an arrow
from each parent to each child.

The parent links follow what the papers themselves say they build on (for
example Tieleman and Hinton introduce RMSProp as a mini-batch version of
Rprop, and Kingma and Ba present Adam as joining AdaGrad's and RMSProp's
strengths with a momentum-like first moment).  Where MXNet's version of an
optimizer adds something the paper does not have, :attr:`Record.note` says so.

Example:
  >>> from mxopt import lineage
  >>> rec = lineage.for_optimizer('nadam')
  >>> rec.name, rec.year, rec.parents, rec.family
  ('Nadam', 2016, ('adam', 'nag'), 'adaptive')
  >>> [r.key for r in lineage.ancestors('lamb')]
  ['gd', 'momentum', 'rprop', 'rmsprop', 'lars', 'adam']
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Paper", "Record", "RECORDS", "FAMILIES", "COLOURS", "for_optimizer", "ancestors", "descendants",
           "topological_order", "draw_map"]


@dataclass(frozen=True)
class Paper:
    """A publication: ``authors`` (as cited), ``title``, ``venue`` (journal, conference or report) and ``year``."""

    authors: str
    title: str
    venue: str
    year: int

    def __str__(self):
        return f"{self.authors} ({self.year}), \"{self.title}\", {self.venue}"


@dataclass(frozen=True)
class Record:
    """One node of the map.

    Attributes:
      key: the node's identifier (the registered name when there is one).
      name: the name readers know it by.
      year: the year of :attr:`paper`.
      paper: where it was introduced.
      parents: keys of the records it builds on (empty only for gradient descent).
      family: one of :data:`FAMILIES`.
      registered: the names under which :func:`mxopt.create` builds it (empty for an idea the
        package runs only as an option of another optimizer, or not at all).
      note: how the package runs it, or what MXNet's version adds to the paper.
    """

    key: str
    name: str
    year: int
    paper: Paper
    parents: tuple
    family: str
    registered: tuple = ()
    note: str = ""


#: The families, in the order of the map's bands (top to bottom: linked families are neighbours).
FAMILIES = ("Bayesian", "asynchronous", "gradient descent", "online", "adaptive", "sign", "momentum",
            "large batch")

_RECORDS = (
    Record("gd", "gradient descent", 1847,
           Paper("A.-L. Cauchy", "Méthode générale pour la résolution des systèmes d'équations simultanées",
                 "Comptes rendus de l'Académie des sciences 25", 1847),
           (), "gradient descent", note="sgd on the whole data set"),
    Record("sgd", "SGD", 1951,
           Paper("H. Robbins and S. Monro", "A stochastic approximation method",
                 "The Annals of Mathematical Statistics 22(3)", 1951),
           ("gd",), "gradient descent", ("sgd", "ccsgd"),
           "ccsgd is MXNet's deprecated alias of sgd; sgd with momentum > 0 runs heavy-ball momentum"),
    Record("momentum", "momentum", 1964,
           Paper("B. T. Polyak", "Some methods of speeding up the convergence of iteration methods",
                 "USSR Computational Mathematics and Mathematical Physics 4(5)", 1964),
           ("gd",), "momentum", note="heavy-ball momentum: sgd with momentum > 0"),
    Record("nag", "NAG", 1983,
           Paper("Yu. E. Nesterov",
                 "A method for solving the convex programming problem with convergence rate O(1/k^2)",
                 "Doklady Akademii Nauk SSSR 269(3)", 1983),
           ("momentum",), "momentum", ("nag",),
           "Nesterov's accelerated gradient; MXNet's form is the momentum form of Sutskever, Martens, "
           "Dahl and Hinton (ICML 2013)"),
    Record("rprop", "Rprop", 1993,
           Paper("M. Riedmiller and H. Braun",
                 "A direct adaptive method for faster backpropagation learning: the RPROP algorithm",
                 "IEEE International Conference on Neural Networks", 1993),
           ("gd",), "sign", note="not in the package: full-batch steps from the gradient's sign"),
    Record("adagrad", "AdaGrad", 2011,
           Paper("J. Duchi, E. Hazan and Y. Singer",
                 "Adaptive subgradient methods for online learning and stochastic optimization",
                 "Journal of Machine Learning Research 12", 2011),
           ("sgd",), "adaptive", ("adagrad",)),
    Record("sgld", "SGLD", 2011,
           Paper("M. Welling and Y. W. Teh", "Bayesian learning via stochastic gradient Langevin dynamics",
                 "ICML", 2011),
           ("sgd",), "Bayesian", ("sgld",), "samples the posterior instead of converging to a point"),
    Record("rmsprop", "RMSProp", 2012,
           Paper("T. Tieleman and G. Hinton",
                 "Lecture 6.5, RMSProp: divide the gradient by a running average of its recent magnitude",
                 "COURSERA: Neural Networks for Machine Learning (lecture)", 2012),
           ("rprop",), "adaptive", ("rmsprop",),
           "introduced as a mini-batch version of Rprop; centered=True is Graves's centred form"),
    Record("adadelta", "AdaDelta", 2012,
           Paper("M. D. Zeiler", "ADADELTA: an adaptive learning rate method", "arXiv:1212.5701", 2012),
           ("adagrad",), "adaptive", ("adadelta",)),
    Record("rmsprop_centered", "centred RMSProp", 2013,
           Paper("A. Graves", "Generating sequences with recurrent neural networks", "arXiv:1308.0850", 2013),
           ("rmsprop",), "adaptive", note="rmsprop with centered=True (and momentum gamma2)"),
    Record("ftrl", "FTRL", 2013,
           Paper("H. B. McMahan et al.", "Ad click prediction: a view from the trenches", "KDD", 2013),
           ("sgd", "adagrad"), "online", ("ftrl",),
           "FTRL-Proximal with per-coordinate AdaGrad-style rates; without regularisation it takes "
           "online gradient descent's steps"),
    Record("adam", "Adam", 2015,
           Paper("D. P. Kingma and J. Ba", "Adam: a method for stochastic optimization", "ICLR", 2015),
           ("momentum", "rmsprop"), "adaptive", ("adam",)),
    Record("adamax", "Adamax", 2015,
           Paper("D. P. Kingma and J. Ba", "Adam: a method for stochastic optimization (section 7.1)", "ICLR", 2015),
           ("adam",), "adaptive", ("adamax",)),
    Record("nadam", "Nadam", 2016,
           Paper("T. Dozat", "Incorporating Nesterov momentum into Adam", "ICLR (workshop track)", 2016),
           ("adam", "nag"), "adaptive", ("nadam",)),
    Record("lbsgd", "LBSGD", 2017,
           Paper("P. Goyal et al.", "Accurate, large minibatch SGD: training ImageNet in 1 hour",
                 "arXiv:1706.02677", 2017),
           ("momentum", "lars"), "large batch", ("lbsgd",),
           "large-batch SGD: linear scaling and warm-up; MXNet's LBSGD adds LARS as one of its warm-up strategies"),
    Record("lars", "LARS", 2017,
           Paper("Y. You, I. Gitman and B. Ginsburg", "Large batch training of convolutional networks",
                 "arXiv:1708.03888", 2017),
           ("momentum",), "large batch", ("lars",)),
    Record("dcasgd", "DC-ASGD", 2017,
           Paper("S. Zheng, Q. Meng, T. Wang, W. Chen, N. Yu, Z.-M. Ma and T.-Y. Liu",
                 "Asynchronous stochastic gradient descent with delay compensation", "ICML", 2017),
           ("sgd",), "asynchronous", ("dcasgd",)),
    Record("ftml", "FTML", 2017,
           Paper("S. Zheng and J. T. Kwok", "Follow the moving leader in deep learning", "ICML", 2017),
           ("ftrl", "adam"), "online", ("ftml",)),
    Record("signum", "Signum", 2018,
           Paper("J. Bernstein, Y.-X. Wang, K. Azizzadenesheli and A. Anandkumar",
                 "signSGD: compressed optimisation for non-convex problems", "ICML", 2018),
           ("rprop", "momentum"), "sign", ("signum",),
           "signSGD and Signum (its momentum version); signum with momentum=0 is signSGD"),
    Record("amsgrad", "AMSGrad", 2018,
           Paper("S. J. Reddi, S. Kale and S. Kumar", "On the convergence of Adam and beyond", "ICLR", 2018),
           ("adam",), "adaptive", ("amsgrad",)),
    Record("groupadagrad", "GroupAdaGrad", 2018,
           Paper("Apache MXNet contributors", "Adagrad optimizer with row-wise learning rate",
                 "Apache MXNet pull request 12365 (contrib)", 2018),
           ("adagrad",), "adaptive", ("groupadagrad",),
           "one AdaGrad history per row of a 2-D weight (embedding tables); no paper of its own"),
    Record("adamw", "AdamW", 2019,
           Paper("I. Loshchilov and F. Hutter", "Decoupled weight decay regularization", "ICLR", 2019),
           ("adam",), "adaptive", ("adamw",)),
    Record("lamb", "LAMB", 2020,
           Paper("Y. You et al.", "Large batch optimization for deep learning: training BERT in 76 minutes",
                 "ICLR", 2020),
           ("adam", "lars"), "large batch", ("lamb",)),
)

#: Every record by key, oldest first.
RECORDS = {r.key: r for r in sorted(_RECORDS, key=lambda r: r.year)}


def for_optimizer(name) -> Record:
    """The record of the optimizer registered as ``name`` (case-insensitive, as :func:`mxopt.create` reads it).

    >>> for_optimizer('ccsgd').key
    'sgd'
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a registered optimizer's name (str), got {type(name).__name__}")
    for record in RECORDS.values():
        if name.lower() in record.registered:
            return record
    raise ValueError(f"no record registers {name!r}; registered names with records: "
                     f"{sorted(n for r in RECORDS.values() for n in r.registered)}")


def _record(key):
    if key not in RECORDS:
        raise ValueError(f"unknown record {key!r}; the records are {list(RECORDS)}")
    return RECORDS[key]


def topological_order(records=None) -> list:
    """The keys ordered so that every parent comes before its children (ties: by year, then key).

    Raises ValueError on a cycle or on a parent that is not a record.
    """
    records = RECORDS if records is None else records
    waiting = {key: set(r.parents) for key, r in records.items()}
    for key, parents in waiting.items():
        missing = parents - set(records)
        if missing:
            raise ValueError(f"record {key!r} names parents {sorted(missing)} that are not records")
    order = []
    while waiting:
        ready = sorted((k for k, p in waiting.items() if not p), key=lambda k: (records[k].year, k))
        if not ready:
            raise ValueError(f"the parent links form a cycle among {sorted(waiting)}")
        for key in ready:
            order.append(key)
            del waiting[key]
        for parents in waiting.values():
            parents.difference_update(ready)
    return order


def ancestors(key) -> list:
    """Every record ``key`` descends from (not itself), parents before children."""
    seen, todo = set(), list(_record(key).parents)
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(RECORDS[k].parents)
    return [RECORDS[k] for k in topological_order() if k in seen]


def descendants(key) -> list:
    """Every record that descends from ``key`` (not itself), parents before children."""
    _record(key)
    found = set()
    for k in topological_order():
        if any(p == key or p in found for p in RECORDS[k].parents):
            found.add(k)
    return [RECORDS[k] for k in topological_order() if k in found]


# ---------------------------------------------------------------------------
# The map
# ---------------------------------------------------------------------------

#: The year the horizontal scale counts back from: x = -log(HORIZON - year), so recent years get more room.
HORIZON = 2023


def _x(year):
    return -math.log(HORIZON - year)


#: Colour of each family on the map (Okabe-Ito, with a dark olive instead of the palette's pale yellow).
COLOURS = dict(zip(FAMILIES, ("#56B4E9", "#7F7F1F", "#0072B2", "#E69F00", "#CC79A7", "#009E73", "#D55E00",
                              "#000000")))


def _half_width(record, char_width):
    """Half the width of a record's label, in the map's x units (an estimate from its longest line)."""
    return 0.5 * char_width * max(len(record.name), 4) + 0.05


def _rows(records, char_width):
    """Row of every record: families top to bottom, each family on as few rows as keep its labels apart."""
    row_of, top = {}, 0
    for family in FAMILIES:
        ends = []                      # the right edge of the last label on each row of this family
        for r in sorted((r for r in records if r.family == family), key=lambda r: (r.year, r.key)):
            left = _x(r.year) - _half_width(r, char_width)
            slot = next((i for i, end in enumerate(ends) if left >= end), len(ends))
            if slot == len(ends):
                ends.append(None)
            ends[slot] = _x(r.year) + _half_width(r, char_width)
            row_of[r.key] = top + slot
        top += max(len(ends), 1)
    return row_of, top


def draw_map(ax=None, *, highlight=(), char_width=0.036, figsize=(12.0, 6.0)):
    """Draw the map of :data:`RECORDS`: years on the horizontal axis, a band per family, parent → child arrows.

    The horizontal position of a record is :math:`-\\log(2023 - \\text{year})`
    (the ticks show years), which gives the crowded last decade most of the
    width; Cauchy's 1847 sits at the far left.  Records of one family share a
    band and take a second or third row of it where their labels would
    overlap (``char_width``: the width of a character in x units, for the
    default size).  Records the package registers are drawn in solid boxes,
    ideas it runs only as an option (or not at all) in dashed ones; the keys
    in ``highlight`` get a thick border.  Returns the axes.

    Example::

        >>> import matplotlib; matplotlib.use("Agg")
        >>> from matplotlib.text import Annotation
        >>> ax = draw_map()
        >>> sum(isinstance(t, Annotation) for t in ax.texts) == sum(len(r.parents) for r in RECORDS.values())
        True
    """
    import matplotlib.pyplot as plt

    records = list(RECORDS.values())
    row_of, n_rows = _rows(records, char_width)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    colour = COLOURS
    where = {r.key: (_x(r.year), -row_of[r.key]) for r in records}
    boxes = {}
    for r in records:
        box = dict(boxstyle="round,pad=0.3", fc="white", ec=colour[r.family],
                   lw=2.6 if r.key in highlight else 1.2, ls="-" if r.registered else "--")
        boxes[r.key] = ax.text(*where[r.key], f"{r.name}\n{r.year}", ha="center", va="center", fontsize=7.5,
                               bbox=box, zorder=3).get_bbox_patch()
    for r in records:
        for p in r.parents:
            ax.annotate("", xy=where[r.key], xytext=where[p], zorder=2,
                        arrowprops=dict(arrowstyle="-|>", color="0.5", lw=0.8, shrinkA=1, shrinkB=1,
                                        patchA=boxes[p], patchB=boxes[r.key], connectionstyle="arc3,rad=0.06"))
    for family in FAMILIES:
        rows = [row_of[r.key] for r in records if r.family == family]
        ax.axhspan(-max(rows) - 0.5, -min(rows) + 0.5, color=colour[family], alpha=0.07, lw=0)
        ax.text(1.005, -(min(rows) + max(rows)) / 2, family, transform=ax.get_yaxis_transform(), ha="left",
                va="center", fontsize=8.5, color=colour[family], fontweight="bold")
    ticks = [1847, 1950, 1980, 2000, 2010, 2014, 2017, 2019, 2020]
    ax.set_xticks([_x(t) for t in ticks], [str(t) for t in ticks])
    ax.set_xlim(_x(1847) - 0.35, _x(2020) + 0.3)
    ax.set_ylim(-n_rows + 0.5, 0.5)
    ax.set_yticks([])
    ax.set_xlabel("year of the paper (scale: $-\\log(2023 - \\mathrm{year})$)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return ax
