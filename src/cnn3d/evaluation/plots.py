"""Figures worth reading: the confusion matrix, per-class accuracy, training curves, and a video's
class probabilities over time.

Each `*_figure` function builds a matplotlib Figure (tests inspect it); `save` writes it
atomically. Confusion matrices are row-normalised (each true class sums to 1, so classes of
different sizes compare), with a colour bar; cell values are printed up to 30 classes, tick
labels up to 120 (the figure grows with the class count); above that the full matrix stays
unlabelled and a second figure shows the 30 most-confused classes with their names.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from ..files import atomic_write

VALUES_UP_TO = 30
LABELS_UP_TO = 120
MOST_CONFUSED = 30


# Fonts with CJK and other scripts that class names use, tried after DejaVu Sans glyph by glyph
# (those installed only: matplotlib warns about every family it cannot find).
FALLBACK_FONTS = (
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK KR",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Noto Sans",
    "Arial Unicode MS",
)
_said_missing = False


@functools.cache
def _font_families() -> list[str]:
    """DejaVu Sans, then the installed fallbacks (the font list is read once)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans"] + [f for f in FALLBACK_FONTS if f in installed]


def _pyplot():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["font.family"] = _font_families()
    # one note per process instead (`save`), not a warning per glyph and figure
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")
    return plt


@functools.lru_cache(maxsize=4)
def _covered(families: tuple[str, ...]) -> frozenset[int]:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    covered: set[int] = set()
    for family in families:
        path = font_manager.findfont(font_manager.FontProperties(family=family))
        covered |= set(FT2Font(path).get_charmap())
    return frozenset(covered)


def _undrawable(fig) -> set[str]:
    """Characters of the figure's texts that none of its fonts has."""
    import matplotlib

    covered = _covered(tuple(matplotlib.rcParams["font.family"]))
    texts = "".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
    return {c for c in texts if not c.isspace() and ord(c) not in covered}


