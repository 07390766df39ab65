"""Benchmark the text diff: python bench/bench_diff.py [--quick].

Two 1 MB texts, once with 200 scattered edits and once unrelated, diffed by
versioned_admin.diff.text_diff and, as a baseline, by difflib.HtmlDiff().make_table
(context=True, numlines=3: the same folded view). HtmlDiff has no time bound, so on the
unrelated texts it runs once in a child process with a timeout. Also reports how big the
result is: our data (characters of row text, and len(repr())) against HtmlDiff's HTML.
"""

from __future__ import annotations

import argparse
import difflib
import multiprocessing
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import markdown, result, stats  # noqa: E402

from versioned_admin.diff import TextDiff, text_diff  # noqa: E402

SIZE = 1_000_000
EDITS = 200
GOAL_SCATTERED = 0.1
GOAL_UNRELATED = 1.0


def make_text(seed: int, size: int = SIZE) -> tuple[list[str], list[str]]:
    """Lines of random words (with some blank lines), about `size` characters in all."""
    rnd = random.Random(seed)
    words = [
        "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(2, 9))) for _ in range(5000)
    ]
    lines: list[str] = []
    total = 0
    while total < size:
        line = (
            "\n"
            if rnd.random() < 0.1
            else " ".join(rnd.choices(words, k=rnd.randint(5, 14))) + ".\n"
        )
        lines.append(line)
        total += len(line)
    return lines, words


def scatter_edits(lines: list[str], words: list[str], edits: int, seed: int) -> list[str]:
    """A copy of `lines` with `edits` word changes, inserted lines and deleted lines."""
    rnd = random.Random(seed)
    out = list(lines)
    for _ in range(edits):
        k = rnd.randrange(len(out))
        roll = rnd.random()
        if roll < 0.6 and out[k].strip():
            parts = out[k].split(" ")
            parts[rnd.randrange(len(parts))] = rnd.choice(words)
            out[k] = " ".join(parts)
            if not out[k].endswith("\n"):
                out[k] += "\n"
        elif roll < 0.8:
            out.insert(k, " ".join(rnd.choices(words, k=8)) + ".\n")
        else:
            del out[k]
    return out


def html_diff(old: str, new: str) -> str:
    """The baseline: difflib's side-by-side HTML table, folded to 3 lines of context."""
    return difflib.HtmlDiff().make_table(
        old.splitlines(), new.splitlines(), context=True, numlines=3
    )


def _html_child(old: str, new: str, queue: Any) -> None:
    started = time.perf_counter()
    html = html_diff(old, new)
    queue.put((time.perf_counter() - started, len(html)))


def html_diff_with_timeout(old: str, new: str, timeout: float) -> tuple[float, int] | None:
    """(seconds, HTML size) of one baseline run in a child process, or None past `timeout`."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx: Any = multiprocessing.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=_html_child, args=(old, new, queue), daemon=True)
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        return None
    return queue.get() if not queue.empty() else None


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Wall-clock seconds of `repeat` calls after `warmup` calls, and the last result."""
    out: Any = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return times, out


def data_size(diff: TextDiff) -> dict[str, int]:
    """How much a page would render: rows, characters of row text, and len(repr())."""
    text = 0
    for row in diff.lines:
        text += len(row.left_text) + len(row.right_text)
        text += sum(len(h.left_text) + len(h.right_text) for h in row.hidden)
    return {"rows": len(diff.lines), "text_chars": text, "repr_chars": len(repr(diff))}


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure both cases; rows shaped for bench/run.py's results.json."""
    repeat = 5 if quick else 15
    base_repeat = 2 if quick else 5
    timeout = 10.0 if quick else 60.0
    lines, words = make_text(1)
    old = "".join(lines)
    scattered = "".join(scatter_edits(lines, words, EDITS, seed=2))
    unrelated = "".join(make_text(3)[0])
    rows: list[dict[str, Any]] = []

    ours, diff = timed(lambda: text_diff(old, scattered), repeat)
    base, html = timed(lambda: html_diff(old, scattered), base_repeat)
    o, b = stats(ours), stats(base)
    size = data_size(diff)
    rows.append(
        result(
            "diff_text_scattered", "none", o["median"], b["median"], "difflib.HtmlDiff",
            "s", f"<= {GOAL_SCATTERED} s", o["median"] <= GOAL_SCATTERED,
            ours_min=o["min"], ours_max=o["max"], baseline_min=b["min"], baseline_max=b["max"],
            runs=repeat, baseline_runs=base_repeat, input_chars=len(old), edits=EDITS,
            coarse=diff.coarse, granularity=diff.granularity, baseline_html_chars=len(html),
            **size,
            note=f"data {size['text_chars']:,} text chars vs {len(html):,} HTML chars",
        )
    )  # fmt: skip

    ours, diff = timed(lambda: text_diff(old, unrelated), repeat)
    o = stats(ours)
    once = html_diff_with_timeout(old, unrelated, timeout)
    size = data_size(diff)
    base_note = (
        f"HtmlDiff > {timeout:.0f} s (stopped)"
        if once is None
        else f"HtmlDiff once, {once[1]:,} HTML chars"
    )
    rows.append(
        result(
            "diff_text_unrelated", "none", o["median"], None if once is None else once[0],
            "difflib.HtmlDiff", "s", f"<= {GOAL_UNRELATED} s", o["median"] <= GOAL_UNRELATED,
            ours_min=o["min"], ours_max=o["max"], runs=repeat, baseline_timeout=timeout,
            baseline_timed_out=once is None, baseline_html_chars=None if once is None else once[1],
            coarse=diff.coarse, granularity=diff.granularity, truncated=diff.truncated,
            diff_note=diff.note, **size,
            note=f"coarse={diff.coarse}; data {size['text_chars']:,} text chars; {base_note}",
        )
    )  # fmt: skip
    return rows


def main() -> int:
    """Run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rows = run(args.quick)
    print(markdown(rows))
    print()
    for r in rows:
        e = r["extra"]
        print(
            f"{r['name']}: ours median {r['ours'] * 1000:.1f} ms "
            f"(min {e['ours_min'] * 1000:.1f}, max {e['ours_max'] * 1000:.1f}); "
            f"{e['rows']:,} rows, {e['text_chars']:,} text chars, repr {e['repr_chars']:,}; "
            f"baseline HTML {e.get('baseline_html_chars') or '–'} chars"
        )
    return 0 if all(r["meets_goal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
