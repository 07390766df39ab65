"""Under load: gunicorn (3 workers) on 127.0.0.1, many concurrent browser-like clients.

Each backend runs for ``VERSIONED_ADMIN_LOAD_SECONDS`` (default 25 s; CI runs both in well
under two minutes). Afterwards the database must hold exactly what was acknowledged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from load_support import (
    CONFLICT,
    USERS,
    Ledger,
    Result,
    check_invariants,
    hot_editor,
    own_editor,
    p95,
    prepare_database,
    reader,
    reverter,
    run_clients,
    serve,
)

pytestmark = [pytest.mark.load, pytest.mark.slow]

SECONDS = float(os.environ.get("VERSIONED_ADMIN_LOAD_SECONDS", "25"))
MIX = [(hot_editor, 6), (own_editor, 4), (reverter, 3), (reader, 5)]


def _run_load(url: str, tmp_path: Path, backend: str) -> None:
    prepare_database(url, USERS)
    results: list[Result] = []
    ledger = Ledger()
    with serve(url, tmp_path, workers=3) as server:
        behaviours = [
            make(server.port, results, ledger, 1000 * i + n)
            for i, (make, count) in enumerate(MIX)
            for n in range(count)
        ]
        run_clients(behaviours, SECONDS)
        log = server.log()
    figures = check_invariants(url, ledger)
    five = [r for r in results if r.status >= 500 or r.status == 0]
    conflicts = sum(1 for r in ledger.refused if r[3] == CONFLICT)
    line = (
        f"LOAD {backend}: {len(behaviours)} clients, {SECONDS:.0f}s, {len(results)} requests, "
        f"{len(ledger.saved)} acknowledged saves, {conflicts} conflicts (409), "
        f"{len(five)} 5xx/no-response, p95 {p95([r.seconds for r in results]) * 1000:.0f} ms, "
        f"{figures['versions']} versions / {figures['records']} records / "
        f"{figures['changesets']} changesets checked"
    )
    print(line)
    if report := os.environ.get("VERSIONED_ADMIN_LOAD_REPORT"):
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    assert not five, f"{len(five)} 5xx or dropped requests; server log:\n{log[-6000:]}"
    assert not ledger.unexpected, f"unexpected answers: {ledger.unexpected[:20]}"
    assert ledger.saved and conflicts, "the mix should produce both saves and conflicts"
    assert "Traceback" not in log, log[-3000:]


def test_load_sqlite(tmp_path: Path) -> None:
    """SQLite file (WAL + busy timeout): concurrent workers wait instead of failing."""
    _run_load(f"sqlite:///{tmp_path / 'load.db'}", tmp_path, "sqlite")


def test_load_postgresql(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a fresh database on the test server."""
    _run_load(pg_url, tmp_path, "postgresql")
