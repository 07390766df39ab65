"""Chart of history-depth scaling from bench/results.json: python bench/plot.py [RESULTS] [PNG].

One line per (page, backend): the median time of the timeline's first page, the diff page and
``get_version`` at 10, 1,000 and 100,000 versions of one record (log-scaled depth).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent


def main(results: Path, png: Path) -> int:
    """Draw the chart; exit non-zero when results.json has no history_depth rows."""
    data = json.loads(results.read_text())
    rows = [r for r in data["results"] if r["name"].startswith("history_depth (")]
    if not rows:
        print(f"{results}: no history_depth measurements", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    styles = {"sqlite": "-", "postgresql": "--"}
    for r in rows:
        per = {int(k): v * 1000 for k, v in r["extra"]["per_depth"].items()}
        depths = sorted(per)
        what = r["name"][len("history_depth (") : -1]
        ax.plot(depths, [per[d] for d in depths], styles.get(r["backend"], ":"), marker="o",
                label=f"{what} ({r['backend']})")
    ax.set_xscale("log")
    ax.set_xlabel("versions of the record")
    ax.set_ylabel("median time (ms)")
    ax.set_ylim(bottom=0)
    ax.set_title("History pages vs history depth (goal: ≤ 2× from 10 to 100,000)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    meta = data.get("meta", {})
    fig.text(0.01, 0.01, f"{meta.get('date', '')} · {meta.get('machine', '')}", fontsize=6,
             color="gray")
    fig.tight_layout()
    fig.savefig(png)
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(Path(args[0]) if args else HERE / "results.json",
                  Path(args[1]) if len(args) > 1 else HERE / "history_depth.png"))
