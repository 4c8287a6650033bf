"""Pictures for the guide: contour maps, optimizer paths, loss curves and animations.

Every function accepts the problems of :mod:`mxopt.problems` (anything with
``f(x, y)``, ``bounds``, ``minimum``, ``log_levels`` and ``name``) and the
arrays its drivers return.  Functions that draw into one set of axes take an
optional ``ax`` and return the :class:`~matplotlib.axes.Axes` they drew on
(``ax.figure`` is the figure); when ``ax`` is None they open a new pyplot
figure, which Jupyter shows inline.  Nothing here calls ``plt.show()``.

Animations are drawn on a bare :class:`~matplotlib.figure.Figure` that pyplot
does not know about, so a notebook shows only the animation (via
:func:`animation_html`), never a stray static copy.  They are rendered by
blitting: the contour map is drawn once and each frame only adds the moving
paths (:class:`PathAnimation`).

Colours follow the Okabe–Ito palette, which stays distinguishable under the
common forms of colour blindness (M. Okabe and K. Ito, "Color Universal
Design", 2008, https://jfly.uni-koeln.de/color/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import cycle

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.animation import FuncAnimation
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

__all__ = [
    "PALETTE",
    "MAX_FRAMES",
    "contour_levels",
    "contour",
    "plot_trajectories",
    "plot_losses",
    "divergence_step",
    "mark_divergence",
    "plot_rate_check",
    "plot_fit_histories",
    "annotated_heatmap",
    "animate_trajectories",
    "PathAnimation",
    "animation_html",
    "compare_grid",
]

#: Okabe–Ito colours, reordered so the first few contrast best on a light background.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

#: Default cap on the number of animation frames (keeps the HTML around a megabyte).
MAX_FRAMES = 60

# A light grey ramp for the filled contours: dark enough to read the landscape,
# light enough that coloured paths stay visible on top of it.
_BACKGROUND = ListedColormap(np.linspace(1.0, 0.78, 64)[:, None].repeat(3, axis=1), name="mxopt_grey")


def _new_axes(ax, figsize):
    """Return ``ax``, or the axes of a new pyplot figure (imported lazily) when it is None."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _grid(problem, resolution: int):
    """Evaluate ``problem.f`` on a ``resolution`` × ``resolution`` grid spanning its bounds."""
    (xmin, xmax), (ymin, ymax) = problem.bounds
    X, Y = np.meshgrid(np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution))
    return X, Y, problem.f(X, Y)


def contour_levels(Z: np.ndarray, n: int = 20, log: bool = True, *, low_fraction: float = 0.005) -> np.ndarray:
    r"""``n`` increasing contour levels for the values ``Z`` (e.g. a grid of function values).

    With ``log`` the *heights above the lowest value*, :math:`z - z_{\min}`,
    of the levels form a geometric sequence from :math:`h_0` up to
    :math:`z_{\max} - z_{\min}`, where :math:`h_0` is the height below which
    only a fraction ``low_fraction`` of the values lie.  Log spacing resolves
    narrow valleys and flat basins; measuring heights from :math:`z_{\min}`
    works whether the minimum value is zero, positive or negative; and picking
    :math:`h_0` from the data adapts the range (two decades for a round bowl,
    six for Beale's function) to the picture.  Without ``log`` the levels are
    evenly spaced strictly between the extremes.
    """
    Z = np.asarray(Z, dtype=np.float64)
    zmin, zmax = float(np.nanmin(Z)), float(np.nanmax(Z))
    span = zmax - zmin if zmax > zmin else 1.0
    if not log:
        return np.linspace(zmin, zmin + span, n + 2)[1:-1]
    lowest = float(np.nanquantile(Z - zmin, low_fraction))
    if not 0.0 < lowest < span:
        lowest = 1e-5 * span
    return zmin + np.geomspace(lowest, span, n)


def _set_view(ax, problem) -> None:
    """Limit the axes to the problem's bounds; use equal scales unless the box is very elongated."""
    (xmin, xmax), (ymin, ymax) = problem.bounds
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ratio = (xmax - xmin) / (ymax - ymin)
    if 1 / 3 <= ratio <= 3:
        ax.set_aspect("equal")


