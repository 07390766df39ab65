"""Helpers for the load and fault tests: a real gunicorn server, HTTP clients, DB invariants.

Everything talks to 127.0.0.1 only. The load generator is bounded: a fixed number of
client threads for a fixed time, each request with a timeout.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SECRET = "load-test-secret"
PASSWORD = "load-pass-1"


# --------------------------------------------------------------------------- database set-up


def prepare_database(url: str, users: dict[str, str]) -> None:
    """Create the demo schema + seed data on ``url`` and add ``users`` ({name: role})."""
    code = (
        "import sys\n"
        "from app import create_app, create_user, db\n"
        "app = create_app({'SQLALCHEMY_DATABASE_URI': sys.argv[1], 'SECRET_KEY': 'x'})\n"
        "with app.app_context():\n"
        "    for pair in sys.argv[3:]:\n"
        "        name, role = pair.split(':')\n"
        "        create_user(name, sys.argv[2], role)\n"
        "    db.session.commit()\n"
        "    db.engine.dispose()\n"
    )
    # a subprocess: the demo's module-level db must not keep connections in the test process
    subprocess.run(
        [sys.executable, "-c", code, url, PASSWORD, *(f"{n}:{r}" for n, r in users.items())],
        cwd=ROOT,
        check=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": url},
    )


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """A gunicorn serving the demo app on 127.0.0.1 (start with ``serve``)."""

    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The PIDs of the master's current worker processes."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def log(self) -> str:
        """The server's stderr so far."""
        return self.log_path.read_text(errors="replace")


def wait_until_up(port: int, timeout: float = 60.0) -> None:
    """Poll /login until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not come up")


@contextlib.contextmanager
def serve(url: str, tmp: Path, workers: int = 3, timeout: int = 30) -> Iterator[Server]:
    """Run ``gunicorn -w WORKERS 'app:create_app()'`` on a free port; stop it afterwards."""
    port = free_port()
    log_path = tmp / f"gunicorn-{port}.log"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                str(timeout),
                "--graceful-timeout",
                "5",
                "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(port, proc, log_path)
    try:
        wait_until_up(port)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- HTML forms


class _FormParser(HTMLParser):
    """Collects every form: its action, method and the values a browser would submit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._select: str | None = None
        self._first_option: str | None = None
        self._selected = False
        self._textarea: str | None = None
        self._text: list[str] = []
        self._option_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "fields": {},
            }
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        fields = self._form["fields"]
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields[name] = a.get("value", "on")
            elif kind not in ("submit", "button", "image", "file"):
                fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select, self._first_option, self._selected = name, None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._first_option is None:
                self._first_option = value
            if "selected" in a:
                fields[self._select] = value
                self._selected = True
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select:
            if not self._selected and self._first_option is not None:
                self._form["fields"][self._select] = self._first_option
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = "".join(self._text)
            self._form["fields"][self._textarea] = text[1:] if text.startswith("\n") else text
            self._textarea = None
        elif tag == "form":
            self._form = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text.append(data)


def forms(html: str) -> list[dict[str, Any]]:
    """Every form on the page: {"action", "method", "fields"}."""
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_with(html: str, field_name: str) -> dict[str, Any] | None:
    """The first POST form on the page that has ``field_name``."""
    for form in forms(html):
        if form["method"] == "post" and field_name in form["fields"]:
            return form
    return None


# --------------------------------------------------------------------------- HTTP client


@dataclass
class Result:
    """One request's outcome."""

    kind: str
    status: int  # 0: no response (connection error or timeout)
    seconds: float


class Client:
    """A browser-like client: its own connection and cookie jar; records every request."""

    def __init__(self, port: int, results: list[Result] | None = None, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.results = results if results is not None else []
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        """Drop the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, kind: str, method: str, path: str, data: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        """Send one request; returns (status, headers, body); status 0 on a network error."""
        headers = {"Host": f"127.0.0.1:{self.port}"}
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        start = time.monotonic()
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            status = resp.status
            got = {k.lower(): v for k, v in resp.getheaders()}
            for name, value in resp.getheaders():
                if name.lower() == "set-cookie":
                    self._set_cookie(value)
            if resp.will_close:
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
            status, got, text = 0, {}, ""
        self.results.append(Result(kind, status, time.monotonic() - start))
        return status, got, text

    def _set_cookie(self, header: str) -> None:
        pair, *attrs = header.split(";")
        name, _, value = pair.strip().partition("=")
        expired = any(a.strip().lower() in ("max-age=0",) or "1970" in a for a in attrs)
        if expired or not value:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def login_retrying(self, username: str, stop: threading.Event) -> bool:
        """Log in, retrying (e.g. while the database is away) until ``stop`` is set."""
        while not stop.is_set():
            if self.login(username):
                return True
            time.sleep(0.3)
        return False

    def get(self, kind: str, path: str) -> tuple[int, dict[str, str], str]:
        """GET ``path``."""
        return self.request(kind, "GET", path)

    def post(self, kind: str, path: str, data: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """POST a form to ``path``."""
        return self.request(kind, "POST", path, data)

    def login(self, username: str, password: str = PASSWORD) -> bool:
        """Log in through the real form (CSRF token included)."""
        status, _, html = self.get("login-form", "/login")
        form = form_with(html, "csrf_token") if status == 200 else None
        if form is None:
            return False
        fields = {**form["fields"], "username": username, "password": password}
        status, headers, _ = self.post("login", "/login", fields)
        return status == 302 and "/login" not in headers.get("location", "/login")


# --------------------------------------------------------------------------- load generation


@dataclass
class Ledger:
    """What the server acknowledged, for checking against the database afterwards."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    saved: list[tuple[str, str, str]] = field(default_factory=list)  # (model, pk, reason)
    refused: list[tuple[str, str, str, int]] = field(default_factory=list)  # + status
    unexpected: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, status, path)

    def add(self, bucket: list[Any], item: Any) -> None:
        """Append under the lock."""
        with self.lock:
            bucket.append(item)

    def outcome(self, status: int, kind: str, what: tuple[str, str, str], path: str) -> None:
        """File a save's answer: 302 saved, 4xx refused (409 expected), else unknown."""
        if status == SAVE_OK:
            self.add(self.saved, what)
            return
        if 400 <= status < 500:
            self.add(self.refused, (*what, status))
        if status != CONFLICT:
            self.add(self.unexpected, (kind, status, path))