def save(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG, atomically. Characters no installed font has (CJK class names
    without a CJK font) are drawn as boxes, and said once per process."""
    global _said_missing
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    if not _said_missing:
        missing = _undrawable(fig)
        if missing:
            _said_missing = True
            print(
                f"note: {path.name} has characters no installed font draws (shown as boxes: "
                f"{''.join(sorted(missing)[:8])}); install a font with them (e.g. Noto Sans CJK: "
                "apt-get install fonts-noto-cjk) and it is used by itself",
                file=sys.stderr,
            )
    _pyplot().close(fig)
    return path


def row_normalised(confusion) -> np.ndarray:
    matrix = np.asarray(confusion, dtype=np.float64)
    totals = matrix.sum(1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_figure(confusion, class_names: list[str], title: str):
    plt = _pyplot()
    rates = row_normalised(confusion)
    n = len(class_names)
    side = min(40.0, max(6.0, 2.5 + 0.22 * n)) if n <= LABELS_UP_TO else 14.0
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= LABELS_UP_TO:
        fontsize = 9 if n <= 30 else (8 if n <= 60 else 7)
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(n), class_names, fontsize=fontsize)
    else:
        ax.set_xticks([]), ax.set_yticks([])
    if n <= VALUES_UP_TO:
        for i in range(n):
            for j in range(n):
                if rates[i, j] > 0:
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center",
                            fontsize=7 if n > 12 else 9, color=colour)  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def most_confused(confusion, k: int = MOST_CONFUSED) -> list[int]:
    """The `k` classes whose videos are most often predicted as another class (rate)."""
    rates = row_normalised(confusion)
    errors = 1 - np.diag(rates)
    errors[np.asarray(confusion).sum(1) == 0] = -1  # classes without videos last
    return sorted(np.argsort(-errors, kind="stable")[:k].tolist())


def per_class_figure(per_class: list[dict], title: str):
    plt = _pyplot()
    rows = sorted((r for r in per_class if r["videos"]), key=lambda r: r["accuracy"])
    n = len(rows)
    fig, ax = plt.subplots(figsize=(8, min(60.0, max(3.0, 0.6 + 0.18 * n))))
    ax.barh(range(n), [r["accuracy"] for r in rows], color="tab:blue")
    ax.set_yticks(range(n), [r["class"] for r in rows], fontsize=max(4, 9 - n // 60))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel("video top-1 accuracy")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_test_figures(out: Path, confusion, per_class: list[dict], names: list[str], title: str):
    """confusion.png, per_class.png and, above LABELS_UP_TO classes, confusion_top30.png."""
    written = [save(confusion_figure(confusion, names, title), out / "confusion.png")]
    if len(names) > LABELS_UP_TO:
        keep = most_confused(confusion)
        sub = np.asarray(confusion)[np.ix_(keep, keep)]
        fig = confusion_figure(
            sub, [names[i] for i in keep], f"{title}: the {len(keep)} most-confused classes"
        )
        written.append(save(fig, out / f"confusion_top{MOST_CONFUSED}.png"))
    written.append(save(per_class_figure(per_class, title), out / "per_class.png"))
    return written


def read_tsv(path: Path) -> dict[str, list[float]]:
    if not path.exists():
        return {}
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    if len(rows) < 2:
        return {}
    return {h: [float(r[i]) for r in rows[1:]] for i, h in enumerate(rows[0])}


def curves_figure(train_log: dict, val_log: dict):
    """Loss (linear and log scale) and accuracy per epoch, with markers, integer epochs."""
    plt = _pyplot()
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    fig, (linear, log, accuracy) = plt.subplots(1, 3, figsize=(15, 4))
    style = {"marker": "o", "markersize": 4}
    for label, log_rows in (("train", train_log), ("val", val_log)):
        if log_rows:
            linear.plot(log_rows["epoch"], log_rows["loss"], label=f"{label} loss", **style)
            log.plot(log_rows["epoch"], log_rows["loss"], label=f"{label} loss", **style)
            accuracy.plot(log_rows["epoch"], log_rows["acc"], label=f"{label} clip acc", **style)
    if val_log:
        accuracy.plot(val_log["epoch"], val_log["video_acc"], label="val video top-1", **style)
    log.set_yscale("log")
    log.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    log.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    epochs = [int(e) for e in train_log.get("epoch", [])] or [1]
    linear.set_title("loss")
    log.set_title("loss (log scale)")
    accuracy.set_title("accuracy")
    accuracy.set_ylim(0, 1)
    for ax in (linear, log, accuracy):
        ax.set_xlabel("epoch")
        if max(epochs) - min(epochs) <= 20:
            ax.set_xticks(range(min(epochs), max(epochs) + 1))
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    return fig


def write_curves(result_path: Path) -> Path | None:
    """curves.png from train.log and val.log (None when no epoch has been logged)."""
    train_log, val_log = read_tsv(result_path / "train.log"), read_tsv(result_path / "val.log")
    if not train_log:
        return None
    return save(curves_figure(train_log, val_log), result_path / "curves.png")


def timeline_figure(entry: dict, class_names: list[str], k: int = 5):
    """The top-k classes (by their mean over the video) of one `classify` entry, each clip's
    probability drawn over its time span (seconds; frames when the video has no frame rate)."""
    plt = _pyplot()
    clips = entry["clips"]
    timed = all(c.get("time") for c in clips)
    spans = [c["time"] if timed else [c["segment"][0] - 1, c["segment"][1]] for c in clips]
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.25 * len(clips) + 4)), 3.6))
    for rank, top in enumerate(entry["top_k"][:k]):
        c = class_names.index(top["label"])
        xs = [x for start, end in spans for x in (start, end)]
        ys = [clip["scores"][c] for clip in clips for _ in range(2)]
        ax.plot(xs, ys, label=f"{top['label']} ({top['score']:.2f})", color=f"C{rank}")
    ax.set_xlabel("time (s)" if timed else "frame")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1)
    ax.set_xlim(spans[0][0], max(end for _, end in spans))
    ax.set_title(Path(entry["video"]).name)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