def contour(
    problem,
    ax=None,
    levels: int | Sequence[float] = 20,
    *,
    resolution: int = 200,
    filled: bool = True,
    cmap=None,
    mark_minimum: bool = True,
    figsize=(5.0, 4.0),
):
    """Draw the contour map of a 2-D problem over its bounds and return the axes.

    ``levels`` is a number of levels (placed by :func:`contour_levels`,
    log-spaced when ``problem.log_levels``) or explicit level values.  Filled
    bands use a light grey ramp (or ``cmap``) under thin grey contour lines.
    The global minimum is marked with a star (labelled "minimum" for the
    legend) and a saddle point, if the problem has one, with a cross.  Markers
    are scatter collections, so ``ax.lines`` is left to the optimizer paths.
    """
    ax = _new_axes(ax, figsize)
    X, Y, Z = _grid(problem, resolution)
    if np.ndim(levels) == 0:
        levels = contour_levels(Z, int(levels), getattr(problem, "log_levels", True))
    levels = np.asarray(levels, dtype=np.float64)
    if filled:
        cmap = _BACKGROUND if cmap is None else colormaps[cmap] if isinstance(cmap, str) else cmap
        norm = BoundaryNorm(levels, ncolors=cmap.N, extend="both")
        ax.contourf(X, Y, Z, levels=levels, cmap=cmap, norm=norm, extend="both")
    ax.contour(X, Y, Z, levels=levels, colors="0.4", linewidths=0.5, alpha=0.6)
    if mark_minimum and problem.minimum is not None:
        x, y = problem.minimum
        ax.scatter([x], [y], marker="*", s=160, color="gold", edgecolors="black", linewidths=0.8, zorder=4, label="minimum")
    saddle = getattr(problem, "saddle_point", None)
    if mark_minimum and saddle is not None:
        ax.scatter([saddle[0]], [saddle[1]], marker="x", s=60, color="black", zorder=4, label="saddle point")
    x_label, y_label = getattr(problem, "axis_labels", ("x", "y"))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    _set_view(ax, problem)
    return ax


def _draw_path(ax, path: np.ndarray, label: str, color: str, markersize: float) -> None:
    """One optimizer path: a line through the iterates, a hollow circle at the start, a cross at the end."""
    ax.plot(path[:, 0], path[:, 1], "-o", color=color, lw=1.3, ms=markersize, alpha=0.9, label=label, zorder=3)
    ax.scatter(*path[0], marker="o", s=50, facecolors="white", edgecolors=color, linewidths=1.5, zorder=5)
    ax.scatter(*path[-1], marker="X", s=70, color=color, edgecolors="white", linewidths=0.6, zorder=5)


def plot_trajectories(
    problem,
    trajectories: Mapping[str, np.ndarray],
    ax=None,
    title: str | None = None,
    *,
    markersize: float = 2.5,
    legend: bool = True,
    figsize=(5.0, 4.0),
    **contour_kw,
):
    """Draw the contour map of ``problem`` and one path per entry of ``trajectories``; return the axes.

    ``trajectories`` maps a legend label to an array of shape ``(steps + 1, 2)``
    (as returned by :func:`mxopt.problems.trajectory` or
    :func:`~mxopt.problems.run_optimizer`).  Each path is one line with small
    markers at the iterates (so ``len(ax.lines) == len(trajectories)``), a hollow
    circle at the start and a cross at the end.  The view stays on
    ``problem.bounds`` even if a path leaves it.  Extra keywords go to
    :func:`contour`.
    """
    ax = contour(problem, ax, figsize=figsize, **contour_kw)
    for (label, path), color in zip(trajectories.items(), cycle(PALETTE)):
        _draw_path(ax, np.asarray(path, dtype=np.float64), label, color, markersize)
    _set_view(ax, problem)
    ax.set_title(problem.name if title is None else title)
    if legend:
        ax.legend(loc="best", fontsize="small", framealpha=0.85)
    return ax


