"""Check that a results.json written by bench/run.py is well formed (CI runs this)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIELDS = {
    "name": str,
    "backend": str,
    "ours": (int, float),
    "baseline": (int, float, type(None)),
    "baseline_name": str,
    "ratio": (int, float, type(None)),
    "unit": str,
    "goal": str,
    "meets_goal": (bool, type(None)),
}
# what every run (quick included) must contain on SQLite: suite -> names (prefixes end in " (")
ALWAYS = {
    "writes": {"write_insert", "write_update", "write_delete", "statements_per_flush"},
    "list": {"list_page ("},
    "diff": {"diff_text"},
}
# suites whose module may not exist yet: checked when bench/<module>.py is there
WHEN_PRESENT = {
    "bench_history.py": {"history_depth (", "diff_page"},
    "bench_http.py": {"http_throughput (list)", "http_throughput (edit-save)", "http_p95 (list)"},
}


def _found(wanted: str, names: set[str]) -> bool:
    """An exact name, or a prefix: ``diff_text`` matches ``diff_text_scattered``."""
    return any(n == wanted or n.startswith(wanted) for n in names)


def main(path: str) -> int:
    """Exit non-zero, saying why, when the file is not what run.py promises."""
    data = json.loads(Path(path).read_text())
    rows = data["results"]
    problems: list[str] = []
    for i, row in enumerate(rows):
        for key, kind in FIELDS.items():
            if key not in row:
                problems.append(f"row {i}: missing {key}")
            elif not isinstance(row[key], kind):
                problems.append(f"row {i} ({row.get('name')}): {key} has type {type(row[key])}")
    if not isinstance(data.get("meta"), dict) or "date" not in data["meta"]:
        problems.append("meta (date, machine) missing")
    names = {r.get("name") for r in rows if r.get("backend") in ("sqlite", "none")}
    expected = set().union(*ALWAYS.values())
    here = Path(__file__).parent
    for module, wanted in WHEN_PRESENT.items():
        if (here / module).exists():
            expected |= wanted
    missing = sorted(w for w in expected if not _found(w, names))
    if missing:
        problems.append(f"missing measurements: {missing}")
    for i, row in enumerate(rows):
        ratio, base = row.get("ratio"), row.get("baseline")
        if isinstance(ratio, float) and ratio != ratio:
            problems.append(f"row {i} ({row.get('name')}): ratio is NaN")
        if base and ratio is None:
            problems.append(f"row {i} ({row.get('name')}): a baseline but no ratio")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{path}: {len(rows)} measurements, {'OK' if not problems else 'BROKEN'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"))
