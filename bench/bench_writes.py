"""write_insert / write_update / write_delete / statements_per_flush against plain and Continuum.

Each variant runs in its own process (Continuum patches SQLAlchemy globally); the
variants alternate within every repetition, and ratios are taken per repetition.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import result, stats

WORKER = Path(__file__).with_name("write_worker.py")
VARIANTS = ("plain", "ours", "continuum")
GOALS = {"insert": 1.3, "update": 2.0, "delete": 2.0}


def _run(variant: str, url: str, rows: int) -> dict[str, Any]:
    # The package is imported from this checkout, installed or not.
    paths = (str(WORKER.parent.parent), os.environ.get("PYTHONPATH"))
    path = os.pathsep.join(p for p in paths if p)
    done = subprocess.run(
        [sys.executable, str(WORKER), variant, url, str(rows)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": path},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{variant} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run(backend: str, url: str | None, quick: bool) -> list[dict[str, Any]]:
    """Measure the write workloads on one backend."""
    rows = 2000 if quick else 10_000
    reps = 3 if quick else 5
    tmp = tempfile.mkdtemp(prefix="va_bench_")
    target = url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
    # Continuum is ~10-20x slower than plain: in quick mode it runs in the first repetition
    # only (paired with that repetition's plain run) and gets no warm-up, to stay in budget
    cont_reps = 1 if quick else reps
    for variant in VARIANTS if not quick else ("plain", "ours"):  # warm-up: imports, caches
        _run(variant, target, min(rows, 500))
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for rep in range(reps):
        order = VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]
        for variant in order:
            if variant == "continuum" and rep >= cont_reps:
                continue
            runs[variant].append(_run(variant, target, rows))
    out: list[dict[str, Any]] = []
    for op, goal in GOALS.items():
        ours = [r[op] for r in runs["ours"]]
        plain = [r[op] for r in runs["plain"]]
        cont = [r[op] for r in runs["continuum"]]
        ratios = [o / p for o, p in zip(ours, plain, strict=True)]
        cont_ratios = [c / p for c, p in zip(cont, plain[: len(cont)], strict=True)]
        ratio = statistics.median(ratios)
        row = result(
            f"write_{op}",
            backend,
            statistics.median(ours),
            statistics.median(plain),
            "plain SQLAlchemy",
            "s",
            f"<= {goal}x plain",
            ratio <= goal,
            rows=rows,
            reps=reps,
            ours_stats=stats(ours),
            plain_stats=stats(plain),
            ratio_stats=stats(ratios),
            continuum=statistics.median(cont),
            continuum_ratio=statistics.median(cont_ratios),
            continuum_reps=len(cont),
            note=f"Continuum {statistics.median(cont_ratios):.1f}×; ratio min–max "
            f"{min(ratios):.2f}–{max(ratios):.2f}",
        )
        row["ratio"] = ratio  # the median of paired ratios, not the ratio of medians
        out.append(row)
    plain_n = runs["plain"][0]["statements_update_flush"]
    ours_extra = runs["ours"][0]["statements_update_flush"] - plain_n
    cont_extra = runs["continuum"][0]["statements_update_flush"] - plain_n
    out.append(
        result(
            "statements_per_flush",
            backend,
            float(ours_extra),
            float(cont_extra),
            "SQLAlchemy-Continuum",
            "stmts",
            "<= 3 extra",
            ours_extra <= 3,
            note=f"extra statements for a 100-row update flush (plain: {plain_n})",
        )
    )
    return out