def plot_losses(
    histories: Mapping[str, np.ndarray],
    ax=None,
    log: bool = True,
    xlabel: str = "step",
    ylabel: str = "loss",
    *,
    baseline: float | None = None,
    smooth: int | None = None,
    title: str | None = None,
    figsize=(5.5, 3.5),
    mark_diverged: bool = False,
):
    """Draw one loss curve per entry of ``histories`` (label → 1-D array) and return the axes.

    Entry ``k`` of a history is plotted at ``x = k``.  With ``baseline`` the
    curves show ``loss - baseline`` (e.g. the optimal loss, to see the rate at
    which the gap closes; ``ylabel`` then defaults to "loss − baseline").  On
    a log scale (the default) non-positive values and NaNs, such as the tail
    of a diverged run, are left out rather than clipped.  One line per history,
    so ``len(ax.lines) == len(histories)``; with ``smooth = n`` (e.g. the
    number of steps in an epoch) the per-step curves are drawn faint and a
    second, bold line per history shows their moving average over the last
    ``n`` steps, so ``len(ax.lines) == 2 * len(histories)``.

    A diverged run leaves little or nothing to see (its loss overflows within a
    few steps, far above any sensible axis limit).  With ``mark_diverged`` each
    history that stops being finite gets " (diverged at step k)" added to its
    legend label and a marker at the top edge of the axes above step ``k``
    (see :func:`mark_divergence`).
    """
    ax = _new_axes(ax, figsize)
    handles = []
    if mark_diverged:
        diverged = {label: divergence_step(history) for label, history in histories.items()}
        histories = {
            label if diverged[label] is None else f"{label} (diverged at step {diverged[label]})": history
            for label, history in histories.items()
        }
    for (label, history), color in zip(histories.items(), cycle(PALETTE)):
        y = np.asarray(history, dtype=np.float64)
        if baseline is not None:
            y = y - baseline
        faint = dict(alpha=0.3, lw=0.8) if smooth else dict(lw=1.4)
        handles += ax.plot(np.arange(len(y)), _positive(y) if log else y, color=color, label=label, **faint)
        if smooth:
            average = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            handles[-1] = ax.plot(np.arange(smooth - 1, len(y)), _positive(average) if log else average,
                                  color=color, lw=2.2, label=label)[0]
    if log:
        ax.set_yscale("log")
    if baseline is not None and ylabel == "loss":
        ylabel = "loss − baseline"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if title is not None:
        ax.set_title(title)
    legend_title = f"thin: every step; thick: mean of the last {smooth}" if smooth else None
    ax.legend(handles=handles, fontsize="small", title=legend_title, title_fontsize="small")
    if mark_diverged:
        mark_divergence(ax, histories)
    return ax


def divergence_step(history) -> int | None:
    """Index of the first entry of ``history`` that is not finite (NaN or ±inf), or None if all are.

    The drivers of :mod:`mxopt.problems` stop a run whose weights leave the
    finite numbers (or a large bound) and fill the rest of its loss history
    with NaN, so this is the step at which the run diverged.
    """
    bad = ~np.isfinite(np.asarray(history, dtype=np.float64))
    return int(np.argmax(bad)) if bad.any() else None


def mark_divergence(ax, histories: Mapping[str, np.ndarray], *, y: float = 0.97, spacing: float = 0.08) -> dict:
    """Mark on ``ax`` where each history of ``histories`` diverged; return ``{label: step}`` for those that did.

    For each history whose :func:`divergence_step` is ``k``, an upward
    triangle is drawn at ``x = k`` on the top edge of the axes (``y`` is a
    fraction of the axes' height, so the mark stays in view whatever the
    y-limits are set to later) with the note "diverged at step k", in the
    colour :func:`plot_losses` gives that history (the palette in the order
    of ``histories``).  Notes of several diverged runs are stacked ``spacing``
    apart.  The marks are a scatter collection and a text, not lines, so
    ``ax.lines`` keeps one entry per curve.
    """
    where = blended_transform_factory(ax.transData, ax.transAxes)
    steps = {}
    for (label, history), color in zip(histories.items(), cycle(PALETTE)):
        k = divergence_step(history)
        if k is None:
            continue
        height = y - spacing * len(steps)
        steps[label] = k
        ax.scatter([k], [height], marker="^", s=70, color=color, edgecolors="black", linewidths=0.6,
                   transform=where, clip_on=False, zorder=6)
        ax.annotate(f"diverged at step {k}", (k, height), xycoords=where, xytext=(8, 0), textcoords="offset points",
                    va="center", color=color, fontsize="small", fontweight="bold")
    return steps


