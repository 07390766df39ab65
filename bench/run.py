"""Run the benchmark suite: python bench/run.py [--quick] [--only NAME ...].

Runs on SQLite, and on PostgreSQL too when DATABASE_URL points at one. Writes
bench/results.json and bench/results.md and prints the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import markdown  # noqa: E402

SUITES = ("writes", "diff", "list", "history", "http")


def _pg_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url if url.startswith("postgresql") else None


def _suite(name: str, backend: str, url: str | None, quick: bool) -> list[dict[str, Any]]:
    if name == "writes":
        import bench_writes

        return bench_writes.run(backend, url, quick)
    if name == "diff" and backend == "sqlite":
        import bench_diff

        return bench_diff.run(quick)  # type: ignore[no-any-return]
    if name == "list":
        try:
            import bench_list
        except ImportError:
            return []
        return bench_list.run(backend, url, quick)  # type: ignore[no-any-return]
    if name == "history":
        try:
            import bench_history
        except ImportError:
            return []
        return bench_history.run(backend, url, quick)  # type: ignore[no-any-return]
    if name == "http":
        import bench_http

        return bench_http.run(backend, url, quick)
    return []


def _write(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2, default=str) + "\n")
    table = markdown(rows)
    out.with_suffix(".md").write_text(
        f"Measured {meta['date']} on {meta['machine']} (Python {meta['python']}"
        f"{', quick mode' if meta['quick'] else ''}).\n\n{table}\n"
    )
    print(table)


def _merge(paths: list[Path], out: Path) -> int:
    """One results file from runs made one backend at a time (the first one's meta)."""
    parts = [json.loads(p.read_text()) for p in paths]
    meta = dict(parts[0]["meta"])
    meta["seconds"] = round(sum(p["meta"]["seconds"] for p in parts), 1)
    meta["failed"] = [f for p in parts for f in p["meta"].get("failed", [])]
    rows = [r for p in parts for r in p["results"]]
    _write(out, meta, rows)
    return 0


def main() -> int:
    """Run every suite on every backend, then write and print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="bounded run (< 3 min)")
    parser.add_argument("--only", nargs="*", choices=SUITES, default=list(SUITES))
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--backend", nargs="*", choices=("sqlite", "postgresql"),
                        help="only these backends (default: SQLite, and PostgreSQL if set)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine earlier results files into --out instead of measuring")
    args = parser.parse_args()
    if args.merge:
        return _merge([Path(p) for p in args.merge], Path(args.out))
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    pg = _pg_url()
    if pg:
        backends.append(("postgresql", pg))
    if args.backend:
        backends = [(b, u) for b, u in backends if b in args.backend]
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    started = time.perf_counter()
    for backend, url in backends:
        for name in args.only:
            t0 = time.perf_counter()
            try:
                rows.extend(_suite(name, backend, url, args.quick))
            except Exception:  # one broken suite must not lose the others' results
                traceback.print_exc()
                failed.append(f"{name} on {backend}")
            print(f"[bench] {name} on {backend}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "failed": failed,
    }
    out = Path(args.out)
    _write(out, meta, rows)
    if not args.quick and any(r["name"].startswith("history_depth") for r in rows):
        import plot  # the history-depth chart beside the results (needs matplotlib)

        plot.main(out, out.with_name("history_depth.png"))
    if failed:
        print(f"[bench] FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
