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
EXPECTED = {"write_insert", "write_update", "write_delete", "statements_per_flush"}


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
    missing = EXPECTED - {r.get("name") for r in rows}
    if missing:
        problems.append(f"missing measurements: {sorted(missing)}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{path}: {len(rows)} measurements, {'OK' if not problems else 'BROKEN'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"))