def plot_rate_check(
    errors: Mapping[str, np.ndarray],
    rates: Mapping[str, float],
    ax=None,
    *,
    reference: bool = True,
    title: str | None = None,
    xlabel: str = "update t",
    figsize=(5.5, 3.5),
):
    r"""Divide each error history by its predicted geometric decay and draw what is left; return the axes.

    ``errors[label][t]`` is an error after ``t`` updates (e.g. the distance to
    the minimiser) and ``rates[label]`` the rate :math:`\rho` that theory
    predicts.  Each line shows :math:`e_t / (e_0 \rho^t)` for
    :math:`t \ge 1` on log–log axes.  If the error decays exactly like
    :math:`\rho^t` the line is flat at one; at a double root of a linear
    recursion's characteristic polynomial the error is :math:`(A + Bt)\rho^t`
    and the line bends up into a slope of one; a rate that theory
    underestimates shows as exponential growth.  With ``reference`` a dotted
    grey line :math:`\propto t` is drawn for comparison (one more entry in
    ``ax.lines``, after the data).
    """
    ax = _new_axes(ax, figsize)
    t_max = 1
    for (label, error), color in zip(errors.items(), cycle(PALETTE)):
        e = np.asarray(error, dtype=np.float64)
        t = np.arange(1, len(e))
        ax.plot(t, e[1:] / (e[0] * float(rates[label]) ** t), color=color, lw=1.6, label=label)
        t_max = max(t_max, len(e) - 1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if reference:
        t = np.array([1.0, t_max])
        ax.plot(t, t, ":", color="0.4", lw=1.2, label=r"$\propto t$")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$e_t \,/\, (e_0\, \rho^t)$")
    ax.grid(True, which="major", alpha=0.3)
    if title is not None:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_fit_histories(
    histories: Mapping[str, object],
    steps_per_epoch: int,
    *,
    title: str | None = None,
    test_images: int | None = None,
    accuracy_ylim=(0.5, 1.0),
    figsize=(11.0, 3.8),
):
    """Two panels for runs of :func:`mxopt.models.fit`: the per-step loss (smoothed) and the test accuracy per epoch.

    ``histories`` maps a legend label to a :class:`mxopt.models.History`
    recorded with ``record_steps=True`` (it needs ``step_loss``, the mini-batch
    loss before each update, and ``test_accuracy``, one entry per epoch
    starting with the untrained model).  The left panel is
    :func:`plot_losses` with ``smooth=steps_per_epoch`` (faint per-step curves
    under their moving average over one epoch); the right one plots the test
    accuracy against the epoch, one line with markers per run, in the same
    colours.  ``title`` heads the left panel (e.g. the data set and model);
    ``test_images`` names the test-set size in the right panel's title.
    Returns the figure; ``fig.axes`` is ``[loss_axes, accuracy_axes]``.

    Example::

        >>> from mxopt import datasets, models
        >>> data = datasets.digits()
        >>> net = models.softmax_regression(data.n_features, data.n_classes)
        >>> runs = {"SGD": models.fit(net, None, data, "sgd", {"learning_rate": 0.1}, epochs=2, record_steps=True)}
        >>> fig = plot_fit_histories(runs, steps_per_epoch=-(-data.n_train // 32))
        >>> [len(ax.lines) for ax in fig.axes]
        [2, 1]
    """
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    plot_losses({label: h.step_loss for label, h in histories.items()}, ax=ax1, smooth=steps_per_epoch,
                xlabel=f"update ({steps_per_epoch} per epoch)", ylabel="mini-batch loss $f$",
                title="training loss" if title is None else f"{title}: training loss")
    for (label, h), color in zip(histories.items(), cycle(PALETTE)):
        ax2.plot(np.arange(len(h.test_accuracy)), h.test_accuracy, "-o", ms=3, color=color, label=label)
    where = "on the test set" if test_images is None else f"on the {test_images} test images"
    ax2.set(xlabel="epoch", ylabel="test accuracy", ylim=accuracy_ylim, title=f"accuracy {where}")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize="small", loc="lower right")
    return fig


