"""Tests of mxopt.plot: the pictures have the expected parts, and animations stay small."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.animation import FuncAnimation  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mxopt import plot  # noqa: E402
from mxopt.problems import (  # noqa: E402
    TEST_FUNCTIONS,
    Quadratic,
    Rosenbrock,
    Saddle,
    make_regression,
    train_regression,
    trajectory,
)


def gradient_descent(lr):
    def step(p, g):
        p -= lr * g

    return step


LEARNING_RATES = {"Quadratic": 0.09, "Rosenbrock": 1e-3, "Beale": 1e-5, "Saddle": 0.1}


def paths(problem, steps=40):
    lr = LEARNING_RATES[problem.name]
    return {
        "GD": trajectory(gradient_descent(lr), problem, steps=steps),
        "GD, half the step": trajectory(gradient_descent(lr / 2), problem, steps=steps),
    }


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_contour_levels():
    Z = -3.0 + np.geomspace(1e-4, 1e3, 1001).reshape(7, 143)
    log = plot.contour_levels(Z, 12, log=True, low_fraction=0.01)
    heights = log - Z.min()
    assert len(log) == 12 and np.all(heights > 0)
    assert heights[-1] == pytest.approx(Z.max() - Z.min())
    assert np.mean(Z < log[0]) == pytest.approx(0.01, abs=0.002)
    np.testing.assert_allclose(np.diff(np.log(heights)), np.log(heights[1] / heights[0]))
    linear = plot.contour_levels(Z, 9, log=False)
    assert len(linear) == 9 and Z.min() < linear[0] and linear[-1] < Z.max()
    np.testing.assert_allclose(np.diff(linear), (Z.max() - Z.min()) / 10)
    flat = plot.contour_levels(np.zeros((3, 3)), 5)
    assert len(flat) == 5 and np.all(np.diff(flat) > 0)


@pytest.mark.parametrize("problem", TEST_FUNCTIONS + (make_regression(),), ids=lambda p: p.name)
def test_contour_frames_the_problem(problem):
    ax = plot.contour(problem)
    assert len(ax.lines) == 0  # markers are collections, lines are left to paths
    assert len(ax.collections) >= 3  # filled bands, contour lines, a marker
    (xmin, xmax), (ymin, ymax) = problem.bounds
    assert ax.get_xlim() == pytest.approx((xmin, xmax)) and ax.get_ylim() == pytest.approx((ymin, ymax))
    labels = [c.get_label() for c in ax.collections]
    assert ("minimum" in labels) == (problem.minimum is not None)
    assert ("saddle point" in labels) == isinstance(problem, Saddle)


def test_contour_into_given_axes_with_explicit_levels():
    fig, ax = plt.subplots()
    assert plot.contour(Quadratic(), ax, levels=[1.0, 2.0, 4.0], filled=False) is ax
    assert len(ax.collections) == 2  # lines and the minimum


@pytest.mark.parametrize("problem", TEST_FUNCTIONS, ids=lambda p: p.name)
def test_plot_trajectories_draws_one_line_per_path(problem):
    runs = paths(problem)
    ax = plot.plot_trajectories(problem, runs)
    assert len(ax.lines) == len(runs)
    assert [line.get_label() for line in ax.lines] == list(runs)
    for line, path in zip(ax.lines, runs.values()):
        np.testing.assert_array_equal(line.get_xydata(), path)
    assert set(runs) <= set(legend_texts(ax))
    assert ax.get_title() == problem.name
    assert ax.get_xlim() == pytest.approx(problem.bounds[0])


def test_plot_trajectories_keeps_the_view_when_a_path_diverges():
    q = Quadratic()
    ax = plot.plot_trajectories(q, {"too large": trajectory(gradient_descent(0.11), q, steps=100)}, title="diverges")
    assert ax.get_ylim() == pytest.approx(q.bounds[1])
    assert ax.get_title() == "diverges"
    ax.figure.canvas.draw()


def test_plot_trajectories_colours_are_distinct():
    runs = {f"run {i}": np.zeros((3, 2)) + i / 10 for i in range(5)}
    ax = plot.plot_trajectories(Quadratic(), runs, legend=False)
    assert len({line.get_color() for line in ax.lines}) == 5
    assert ax.get_legend() is None


def test_plot_losses():
    r = make_regression(n_samples=200)
    histories = {
        "batch 8": train_regression(gradient_descent(0.05), r, epochs=2, batch_size=8),
        "full batch": train_regression(gradient_descent(0.5), r, epochs=50, batch_size=None),
        "diverged": np.array([1.0, 10.0, 100.0, np.nan, np.nan]),
    }
    ax = plot.plot_losses(histories)
    assert len(ax.lines) == 3 and ax.get_yscale() == "log"
    assert legend_texts(ax) == list(histories)
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), np.arange(5))
    ax = plot.plot_losses(histories, log=False, xlabel="epoch", baseline=r.loss(r.solution()))
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "epoch" and "baseline" in ax.get_ylabel()
    ax.figure.canvas.draw()


def test_log_losses_leave_out_non_positive_values():
    ax = plot.plot_losses({"gap": np.array([1.0, 0.1, 0.0, -1e-17])})
    y = ax.lines[0].get_ydata()
    assert np.all(np.isnan(y[2:])) and y[1] == 0.1


def test_compare_grid():
    runs = {
        "GD": lambda p: trajectory(gradient_descent(LEARNING_RATES[p.name]), p, steps=30),
        "slow GD": lambda p: trajectory(gradient_descent(LEARNING_RATES[p.name] / 4), p, steps=30),
    }
    fig = plot.compare_grid(TEST_FUNCTIONS, runs, title="gradient descent")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(TEST_FUNCTIONS)
    assert [ax.get_title() for ax in fig.axes] == [p.name for p in TEST_FUNCTIONS]
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    assert len(fig.legends) == 1
    fig_callable = plot.compare_grid(TEST_FUNCTIONS[:2], paths)
    assert [len(ax.lines) for ax in fig_callable.axes] == [2, 2]


def test_animation_frames_are_capped_and_spread_over_the_run():
    r = Rosenbrock()
    runs = {"long": trajectory(gradient_descent(1e-3), r, steps=500), "short": trajectory(gradient_descent(1e-3), r, steps=20)}
    before = plt.get_fignums()
    anim = plot.animate_trajectories(r, runs, frames=25, fps=20)
    assert plt.get_fignums() == before  # not a pyplot figure: no static copy in notebooks
    assert isinstance(anim, FuncAnimation)
    steps = plot._frame_indices(501, 25)
    assert len(steps) == 25 and steps[0] == 0 and steps[-1] == 500
    assert anim._interval == pytest.approx(50.0)
    anim._init_draw()
    anim._draw_next_frame(24, blit=False)  # the last frame shows the whole of every path
    trails = [line for line in anim._fig.axes[0].lines if line.get_label() in runs]
    assert [len(t.get_xdata()) for t in trails] == [501, 21]
    assert plot._frame_indices(10, None).tolist() == list(range(10))
    assert len(plot._frame_indices(10_000, None)) == plot.MAX_FRAMES


def test_animation_html_is_small_and_self_contained():
    q = Quadratic()
    runs = paths(q, steps=150)
    anim = plot.animate_trajectories(q, runs)
    html = plot.animation_html(anim)
    assert isinstance(html, str)
    assert "<script" in html and "data:image/jpeg;base64" in html
    assert html.count("data:image/jpeg;base64") == plot.MAX_FRAMES
    assert len(html) < 2_000_000


def test_plot_losses_smooth_adds_a_moving_average_per_history():
    histories = {"a": np.linspace(1, 0.1, 50), "b": np.linspace(2, 0.2, 50)}
    ax = plot.plot_losses(histories, smooth=10)
    assert len(ax.lines) == 4
    average = ax.lines[1].get_ydata()
    np.testing.assert_allclose(average[0], histories["a"][:10].mean())
    assert ax.lines[0].get_alpha() == 0.3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]


def test_divergence_step_is_the_first_non_finite_entry():
    assert plot.divergence_step(np.array([3.0, 2.0, 1.0])) is None
    assert plot.divergence_step(np.array([1.0, 1e300, np.inf, np.nan])) == 2
    assert plot.divergence_step([1.0, np.nan]) == 1


def test_plot_losses_marks_a_diverged_run_above_the_axes_limits():
    histories = {"fine": np.geomspace(1.0, 1e-3, 30), "blows up": np.r_[10.0 ** np.arange(8), np.full(22, np.nan)]}
    ax = plot.plot_losses(histories, smooth=5, mark_diverged=True)
    ax.set_ylim(1e-4, 1e2)  # the run's last finite losses (up to 1e7) are off the chart
    assert len(ax.lines) == 4, "the marks are not lines"
    assert legend_texts(ax) == ["fine", "blows up (diverged at step 8)"]
    (mark,) = ax.collections
    x_data, y_axes = mark.get_offsets()[0]
    assert x_data == 8 and 0 < y_axes <= 1, "x in data, y in axes coordinates: in view whatever the y-limits"
    np.testing.assert_allclose(mark.get_facecolor()[0][:3], matplotlib.colors.to_rgb(plot.PALETTE[1]))
    assert [t.get_text() for t in ax.texts] == ["diverged at step 8"]
    ax.figure.canvas.draw()
    assert len(plot.plot_losses({"fine": histories["fine"]}, mark_diverged=True).collections) == 0


def test_mark_divergence_stacks_several_runs():
    _, ax = plt.subplots()
    nan = np.full(5, np.nan)
    steps = plot.mark_divergence(ax, {"a": np.r_[1.0, nan], "ok": np.ones(6), "b": np.r_[1.0, 2.0, 3.0, nan]})
    assert steps == {"a": 1, "b": 3}
    heights = [c.get_offsets()[0][1] for c in ax.collections]
    assert heights[0] > heights[1]


def test_plot_rate_check_divides_out_the_predicted_rate():
    t = np.arange(201)
    rho = 0.9
    errors = {"simple root": 3.0 * rho**t, "double root": (2.0 + 0.5 * t) * rho**t}
    ax = plot.plot_rate_check(errors, {"simple root": rho, "double root": rho})
    assert len(ax.lines) == 3 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), t[1:])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1 + 0.25 * t[1:], rtol=1e-12)
    assert legend_texts(ax) == ["simple root", "double root", r"$\propto t$"]
    assert len(plot.plot_rate_check(errors, {"simple root": rho, "double root": rho}, reference=False).lines) == 2


def test_blitted_frames_match_a_full_redraw():
    """PathAnimation draws the static picture once; each frame must look like a full draw of that frame."""
    from io import BytesIO

    from PIL import Image

    q = Quadratic()
    anim = plot.animate_trajectories(q, paths(q, steps=60), frames=12)
    assert isinstance(anim, plot.PathAnimation) and anim.n_frames == 12
    frames = list(anim.iter_frames())
    assert len(frames) == 12 and all(f.dtype == np.uint8 and f.ndim == 3 for f in frames)
    jpeg = anim.frames_jpeg()
    assert len(jpeg) == 12 and Image.open(BytesIO(jpeg[0])).size == frames[0].shape[1::-1]
    k = 7
    anim.draw_frame(k)
    for artist in anim.moving:
        artist.set_animated(False)
    buffer = BytesIO()
    anim._fig.savefig(buffer, format="png")
    full = np.asarray(Image.open(buffer).convert("RGB"))
    assert frames[k].shape == full.shape

    def mismatch(image):
        return (image != full).any(axis=2).mean()

    # Only the hollow start circles differ: the trails, drawn after them, now cover their centres.
    assert mismatch(frames[k]) < 0.002 and all(mismatch(frames[j]) > 5 * mismatch(frames[k]) for j in (0, k - 1, 11))


def test_animation_html_is_fast():
    import time

    q = Quadratic()
    runs = paths(q, steps=150)
    anim = plot.animate_trajectories(q, runs)
    start = time.perf_counter()
    html = plot.animation_html(anim)
    seconds = time.perf_counter() - start
    assert html.count("data:image/jpeg;base64") == plot.MAX_FRAMES
    assert seconds < 8.0, f"{plot.MAX_FRAMES} blitted frames took {seconds:.1f} s (a full redraw per frame takes ~20 s)"


def test_plot_fit_histories_draws_loss_and_accuracy_panels():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    runs = {
        "a": SimpleNamespace(step_loss=np.linspace(2, 0.2, 60) + 0.05 * rng.random(60), test_accuracy=np.linspace(0.1, 0.9, 4)),
        "b": SimpleNamespace(step_loss=np.linspace(2, 0.5, 60), test_accuracy=np.linspace(0.1, 0.7, 4)),
    }
    fig = plot.plot_fit_histories(runs, steps_per_epoch=20, title="toy", test_images=99)
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 4 and len(acc_ax.lines) == 2  # faint + smoothed per run; one accuracy line per run
    assert loss_ax.get_title() == "toy: training loss" and acc_ax.get_title() == "accuracy on the 99 test images"
    np.testing.assert_array_equal(acc_ax.lines[0].get_xdata(), np.arange(4))
    np.testing.assert_array_equal(acc_ax.lines[1].get_ydata(), runs["b"].test_accuracy)
    assert acc_ax.lines[0].get_color() == loss_ax.lines[1].get_color() == plot.PALETTE[0]
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["a", "b"]
    assert loss_ax.get_xlabel() == "update (20 per epoch)"
    plt.close(fig)


def test_annotated_heatmap_writes_one_note_per_cell():
    values = np.array([[0.3, 0.2, 0.1], [0.9, 0.4, 0.6]])
    image = plot.annotated_heatmap(values, ["r0", "r1"], ["c0", "c1", "c2"], color_values=np.log10(values),
                                   text=lambda i, j: f"{i}{j}", dark_above=0.5, vmin=-1, vmax=0)
    ax = image.axes
    assert [t.get_text() for t in ax.texts] == ["00", "01", "02", "10", "11", "12"]
    assert [t.get_color() for t in ax.texts] == ["black"] * 3 + ["white", "black", "white"]
    np.testing.assert_allclose(image.get_array(), np.log10(values))
    assert image.get_clim() == (-1, 0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["r0", "r1"]
    with pytest.raises(ValueError, match="shape"):
        plot.annotated_heatmap(values, ["r0"], ["c0", "c1", "c2"])
    plt.close(ax.figure)
