"""Shared helpers of the benchmark suite: result rows, stats, the Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median and min–max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def result(
    name: str,
    backend: str,
    ours: float,
    baseline: float | None,
    baseline_name: str,
    unit: str,
    goal: str,
    meets_goal: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """One row of results.json."""
    ratio = None if not baseline else ours / baseline
    return {
        "name": name,
        "backend": backend,
        "ours": ours,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "unit": unit,
        "goal": goal,
        "meets_goal": meets_goal,
        "extra": extra,
    }


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if unit == "s" and value < 1:
            return f"{value * 1000:.1f} ms"
        return f"{value:.3g} {unit}".strip()
    return f"{value} {unit}".strip()


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| name | backend | ours | baseline | ratio | goal | met | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        met = {True: "yes", False: "**no**", None: "–"}[r["meets_goal"]]
        notes = r["extra"].get("note", "")
        lines.append(
            f"| {r['name']} | {r['backend']} | {_fmt(r['ours'], r['unit'])} | "
            f"{_fmt(r['baseline'], r['unit'])} ({r['baseline_name']}) | {ratio} | "
            f"{r['goal']} | {met} | {notes} |"
        )
    return "\n".join(lines)
