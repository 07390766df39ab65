"""http_throughput: requests/s and p95 latency under gunicorn (2 workers) on 127.0.0.1.

Our demo-like app (bench/http_apps.py: ours_app) and Flask-Admin's ModelView over the same
table (flask_admin_app) are both served by gunicorn with 2 sync workers. A bounded load
generator (threads + http.client, one request in flight per thread, fixed duration and a cap
on the request count) drives one scenario at a time against one server at a time; the two
servers alternate in slices, and the ratio is the median of the paired slices.

Scenarios: the list page (page 1 of 100,000 rows), edit-save (a POST of the edit form that
changes one field; each thread owns its own records), and the timeline of a record with 50
versions (ours only: Flask-Admin has no history page).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import result, stats

HERE = Path(__file__).parent
ROWS = 100_000
THREADS = 4  # two per worker: a worker always has the next request waiting
RECORDS_PER_THREAD = 50
TIMELINE_VERSIONS = 50
MAX_REQUESTS = 200_000  # per slice, whatever the duration
TIMEOUT = 30.0
FAILURES: Counter[str] = Counter()  # edit-save answers other than the redirect
FIELDS = {"body": ("lorem ipsum dolor sit amet " * 8)[:200], "active": "y",
          "created_at": "2026-01-01 12:00:00"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A gunicorn process (2 sync workers) on 127.0.0.1 serving one of the http_apps."""

    def __init__(self, factory: str, url: str, log: Path) -> None:
        self.port = _free_port()
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(HERE.parent)}
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}",
             "--timeout", "60", "--log-level", "warning", f"http_apps:{factory}()"],
            cwd=HERE, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {factory} exited; see {log}")
            try:
                status, _ = request(self.port, "GET", "/admin/row/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn {factory} did not answer in 60 s; see {log}")

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers); SIGKILL the group if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def request(port: int, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
    """One request on a new connection (gunicorn's sync workers close it after the response)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _load(port: int, seconds: float, make: Callable[[int], Callable[[], bool]]) -> dict[str, Any]:
    """Run THREADS clients for ``seconds``; each calls its ``make(i)()`` until time is up."""
    latencies: list[list[float]] = [[] for _ in range(THREADS)]
    errors = [0] * THREADS
    stop_at = time.perf_counter() + seconds
    budget = MAX_REQUESTS // THREADS

    def client(i: int) -> None:
        step = make(i)
        while time.perf_counter() < stop_at and len(latencies[i]) < budget:
            t0 = time.perf_counter()
            try:
                ok = step()
            except OSError:
                ok = False
            if ok:
                latencies[i].append(time.perf_counter() - t0)
            else:
                errors[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 2 * TIMEOUT)
    elapsed = time.perf_counter() - started
    lat = sorted(x for per in latencies for x in per)
    return {
        "rps": len(lat) / elapsed,
        "p95": lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
        "requests": len(lat),
        "errors": sum(errors),
    }


def _list(port: int) -> Callable[[int], Callable[[], bool]]:
    return lambda i: lambda: request(port, "GET", "/admin/row/")[0] == 200


def _timeline(port: int) -> Callable[[int], Callable[[], bool]]:
    return lambda i: lambda: request(port, "GET", "/admin/row/1/history")[0] == 200


_BASE = re.compile(
    rb'name="base_version"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="base_version"'
)


def _edit(port: int, ours: bool) -> Callable[[int], Callable[[], bool]]:
    """Each thread cycles over its own records (Flask-Admin's are not ours: its unversioned
    saves would make ours see out-of-band changes), changing the score to a value never used
    before; ours posts the version the form was based on (read once, then counted)."""
    from urllib.parse import urlencode

    bases: dict[int, dict[int, str]] = {i: {} for i in range(THREADS)}
    counts = [0] * THREADS

    def make(i: int) -> Callable[[], bool]:
        first = 2 + (0 if ours else THREADS * RECORDS_PER_THREAD)  # never the other's records
        ids = range(first + i * RECORDS_PER_THREAD, first + (i + 1) * RECORDS_PER_THREAD)
        base = bases[i]

        def step() -> bool:
            counts[i] += 1
            pk = ids[counts[i] % len(ids)]
            score = 10_000_000 + counts[i] * THREADS + i
            form = {"title": f"row {pk}", "score": str(score), **FIELDS}
            if ours:
                if pk not in base:  # first visit: read the version the form is based on
                    _, html = request(port, "GET", f"/admin/row/{pk}/edit")
                    m = _BASE.search(html)
                    base[pk] = (m.group(1) or m.group(2)).decode() if m else ""
                form["base_version"] = base[pk]
                status, _ = request(port, "POST", f"/admin/row/{pk}/edit", urlencode(form))
                if status == 302:
                    base[pk] = str(int(base[pk] or 0) + 1)
                else:
                    base.pop(pk, None)  # resynchronise on the next visit
            else:
                status, _ = request(port, "POST", f"/admin/row/edit/?id={pk}", urlencode(form))
            if status != 302:
                FAILURES[f"{'ours' if ours else 'fa'} {status}"] += 1
            return status == 302

        return step

    return make


@contextlib.contextmanager
def _database_url(url: str) -> Iterator[None]:
    """DATABASE_URL set to ``url`` for http_apps in this process, restored after."""
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved


def run(backend: str, url: str | None, quick: bool) -> list[dict[str, Any]]:
    """Measure list, edit-save and timeline on one backend."""
    sys.path.insert(0, str(HERE))
    import http_apps

    tmp = Path(tempfile.mkdtemp(prefix="va_bench_http_"))
    target = url or f"sqlite:///{tmp / 'http.db'}"
    with _database_url(target):
        http_apps.setup(ROWS, 1 + THREADS * RECORDS_PER_THREAD, TIMELINE_VERSIONS)
    total = 8.0 if quick else 30.0  # per scenario and server
    slices = 2 if quick else 3
    warm = 1.0 if quick else 3.0
    servers = {"ours": Server("ours_app", target, tmp / "ours.log"),
               "fa": Server("flask_admin_app", target, tmp / "fa.log")}
    try:
        scenarios: dict[str, dict[str, Callable[[int], Callable[[], bool]] | None]] = {
            "list": {"ours": _list(servers["ours"].port), "fa": _list(servers["fa"].port)},
            "edit-save": {"ours": _edit(servers["ours"].port, True),
                          "fa": _edit(servers["fa"].port, False)},
            "timeline": {"ours": _timeline(servers["ours"].port), "fa": None},
        }
        measured: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for scenario, makers in scenarios.items():
            runs: dict[str, list[dict[str, Any]]] = {"ours": [], "fa": []}
            active = [(who, m) for who, m in makers.items() if m is not None]
            for who, make in active:  # warm-up
                _load(servers[who].port, warm, make)
            for s in range(slices):
                order = active if s % 2 == 0 else active[::-1]
                for who, make in order:
                    runs[who].append(_load(servers[who].port, total / slices, make))
            measured[scenario] = runs
    finally:
        for server in servers.values():
            server.stop()
    if url is None:
        for f in tmp.glob("http.db*"):
            f.unlink()
    else:
        with _database_url(target):
            http_apps.teardown()
    return _rows(backend, measured, total, quick)


def _rows(backend: str, measured: dict[str, dict[str, list[dict[str, Any]]]], total: float,
          quick: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for scenario, runs in measured.items():
        ours, fa = runs["ours"], runs["fa"]
        errors = sum(r["errors"] for r in ours) + sum(r["errors"] for r in fa)
        ours_rps = [r["rps"] for r in ours]
        ours_p95 = [r["p95"] for r in ours]
        done = sum(r["requests"] for r in ours)
        common_note = (f"gunicorn 2 workers, {THREADS} clients, {total:.0f} s per server in "
                       f"{len(ours)} alternating slices; {done} requests"
                       f"{f', {errors} errors' if errors else ''}")
        if fa:
            fa_rps = [r["rps"] for r in fa]
            fa_p95 = [r["p95"] for r in fa]
            ratios = [o / f for o, f in zip(ours_rps, fa_rps, strict=True)]
            p95_ratios = [o / f for o, f in zip(ours_p95, fa_p95, strict=True)]
            is_list = scenario == "list"
            goal_ratio = statistics.median(ratios)
            row = result(
                f"http_throughput ({scenario})", backend, statistics.median(ours_rps),
                statistics.median(fa_rps), "Flask-Admin under gunicorn", "req/s",
                ">= 2x Flask-Admin" if is_list else "report",
                goal_ratio >= 2.0 if is_list else None,
                ours_stats=stats(ours_rps), baseline_stats=stats(fa_rps),
                ratio_stats=stats(ratios), errors=errors, quick=quick,
                note=f"higher is better; {common_note}",
            )
            row["ratio"] = goal_ratio
            out.append(row)
            row = result(
                f"http_p95 ({scenario})", backend, statistics.median(ours_p95),
                statistics.median(fa_p95), "Flask-Admin under gunicorn", "s", "report", None,
                ours_stats=stats(ours_p95), baseline_stats=stats(fa_p95),
                ratio_stats=stats(p95_ratios),
                note="p95 latency, lower is better",
            )
            row["ratio"] = statistics.median(p95_ratios)
            out.append(row)
        else:
            out.append(result(
                f"http_throughput ({scenario})", backend, statistics.median(ours_rps), None,
                "none (Flask-Admin has no history page)", "req/s", "report", None,
                ours_stats=stats(ours_rps), errors=errors,
                note=f"record with {TIMELINE_VERSIONS} versions; {common_note}",
            ))
            out.append(result(
                f"http_p95 ({scenario})", backend, statistics.median(ours_p95), None,
                "none", "s", "report", None, ours_stats=stats(ours_p95),
                note="p95 latency, lower is better",
            ))
    return out
