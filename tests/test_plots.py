"""The figures carry what a reader needs: normalised rates with a colour bar, values and names
where they fit, the most-confused classes where they do not, curves one can read at 1 epoch."""

import numpy as np

from cnn3d.evaluation import plots


def confusion_of(n, seed=0):
    rng = np.random.default_rng(seed)
    matrix = np.zeros((n, n), dtype=int)
    for t in range(n):
        matrix[t, t] = 3
        matrix[t, rng.integers(0, n)] += 1
    return matrix


def test_small_confusion_is_row_normalised_with_values_names_and_a_colour_bar():
    matrix = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 0]])  # class 2 has no videos
    fig = plots.confusion_figure(matrix, ["jump", "run", "swim"], "t")
    ax, bar = fig.axes  # the matrix and its colour bar
    assert bar.get_ylabel() == "fraction of the true class"
    assert np.allclose(ax.images[0].get_array(), [[0.75, 0.25, 0], [0, 0.5, 0.5], [0, 0, 0]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["jump", "run", "swim"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.25", "0.50", "0.50", "0.75"]


def test_large_confusions_keep_names_up_to_120_then_add_the_most_confused(tmp_path):
    fig = plots.confusion_figure(confusion_of(101), [f"c{i}" for i in range(101)], "t")
    assert len(fig.axes[0].get_yticklabels()) == 101 and not fig.axes[0].texts
    assert fig.get_size_inches()[1] > 20  # a bigger figure, so the names can be read
    names = [f"c{i}" for i in range(400)]
    matrix = confusion_of(400)
    matrix[17, 17], matrix[17, 3] = 0, 5  # class 17 is always wrong
    per_class = [{"class": n, "videos": 4, "correct": 3, "accuracy": 0.75} for n in names]
    written = plots.write_test_figures(tmp_path, matrix, per_class, names, "t")
    assert [p.name for p in written] == ["confusion.png", "confusion_top30.png", "per_class.png"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert 17 in plots.most_confused(matrix) and len(plots.most_confused(matrix)) == 30
    fig = plots.confusion_figure(matrix, names, "t")
    assert not fig.axes[0].get_xticklabels()  # 400 names would be unreadable


def test_per_class_bars_are_sorted():
    rows = [
        {"class": "a", "videos": 2, "correct": 2, "accuracy": 1.0},
        {"class": "b", "videos": 2, "correct": 0, "accuracy": 0.0},
        {"class": "c", "videos": 0, "correct": 0, "accuracy": float("nan")},
    ]
    ax = plots.per_class_figure(rows, "t").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a"]


def test_curves_read_at_one_epoch_with_markers_integer_epochs_and_a_log_loss(tmp_path):
    train = {"epoch": [1.0], "loss": [2.3], "acc": [0.1]}
    val = {"epoch": [1.0], "loss": [2.5], "acc": [0.12], "video_acc": [0.15]}
    fig = plots.curves_figure(train, val)
    linear, log, accuracy = fig.axes
    assert log.get_yscale() == "log" and linear.get_yscale() == "linear"
    for ax in fig.axes:
        assert list(ax.get_xticks()) == [1]
        assert all(line.get_marker() == "o" for line in ax.lines)
    assert len(accuracy.lines) == 3
    assert plots.write_curves(tmp_path) is None  # no epoch logged: no empty figure
    (tmp_path / "train.log").write_text("epoch\tloss\tacc\tlr\n1\t2.3\t0.1\t0.1\n")
    assert plots.write_curves(tmp_path) == tmp_path / "curves.png"


def test_class_names_no_font_has_are_said_once_not_warned_per_glyph(tmp_path, capsys):
    import warnings

    import cnn3d.evaluation.plots as plots

    plots._said_missing = False  # noqa: SLF001 - a fresh process's state
    names = ["跑步", "游泳"]
    clips = [
        {"segment": [1, 16], "time": [0.0, 0.5], "label": "跑步", "scores": [0.6, 0.4]},
        {"segment": [17, 32], "time": [0.5, 1.0], "label": "跑步", "scores": [0.6, 0.4]},
        {"segment": [33, 40], "time": [1.0, 1.3], "label": "游泳", "scores": [0.3, 0.7]},
    ]
    top = [{"label": "跑步", "score": 0.5}, {"label": "游泳", "score": 0.5}]
    entry = {"video": "v.mp4", "top_k": top, "clips": clips}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(2):
            plots.save(plots.timeline_figure(entry, names, 2), tmp_path / f"t{k}.png")
    glyph_warnings = [w for w in caught if "missing from font" in str(w.message)]
    err = capsys.readouterr().err
    if "note:" in err:  # no CJK font here: one note, naming the characters
        assert err.count("note:") == 1 and "跑" in err and not glyph_warnings
    else:  # a CJK font is installed: nothing to say
        assert not glyph_warnings
    assert (tmp_path / "t1.png").stat().st_size > 0