# --------------------------------------------------------------------------- client behaviours

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
    if form is None:
        ledger.add(ledger.unexpected, ("edit-form", -1, path))
        return
    fields = dict(form["fields"])
    reason = token(f"save-{model}", rng)
    fields["change_reason"] = reason
    fields["save"] = "list"
    mutate(fields, reason)
    status, _, answer = client.post("save", path, fields)
    # the page's alert says why a save was refused: kept with an unexpected answer
    alert = re.search(r'class="va-alert[^"]*"[^>]*>(.*?)</', answer or "", re.S)
    where = path if status in (SAVE_OK, CONFLICT) or alert is None else (
        f"{path} ({alert.group(1).strip()[:200]})")
    ledger.outcome(status, "save", (model, pk, reason), where)


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
        if not client.login_retrying("load_editor", stop):
            return
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
        if not client.login_retrying("load_editor", stop):
            return
        status, _, html = client.get("create-form", "/admin/author/new")
        form = form_with(html, "csrf_token")
        if status != 200 or form is None:
            ledger.add(ledger.unexpected, ("create-form", status, "/admin/author/new"))
            return
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
        ledger.outcome(status, "create", ("author", "new", reason), "/admin/author/new")
        match = re.search(r"/admin/author/([^/]+)/edit", headers.get("location", ""))
        if status != SAVE_OK or not match:
            return
        pk = match.group(1)
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
        if not client.login_retrying("load_admin", stop):
            return
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
            ledger.outcome(status, "revert", ("article", pk, reason), path)
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
        if not client.login_retrying("load_editor" if seed % 2 else "load_admin", stop):
            return
        while not stop.is_set():
            path = rng.choice(pages)
            status, _, _ = client.get("read", path)
            if status != 200:
                ledger.add(ledger.unexpected, ("read", status, path))
        client.close()

    return run


def run_clients(behaviours: list[Callable[[threading.Event], None]], seconds: float) -> None:
    """Run each behaviour in its own thread until ``seconds`` have passed."""
    stop = threading.Event()
    threads = [threading.Thread(target=b, args=(stop,), daemon=True) for b in behaviours]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a load client did not stop"


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered) + 0.5)) - 1)]


_TOKEN = re.compile(r"[^a-z0-9-]")


def token(prefix: str, rng: random.Random) -> str:
    """A unique, URL-safe reason token."""
    return _TOKEN.sub("", f"{prefix}-{time.monotonic_ns()}-{rng.randrange(1 << 30)}")


# --------------------------------------------------------------------------- invariants


