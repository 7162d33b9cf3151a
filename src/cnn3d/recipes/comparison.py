"""A run's figures beside the paper's: which reported numbers a run can be compared with, the
reasons it cannot (another class count, options changed from the recipe, a test-set number
against a validation run), the rows of `reproduce.json` and the table `cnn3d reproduce`
prints."""

from __future__ import annotations

METRICS = ("video_top1", "video_top5", "average_top1_top5", "clip_top1")


def plain(value):
    """An option's value as JSON holds it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def changes_text(changed: list[tuple[str, object, object]]) -> str:
    return "options changed from the recipe: " + ", ".join(
        f"{option} {shown(value)} (recipe: {shown(expected)})"
        for option, expected, value in changed
    )


def shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return "unset" if value is None else str(value)


def not_comparable_because(recipe, n_classes: int, changed: list) -> list[str]:
    """Why this run's figures are not the paper's protocol's (none: they are comparable)."""
    reasons = []
    if recipe.paper_classes is not None and n_classes != recipe.paper_classes:
        reasons.append(f"the data has {n_classes} classes, the paper's {recipe.paper_classes}")
    if changed:
        reasons.append(changes_text(changed))
    return reasons


def comparison(recipe, metrics: dict, reasons: list[str], subset: str) -> list[dict]:
    """One row per reported number, with what this run obtained (percent) and, where the run
    and the number are comparable, the difference."""
    rows = []
    for r in recipe.reported:
        value = metrics.get(r.metric)
        obtained = None if value is None else 100 * value
        why = ""
        if r.scope == "test set" and subset != "test":
            why = f"the paper's figure is on the test set; the protocol tests the {subset} subset"
        comparable = not reasons and not why and obtained is not None
        rows.append(
            {
                "metric": r.metric,
                "reported": r.value,
                "status": r.status,
                "scope": r.scope,
                "source": r.source,
                "note": r.note,
                "obtained": obtained,
                "comparable": comparable,
                "why": why,
                "difference": obtained - r.value if comparable else None,
            }
        )
    return rows


def table(recipe, rows: list[dict], metrics: dict, reasons: list[str]) -> list[str]:
    lines = [f"\nrecipe {recipe.name}: {recipe.title}", f"protocol: {recipe.protocol}", ""]
    if reasons:
        lines.append(
            "NOT COMPARABLE with the paper's figures (no differences shown): " + "; ".join(reasons)
        )
    elif rows:
        lines.append(
            "comparable with the paper: the recipe's options on data of the paper's class count"
        )
    lines.append(
        f"{'metric':<20}{'paper':>8}{'obtained':>10}{'diff':>8}  status of the paper's number"
    )
    for row in rows:
        obtained = "-" if row["obtained"] is None else f"{row['obtained']:.2f}"
        diff = "-" if row["difference"] is None else f"{row['difference']:+.2f}"
        notes = "; ".join(x for x in (row["scope"], row["why"], row["note"]) if x)
        lines.append(
            f"{row['metric']:<20}{row['reported']:>8.1f}{obtained:>10}{diff:>8}  {row['status']}"
            + (f"; {notes}" if notes else "")
        )
    reported = {row["metric"] for row in rows}
    for key in METRICS:
        if key not in reported and metrics.get(key) is not None:
            lines.append(f"{key:<20}{'-':>8}{100 * metrics[key]:>10.2f}{'':>8}  (not reported)")
    if not rows:
        lines.append(f"(the paper reports no number for this row: {recipe.note or 'none found'})")
    lines.append(
        f"\n{metrics.get('n_videos', '?')} videos tested; clip accuracy is not video accuracy: the paper's numbers are video level"
    )
    return lines