def annotated_heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    ax=None,
    *,
    text: Callable[[int, int], str] | None = None,
    color_values: np.ndarray | None = None,
    cmap="viridis_r",
    vmin: float | None = None,
    vmax: float | None = None,
    dark_above: float | None = None,
    fontsize: float = 7,
    figsize=(5.5, 4.4),
):
    """Draw a grid of results (e.g. a loss per learning rate × weight decay) as an image with a note in each cell.

    ``values[i, j]`` is the result in row ``i`` (``row_labels[i]``, drawn
    bottom to top) and column ``j``.  The cells are coloured by
    ``color_values`` (default ``values``; pass e.g. ``np.log10(values)`` for
    a log colour scale) between ``vmin`` and ``vmax``, and each cell carries
    ``text(i, j)`` (default: ``values[i, j]`` to two decimals), in white where
    ``values[i, j] > dark_above`` (dark cells of the default colour map) and
    black elsewhere.  Returns the :class:`~matplotlib.image.AxesImage`, for a
    colour bar (``image.axes`` is the axes).

    Example::

        >>> loss = np.array([[0.3, 0.2], [0.9, 0.4]])
        >>> image = annotated_heatmap(loss, ["0.01", "0.1"], ["1e-4", "1e-3"], dark_above=0.5)
        >>> [t.get_text() for t in image.axes.texts]
        ['0.30', '0.20', '0.90', '0.40']
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values must have shape (len(row_labels), len(col_labels)) = "
                         f"{(len(row_labels), len(col_labels))}, got {values.shape}")
    ax = _new_axes(ax, figsize)
    shade = values if color_values is None else np.asarray(color_values, dtype=np.float64)
    image = ax.imshow(shade, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            note = f"{values[i, j]:.2f}" if text is None else text(i, j)
            dark = dark_above is not None and values[i, j] > dark_above
            ax.text(j, i, note, ha="center", va="center", fontsize=fontsize, color="white" if dark else "black")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    return image


def _positive(y):
    """``y`` with non-positive values (and NaNs) hidden, for a log scale."""
    return np.where(y > 0, y, np.nan)


def _frame_indices(n_points: int, frames: int | None) -> np.ndarray:
    """At most ``frames`` (default :data:`MAX_FRAMES`) step numbers spread evenly over ``0 .. n_points - 1``."""
    frames = min(n_points, MAX_FRAMES if frames is None else frames)
    return np.unique(np.linspace(0, n_points - 1, max(frames, 1)).round().astype(int))


def animate_trajectories(
    problem,
    trajectories: Mapping[str, np.ndarray],
    frames: int | None = None,
    interval: float = 100,
    fps: float | None = None,
    *,
    title: str | None = None,
    figsize=None,
    dpi: float = 72,
) -> PathAnimation:
    """Animate the paths of ``trajectories`` being traced over the contour map of ``problem``.

    The animation has at most ``frames`` frames (default :data:`MAX_FRAMES`);
    for longer paths each frame advances several steps, evenly spread, so the
    whole run is shown.  Frames are ``interval`` milliseconds apart (``fps``, if
    given, overrides it: ``interval = 1000 / fps``).  A path shorter than the
    others stays at its last point.

    The figure is a bare :class:`~matplotlib.figure.Figure` (small, ``dpi`` 72),
    not registered with pyplot, so a notebook displays nothing until the
    animation is rendered, e.g. with :func:`animation_html`. By default it is
    wide for a wide plotting box (such as an ill-conditioned quadratic's) and
    nearly square otherwise.  The moving parts (one trail and one head per
    path, and the step counter) are *animated* artists: the contour map,
    legend and axes are drawn once and every frame only redraws those
    (see :class:`PathAnimation`).

    Example::

        >>> from mxopt import problems, SGD
        >>> q = problems.Quadratic()
        >>> anim = animate_trajectories(q, {"GD": problems.run_optimizer(SGD(learning_rate=0.05), q, steps=30)})
        >>> anim.n_frames
        31
        >>> html = animation_html(anim)   # display with IPython.display.HTML(html)
    """
    if figsize is None:
        (x0, x1), (y0, y1) = problem.bounds
        figsize = (6.4, 3.4) if (x1 - x0) > 1.5 * (y1 - y0) else (4.4, 3.8)
    paths = {label: np.asarray(path, dtype=np.float64) for label, path in trajectories.items()}
    steps = _frame_indices(max(len(p) for p in paths.values()), frames)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = contour(problem, fig.add_subplot())
    ax.set_title(problem.name if title is None else title)
    lines = []
    for (label, path), color in zip(paths.items(), cycle(PALETTE)):
        ax.scatter(*path[0], marker="o", s=40, facecolors="white", edgecolors=color, linewidths=1.3, zorder=5)
        (trail,) = ax.plot([], [], "-", color=color, lw=1.5, label=label, zorder=3)
        (head,) = ax.plot([], [], "o", color=color, ms=6, mec="white", mew=0.8, zorder=6)
        lines.append((path, trail, head))
    counter = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", fontsize="small")
    ax.legend(loc="lower right", fontsize="x-small", framealpha=0.85)
    # Lay the figure out once, then freeze it: the frames only move lines.
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    moving = [artist for _, trail, head in lines for artist in (trail, head)] + [counter]

    def draw(frame: int):
        k = steps[frame]
        for path, trail, head in lines:
            j = min(k, len(path) - 1)
            trail.set_data(path[: j + 1, 0], path[: j + 1, 1])
            head.set_data(path[j : j + 1, 0], path[j : j + 1, 1])
        counter.set_text(f"step {k}")
        return moving

    if fps is not None:
        interval = 1000.0 / fps
    return PathAnimation(fig, draw, len(steps), interval, moving)


class PathAnimation(FuncAnimation):
    """A :class:`~matplotlib.animation.FuncAnimation` whose frames differ only in a few *animated* artists.

    ``draw(i)`` updates the moving artists for frame ``i`` and returns them;
    every other artist of ``fig`` is static.  Such an animation can be
    rendered by *blitting*: the static picture is rasterised once, and each
    frame restores that background and draws only the moving artists on top
    (:meth:`frames_jpeg`).  That is what :meth:`to_jshtml` (and hence
    :func:`animation_html` and Jupyter's display of the object) does; the
    generic Matplotlib path re-draws and re-lays out the whole figure
    (contours, ticks, legend) for every frame, which for the guide's
    animations was over 20 times slower (60 frames: 1.2 s instead of 28 s,
    measured on the guide's two-core build machine).  The pictures are the same.
    """

    def __init__(self, fig, draw, n_frames: int, interval: float, moving):
        self.n_frames = int(n_frames)
        self.moving = list(moving)
        self.draw_frame = draw
        for artist in self.moving:
            artist.set_animated(True)  # left out of full draws: only blitted
        super().__init__(fig, draw, frames=self.n_frames, interval=interval, blit=True, cache_frame_data=False)

    def iter_frames(self):
        """Render the frames by blitting; yield each as an RGB array of shape (height, width, 3), uint8."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = self._fig
        canvas = FigureCanvasAgg(fig)
        canvas.draw()  # the static picture: animated artists are skipped
        background = canvas.copy_from_bbox(fig.bbox)
        for i in range(self.n_frames):
            canvas.restore_region(background)
            for artist in self.draw_frame(i):
                fig.draw_artist(artist)
            yield np.asarray(canvas.buffer_rgba())[:, :, :3].copy()

    def frames_jpeg(self, quality: int = 80) -> list[bytes]:
        """Every frame of :meth:`iter_frames` as a JPEG file (bytes), in order."""
        from io import BytesIO

        from PIL import Image

        frames = []
        for rgb in self.iter_frames():
            out = BytesIO()
            Image.fromarray(rgb).save(out, format="jpeg", quality=quality)
            frames.append(out.getvalue())
        return frames

    def to_jshtml(self, fps=None, embed_frames=True, default_mode=None):
        """A self-contained HTML player of the blitted frames (see :func:`animation_html`); loops by default."""
        interval = self._interval if fps is None else 1000.0 / fps
        return _player_html(self.frames_jpeg(), interval, loop=default_mode in (None, "loop"))


def _player_html(frames: Sequence[bytes], interval: float, loop: bool = True) -> str:
    """A small HTML/JavaScript player: the JPEG ``frames`` embedded as data URIs, a slider and play/pause."""
    import base64
    import json
    import uuid

    uid = "mxopt_anim_" + uuid.uuid4().hex
    uris = ["data:image/jpeg;base64," + base64.b64encode(frame).decode("ascii") for frame in frames]
    return f"""<div id="{uid}" style="display:inline-block">
<img style="display:block;max-width:100%" alt="animation">
<div style="font:12px sans-serif;display:flex;gap:6px;align-items:center">
<button type="button">&#10074;&#10074;</button><input type="range" min="0" max="{len(uris) - 1}" value="0" style="flex:1"></div>
<script>
(function() {{
  var root = document.getElementById("{uid}"), img = root.querySelector("img");
  var button = root.querySelector("button"), slider = root.querySelector("input");
  var frames = {json.dumps(uris)}, i = 0, timer = null, loop = {json.dumps(bool(loop))};
  function show(k) {{ i = k; img.src = frames[k]; slider.value = k; }}
  function tick() {{
    if (i + 1 < frames.length) show(i + 1); else if (loop) show(0); else stop();
  }}
  function play() {{ if (!timer) {{ timer = setInterval(tick, {float(interval):.1f}); button.innerHTML = "&#10074;&#10074;"; }} }}
  function stop() {{ clearInterval(timer); timer = null; button.innerHTML = "&#9654;"; }}
  button.onclick = function() {{ if (timer) stop(); else play(); }};
  slider.oninput = function() {{ stop(); show(+slider.value); }};
  show(0);
  play();
}})();
</script>
</div>"""


def animation_html(anim: FuncAnimation) -> str:
    """Render ``anim`` to a self-contained, looping HTML/JavaScript player; display it with ``IPython.display.HTML``.

    An animation from :func:`animate_trajectories` is rendered by blitting
    (:meth:`PathAnimation.to_jshtml`), about 0.02 s a frame instead of 0.4 s.
    Frames are embedded as JPEG, which is about a third the size of PNG for
    these pictures (thin antialiased contour lines compress poorly as PNG);
    with the defaults of :func:`animate_trajectories` the string is around a
    megabyte.  Any other :class:`~matplotlib.animation.FuncAnimation` goes
    through Matplotlib's own ``to_jshtml`` with JPEG frames.
    """
    if isinstance(anim, PathAnimation):
        return anim.to_jshtml()
    with rc_context({"animation.frame_format": "jpeg"}):
        return anim.to_jshtml(embed_frames=True, default_mode="loop")


def compare_grid(
    problems: Sequence,
    runs: Callable[[object], Mapping[str, np.ndarray]] | Mapping[str, Callable[[object], np.ndarray]],
    *,
    size: float = 3.6,
    title: str | None = None,
) -> Figure:
    """One row of subplots, one per problem, each showing several optimizers' paths; return the figure.

    ``runs`` is either a function ``problem -> {label: path}`` or a mapping
    ``{label: function problem -> path}``, e.g.
    ``{"SGD": lambda p: run_optimizer(SGD(learning_rate=0.01), p)}``.
    A single legend for the whole figure is drawn below the row.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(problems), figsize=(size * len(problems), size + 0.6), layout="constrained", squeeze=False)
    for ax, problem in zip(axes[0], problems):
        paths = runs(problem) if callable(runs) else {label: run(problem) for label, run in runs.items()}
        plot_trajectories(problem, paths, ax=ax, legend=False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return fig
