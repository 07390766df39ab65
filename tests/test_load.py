"""Under load: gunicorn (3 workers) on 127.0.0.1, many concurrent browser-like clients.

Each backend runs for ``VERSIONED_ADMIN_LOAD_SECONDS`` (default 25 s; CI runs both in well
under two minutes). Afterwards the database must hold exactly what was acknowledged.
"""

from __future__ import annotations

import os
import random
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from load_support import (
    Client,
    Ledger,
    Result,
    check_invariants,
    form_with,
    p95,
    prepare_database,
    run_clients,
    serve,
    token,
)

pytestmark = [pytest.mark.load, pytest.mark.slow]

SECONDS = float(os.environ.get("VERSIONED_ADMIN_LOAD_SECONDS", "25"))
HOT_ARTICLES = ["1", "2", "3"]
HOT_QUOTES = ["SUB-MONTH"]
SAVE_OK = 302
CONFLICT = 409
USERS = {"load_admin": "admin", "load_editor": "editor"}


def _edit(
    client: Client,
    ledger: Ledger,
    rng: random.Random,
    model: str,
    pk: str,
    mutate: Callable[[dict[str, str], str], None],
) -> None:
    """Open the edit form, change it, save; record what the server said."""
    path = f"/admin/{model}/{pk}/edit"
    status, _, html = client.get("edit-form", path)
    if status != 200:
        ledger.add(ledger.unexpected, ("edit-form", status, path))
        return
    form = form_with(html, "base_version")
    assert form is not None, f"no edit form on {path}"
    fields = dict(form["fields"])
    reason = token(f"save-{model}", rng)
    fields["change_reason"] = reason
    fields["save"] = "list"
    mutate(fields, reason)
    status, _, _ = client.post("save", path, fields)
    if status == SAVE_OK:
        ledger.add(ledger.saved, (model, pk, reason))
    else:
        ledger.add(ledger.refused, (model, pk, reason, status))
        if status != CONFLICT:
            ledger.add(ledger.unexpected, ("save", status, path))


def _title(fields: dict[str, str], reason: str) -> None:
    fields["title"] = f"Load {reason}"[:200]


def _price(fields: dict[str, str], reason: str) -> None:
    fields["notes"] = f"price note {reason}"
    fields["price"] = f"{random.randint(1, 9999) / 100:.2f}"


def _bio(fields: dict[str, str], reason: str) -> None:
    fields["bio"] = f"bio {reason}"


def hot_editor(
    port: int, results: list[Result], ledger: Ledger, seed: int
) -> Callable[[threading.Event], None]:
    """Edits the same few records as everyone else: many conflicts."""

    def run(stop: threading.Event) -> None:
        rng = random.Random(seed)
        client = Client(port, results)
        assert client.login("load_editor")
        while not stop.is_set():
            if rng.random() < 0.75:
                _edit(client, ledger, rng, "article", rng.choice(HOT_ARTICLES), _title)
            else:
                _edit(client, ledger, rng, "pricequote", rng.choice(HOT_QUOTES), _price)
        client.close()

    return run


def own_editor(
    port: int, results: list[Result], ledger: Ledger, seed: int
) -> Callable[[threading.Event], None]:
    """Creates an author of its own, then keeps editing it: no conflicts expected."""

    def run(stop: threading.Event) -> None:
        rng = random.Random(seed)
        client = Client(port, results)
        assert client.login("load_editor")
        status, _, html = client.get("create-form", "/admin/author/new")
        form = form_with(html, "csrf_token")
        assert status == 200 and form is not None
        name = f"Load author {seed} {uuid.uuid4().hex[:8]}"
        fields = {
            **form["fields"],
            "name": name,
            "email": f"{uuid.uuid4().hex}@load.test",
            "bio": "",
            "save": "continue",
        }
        fields["change_reason"] = reason = token("create", rng)
        status, headers, _ = client.post("create", "/admin/author/new", fields)
        if status != SAVE_OK:
            ledger.add(ledger.unexpected, ("create", status, "/admin/author/new"))
            return
        match = re.search(r"/admin/author/([^/]+)/edit", headers.get("location", ""))
        assert match, headers
        pk = match.group(1)
        ledger.add(ledger.saved, ("author", pk, reason))
        while not stop.is_set():
            _edit(client, ledger, rng, "author", pk, _bio)
        client.close()

    return run


def reverter(
    port: int, results: list[Result], ledger: Ledger, seed: int
) -> Callable[[threading.Event], None]:
    """Reads a hot record's timeline, previews a revert, confirms it."""

    def run(stop: threading.Event) -> None:
        rng = random.Random(seed)
        client = Client(port, results)
        assert client.login("load_admin")
        while not stop.is_set():
            pk = rng.choice(HOT_ARTICLES)
            status, _, html = client.get("history", f"/admin/article/{pk}/history")
            if status != 200:
                ledger.add(ledger.unexpected, ("history", status, pk))
                continue
            targets = sorted(set(re.findall(rf'href="/admin/article/{pk}/revert/(\d+)"', html)))
            if not targets:
                _edit(client, ledger, rng, "article", pk, _title)
                continue
            path = f"/admin/article/{pk}/revert/{rng.choice(targets)}"
            status, _, html = client.get("revert-preview", path)
            form = form_with(html, "seen_version")
            if status != 200 or form is None:
                if status >= 500 or status == 0:
                    ledger.add(ledger.unexpected, ("revert-preview", status, path))
                continue
            reason = token("revert", rng)
            status, _, _ = client.post("revert", path, {**form["fields"], "change_reason": reason})
            if status == SAVE_OK:
                ledger.add(ledger.saved, ("article", pk, reason))
            else:
                ledger.add(ledger.refused, ("article", pk, reason, status))
                if status != CONFLICT:
                    ledger.add(ledger.unexpected, ("revert", status, path))
        client.close()

    return run


def reader(
    port: int, results: list[Result], ledger: Ledger, seed: int
) -> Callable[[threading.Event], None]:
    """Reads lists, timelines, diffs and the activity page."""
    pages = [
        "/admin/",
        "/admin/article/",
        "/admin/article/?sort=-title&q=load",
        "/admin/activity",
        "/admin/author/",
        "/admin/pricequote/",
        "/admin/article/1/history",
        "/admin/article/2/diff?from=1&to=current",
        "/admin/pricequote/SUB-MONTH/history",
        "/admin/article/deleted",
    ]

    def run(stop: threading.Event) -> None:
        rng = random.Random(seed)
        client = Client(port, results)
        assert client.login("load_editor" if seed % 2 else "load_admin")
        while not stop.is_set():
            path = rng.choice(pages)
            status, _, _ = client.get("read", path)
            if status != 200:
                ledger.add(ledger.unexpected, ("read", status, path))
        client.close()

    return run


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
    assert not five, f"{len(five)} 5xx or dropped requests; server log:\n{log[-3000:]}"
    assert not ledger.unexpected, f"unexpected answers: {ledger.unexpected[:20]}"
    assert ledger.saved and conflicts, "the mix should produce both saves and conflicts"
    assert "Traceback" not in log, log[-3000:]


def test_load_sqlite(tmp_path: Path) -> None:
    """SQLite file (WAL + busy timeout): concurrent workers wait instead of failing."""
    _run_load(f"sqlite:///{tmp_path / 'load.db'}", tmp_path, "sqlite")


def test_load_postgresql(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL: a fresh database on the test server."""
    _run_load(pg_url, tmp_path, "postgresql")