def check_invariants(url: str, ledger: Ledger | None = None) -> dict[str, int]:
    """Check the history against the live tables; return counts. Raises AssertionError."""
    code_dir = str(ROOT)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    import app as demo
    from versioned_admin.versioning import get_live, latest_version, model_info
    from versioned_admin.versioning.codec import encode

    engine = sa.create_engine(url)
    problems: list[str] = []
    checked_versions = 0
    records = 0
    try:
        with engine.connect() as conn, sa.orm.Session(bind=conn) as session:
            cs = sa.Table("versioned_admin_changeset", sa.MetaData(), autoload_with=conn)
            cs_ids = {r[0] for r in conn.execute(sa.select(cs.c.id))}
            used: set[int] = set()
            models = sorted(
                (m.class_ for m in demo.db.Model.registry.mappers if model_info(m.class_)),
                key=lambda cls: cls.__name__,
            )
            for model in models:
                info = model_info(model)
                assert info is not None
                pk_keys = list(info.pk_keys)
                if info.strategy == "shadow":
                    vt = info.version_table
                    assert vt is not None
                    pk_cols = [vt.c[info.mapper.get_property(k).columns[0].name] for k in pk_keys]
                    num_col, cs_col = vt.c.version, vt.c.changeset_id
                    src: Any = vt
                else:
                    src = info.table
                    pk_cols = [src.c[info.mapper.get_property(k).columns[0].name] for k in pk_keys]
                    num_col, cs_col = src.c.version_id, src.c.changeset_id
                    # exactly one current row per record
                    rows = conn.execute(
                        sa.select(*pk_cols, sa.func.count())
                        .where(src.c.is_current_version.is_(True))
                        .group_by(*pk_cols)
                        .having(sa.func.count() > 1)
                    ).all()
                    problems += [
                        f"{model.__name__} {tuple(r[:-1])}: {r[-1]} current rows" for r in rows
                    ]
                by_pk: dict[tuple[Any, ...], list[int]] = {}
                for row in conn.execute(sa.select(*pk_cols, num_col, cs_col)):
                    *pk, number, cs_id = row
                    by_pk.setdefault(tuple(pk), []).append(number)
                    used.add(cs_id)
                    checked_versions += 1
                    if cs_id not in cs_ids:
                        problems.append(
                            f"{model.__name__} {pk} v{number}: changeset {cs_id} missing"
                        )
                live_pks = {
                    tuple(r)
                    for r in session.execute(
                        sa.select(*[getattr(model, k) for k in pk_keys])
                        .select_from(model)
                        .where(
                            *(
                                ()
                                if info.strategy == "shadow"
                                else (info.table.c.is_current_version.is_(True),)
                            )
                        )
                    )
                }
                for pk, numbers in by_pk.items():
                    records += 1
                    if sorted(numbers) != list(range(1, len(numbers) + 1)):
                        problems.append(
                            f"{model.__name__} {pk}: version numbers "
                            f"{sorted(numbers)[:20]}... are not 1..n"
                        )
                for pk in live_pks | set(by_pk):
                    latest = latest_version(session, model, pk)
                    live = get_live(session, model, pk)
                    if latest is None:
                        problems.append(f"{model.__name__} {pk}: live row without versions")
                        continue
                    if live is None:
                        if not latest.is_delete:
                            problems.append(
                                f"{model.__name__} {pk}: no live row but latest "
                                f"version {latest.number} is {latest.operation}"
                            )
                        continue
                    if latest.is_delete:
                        problems.append(f"{model.__name__} {pk}: live row but latest is delete")
                        continue
                    for key, _col in info.fields:
                        have, want = encode(getattr(live, key)), encode(latest.state.get(key))
                        if have != want:
                            problems.append(
                                f"{model.__name__} {pk}.{key}: live {have!r:.60} != "
                                f"v{latest.number} {want!r:.60}"
                            )
                session.expunge_all()
            orphans = cs_ids - used
            if orphans:
                problems.append(
                    f"{len(orphans)} changesets without versions: {sorted(orphans)[:10]}"
                )
            saved_checked = 0
            if ledger is not None:
                by_reason: dict[str, list[int]] = {}
                for cs_id, reason in conn.execute(sa.select(cs.c.id, cs.c.reason)):
                    by_reason.setdefault(reason or "", []).append(cs_id)
                for model_name, pk, reason in ledger.saved:
                    ids = by_reason.get(reason, [])
                    saved_checked += 1
                    if len(ids) != 1:
                        problems.append(
                            f"acknowledged save {model_name} {pk} {reason}: {len(ids)} changesets"
                        )
                for model_name, pk, reason, status in ledger.refused:
                    if by_reason.get(reason):
                        problems.append(
                            f"refused save ({status}) {model_name} {pk} {reason} was written"
                        )
                # one version of the saved record per acknowledged changeset (the same
                # changeset may also version the other side of a relation it changed)
                counts: dict[tuple[int, str, str], int] = {}
                for model in models:
                    info = model_info(model)
                    assert info is not None
                    src = info.version_table if info.strategy == "shadow" else info.table
                    assert src is not None
                    key_col = src.c[info.pk_columns[0].name]
                    for cs_id, key in conn.execute(sa.select(src.c.changeset_id, key_col)):
                        for k in ((cs_id, model.__name__.lower(), str(key)),
                                  (cs_id, model.__name__.lower(), "new")):
                            counts[k] = counts.get(k, 0) + 1
                for m, pk, reason in ledger.saved:
                    for cs_id in by_reason.get(reason, []):
                        n = counts.get((cs_id, m.lower(), str(pk)))
                        if n != 1:
                            problems.append(f"save {reason} of {m} {pk}: {n} versions")
    finally:
        engine.dispose()
    assert not problems, "history invariants broken:\n" + "\n".join(problems[:40])
    return {
        "versions": checked_versions,
        "records": records,
        "changesets": len(cs_ids),
        "acknowledged_saves": saved_checked,
    }


def table_counts(url: str) -> dict[str, int]:
    """Row counts of every table in the database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {
                n: int(conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one())
                for n in names
            }
    finally:
        engine.dispose()


def fresh_pg_database(pg_url: str, name: str) -> str:
    """CREATE DATABASE ``name`` on ``pg_url``'s server; return its URL."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(pg_url: str, name: str) -> None:
    """DROP DATABASE ``name`` (forcing other sessions off)."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
