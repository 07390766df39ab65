"""Models, the in-memory model and the database checks of test_engine_state_machine.py: per
record the versions it should have, per commit the user and reason in force, per session what its
instances hold, its unflushed changes and what its open transaction wrote."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from versioned_admin import versioning as va


class Base(DeclarativeBase):
    pass


article_tag = sa.Table(
    "sm_article_tag", Base.metadata,
    sa.Column("article_id", sa.ForeignKey("sm_article.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("sm_tag.id"), primary_key=True),
)


class Category(Base):
    __tablename__ = "sm_category"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)


class Tag(Base):
    __tablename__ = "sm_tag"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)


class Article(va.Versioned, Base):  # shadow strategy: a many-to-one, many-to-many and a map
    __tablename__ = "sm_article"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(40))
    body: Mapped[str | None] = mapped_column(sa.Text)
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sm_category.id"))
    category: Mapped[Category | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=article_tag)
    settings = va.VersionedMap()


class Quote(va.VersionedRows, Base):  # rows strategy: each change a new row (id, version_id)
    __tablename__ = "sm_quote"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(20))
    price: Mapped[int] = mapped_column(sa.Integer)
    category_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sm_category.id"))
    category: Mapped[Category | None] = relationship()


CATEGORIES, TAGS = (1, 2, 3), (1, 2, 3, 4)
COLUMNS = {"a": ("title", "body", "category_id"), "q": ("sku", "price", "category_id")}
DEFAULTS: dict[str, dict[str, Any]] = {"a": {"title": "", "body": None, "category_id": None},
                                       "q": {"sku": "", "price": 0, "category_id": None}}
MODELS: dict[str, Any] = {"a": Article, "q": Quote}
Key = tuple[str, int]  # ("a", article id) or ("q", quote id)
DROP = object()  # in map edits: the key is removed; as Sess.user: set_user() was not called


def with_ops(base: dict[str, Any], ops: dict[str, Any]) -> dict[str, Any]:
    """A map after key edits (a value, or DROP: the key removed)."""
    out = {**base, **ops}
    return {k: v for k, v in out.items() if v is not DROP}


def create_schema(engine: sa.Engine) -> None:
    """Create the tables once per test; SQLite enforces foreign keys (ON DELETE CASCADE)."""
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA foreign_keys=ON"))
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(Category.__table__), [{"id": i} for i in CATEGORIES])
        conn.execute(sa.insert(Tag.__table__), [{"id": i} for i in TAGS])


def empty_schema(engine: sa.Engine) -> None:
    """Delete every versioned row and every changeset: a fresh schema per example, fast."""
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in ("sm_category", "sm_tag"):
                conn.execute(sa.delete(table))


@dataclass
class Expected:  # one version a record should have
    op: str
    state: dict[str, Any]  # id and columns (+ "tags" and "settings" for articles)
    commit: int = 0
    reverted_from: int | None = None


@dataclass
class World:  # what the database should hold: records' versions, commits' users and reasons
    records: dict[Key, list[Expected]] = field(default_factory=dict)
    commits: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)

    def live(self, key: Key) -> dict[str, Any] | None:
        found = self.records.get(key)
        return None if not found or found[-1].op == "delete" else found[-1].state

    def apply(self, written: list[tuple[Key, Expected]], user: Any, reason: Any) -> None:
        """A commit: its versions join the records' histories."""
        if written:
            self.commits[token := len(self.commits) + 1] = (user, reason)
            for key, exp in written:
                self.records.setdefault(key, []).append(
                    Expected(exp.op, exp.state, token, exp.reverted_from))


@dataclass
class New:  # an object added to a session, not flushed yet
    obj: Any
    key: Key | None  # None: the database gives the key
    state: dict[str, Any]
    source: int | None = None  # reverted_from of its insert


class Sess:
    """One session and what the model knows of it; ``team``: every session, this one too."""

    def __init__(self, s: Session, world: World, broken: Any, team: list[Sess], user: Any) -> None:
        self.s, self.world, self.broken, self.team, self.user_of = s, world, broken, team, user
        self.sqlite = s.get_bind().dialect.name == "sqlite"
        self.source: int | None = None  # the admin whose set_user_source() the session has
        self.objs: dict[Key, Any] = {}  # instances the application holds on to
        self.reset()

    def reset(self) -> None:
        """The transaction ended: every instance is expired."""
        self.view: dict[Key, dict[str, Any]] = {}  # what each loaded instance holds
        self.edits: dict[Key, dict[str, Any]] = {}  # unflushed changes ("settings": key ops)
        self.rel: set[Key] = set()  # many-to-one assigned through the relationship
        self.new: list[New] = []
        self.dels: set[Key] = set()
        self.done: dict[Key, dict[str, Any] | None] = {}  # what this transaction wrote
        self.out: list[tuple[Key, Expected]] = []
        self.created: set[Key] = set()
        self.locks: set[Key] = set()
        self.marks: list[Any] = []  # open savepoints
        self.reverts: dict[Key, int] = {}
        self.user: Any = DROP
        self.reason: str | None = None
        self.cs: list[Any] | None = None  # [the user callable's user, savepoint depth]

    def pending(self) -> bool:
        return bool(self.edits or self.new or self.dels)

    def writer(self) -> bool:
        """SQLite: this session holds the database's write lock."""
        return self.sqlite and self.s.in_transaction() and bool(
            self.s.connection().connection.driver_connection.in_transaction)

    def visible(self, key: Key) -> dict[str, Any] | None:
        """The record as this session's transaction reads it from the database."""
        return self.done[key] if key in self.done else self.world.live(key)

    def history(self, key: Key) -> list[Expected]:
        return self.world.records.get(key, []) + [e for k, e in self.out if k == key]

    def known(self, kinds: str = "aq") -> list[Key]:
        return sorted(k for k in {*self.world.records, *self.done} if k[0] in kinds)

    def old_row(self, key: Key) -> bool:
        """Rows strategy: the instance is a row the record has moved on from."""
        state = sa.inspect(self.objs[key])
        return state.persistent and state.identity[1] != len(self.history(key))

    def stale(self, key: Key) -> bool:
        """The instance holds what the database no longer has (another session committed)."""
        vis, view = self.visible(key), self.view.get(key)
        if vis is None or view is None or key not in self.objs:
            return False
        if key[0] == "q":
            return self.old_row(key)
        return any(view[c] != vis[c] for c in (*COLUMNS["a"], "tags", "settings"))

    def fresh_tags(self, key: Key) -> bool:
        return key not in self.view or self.view[key]["tags"] == (self.visible(key) or {})["tags"]

    def editable(self, kinds: str = "aq") -> list[Key]:
        return [k for k in self.known(kinds) if self.visible(k) is not None and k not in self.dels
                and not (k[0] == "q" and self.stale(k) and self.broken("rows_stale_instance"))]

    def busy(self, key: Key) -> bool:
        """Some session has unflushed work or a lock on this key."""
        return any(key in x.locks or key in x.dels or key in x.edits
                   or any(n.key == key for n in x.new) for x in self.team)

    def revivable(self, key: Key) -> bool:
        """Deleted, and free to be restored or re-added here."""
        return self.visible(key) is None and not self.busy(key) and not (
            key in self.view and self.broken("restore_stale_session"))

    def blocked(self, keys: set[Key]) -> bool:
        """Writing ``keys`` would wait for another session (SQLite: its one writer)."""
        others = [x for x in self.team if x is not self]
        return any(x.writer() if self.sqlite else x.locks & keys for x in others)

    def lost(self) -> bool:
        """A pending change of a quote changed or deleted elsewhere since it was loaded."""
        return any(k[0] == "q" and (self.visible(k) is None or self.stale(k))
                   for k in self.dels | set(self.edits))

    def flushable(self) -> bool:
        """A flush would neither wait for another session nor fail (a conflict, a gated bug)."""
        if self.lost() or self.blocked(set(self.edits) | self.dels | {n.key for n in self.new}):
            return False
        for key in self.dels | set(self.edits):
            vis, edit = self.visible(key), self.edits.get(key, {})
            if vis is None:  # deleted meanwhile: an edit, a re-add (an UPDATE) or the delete
                if edit or any(n.key == key for n in self.new) or self.view[key]["tags"]:
                    return False  # of links (SQLAlchemy's StaleDataError) finds no row
            elif "tags" in edit and self.view[key]["tags"] != vis["tags"]:
                return False  # a link added or removed meanwhile: a conflict, not a bug
        return True

    def rollback(self) -> None:
        self.s.rollback()
        for key in self.created:
            self.objs.pop(key, None)
        self.reset()

    def obtain(self, key: Key) -> Any:
        """The instance of a live record, loaded as an application would."""
        if key in self.objs and key[0] == "q" and key not in self.view and self.old_row(key):
            del self.objs[key]  # ask for the live row
        if key not in self.objs:
            found = self.s.get(Article, key[1]) if key[0] == "a" \
                else va.get_live(self.s, Quote, key[1])
            assert found is not None, f"{key} is live in the model"
            self.objs[key] = found
        obj = self.objs[key]
        if key not in self.view:
            vis = self.visible(key)
            assert vis is not None
            for c in COLUMNS[key[0]]:
                getattr(obj, c)
            if key[0] == "a":
                list(obj.tags), dict(obj.settings)
            self.view[key] = dict(vis)
        return obj

    def add(self, kind: str, key: Key | None, values: dict[str, Any], tags: Any = (),
            settings: Any = None) -> None:
        """Add a new record to the session."""
        state = {**DEFAULTS[kind], **values}
        obj = MODELS[kind](**state)
        if key:
            obj.id = key[1]
        if kind == "a":
            state.update(tags=sorted(tags), settings=dict(settings or {}))
            obj.tags = [self.s.get(Tag, t) for t in state["tags"]]
            obj.settings = state["settings"]
        self.s.add(obj)
        self.new.append(New(obj, key, state))

    def flush(self) -> None:
        """Flush; the versions it must write go to the transaction's list."""
        written = [(k, Expected("delete", vis)) for k in sorted(self.dels)
                   if (vis := self.visible(k)) is not None]
        for key, edit in self.edits.items():
            vis, view = self.visible(key), self.view[key]
            assert vis is not None
            new = {f: with_ops(vis[f], v) if f == "settings" else v for f, v in edit.items()
                   if (with_ops(view[f], v) if f == "settings" else v) != view[f]}
            if new:
                written.append((key, Expected("update", {**vis, **new}, 0, self.reverts.get(key))))
        self.s.flush()
        self.flushed(written)

    def flushed(self, written: list[tuple[Key, Expected]]) -> None:
        """After a flush (or bulk statement) that wrote ``written``."""
        for new in self.new:
            key = new.key or (("a" if isinstance(new.obj, Article) else "q"), new.obj.id)
            state = {**new.state, "id": key[1]}
            written.append((key, Expected("insert", state, 0, new.source)))
            self.objs[key], self.view[key] = new.obj, dict(state)
            self.created.add(key)
        for key, edit in self.edits.items():
            self.view[key].update({f: with_ops(self.view[key][f], v) if f == "settings" else v
                                   for f, v in edit.items()})
        for key in self.dels:
            self.objs.pop(key, None), self.view.pop(key, None)
        for key, exp in written:
            self.out.append((key, exp))
            self.done[key] = None if exp.op == "delete" else exp.state
            self.locks.add(key)
        if written and self.cs is None:
            self.cs = [self.user_of(self), len(self.marks)]
        self.edits, self.rel, self.dels, self.new, self.reverts = {}, set(), set(), [], {}

    def bulk_done(self, keys: list[Key], body: Any) -> None:
        """After update(Article)...values(body=body) of ``keys`` (DROP: delete() of them)."""
        written = []
        for key in keys:
            if (vis := self.visible(key)) is None:
                continue
            self.locks.add(key)
            if body is DROP:
                written.append((key, Expected("delete", vis)))
                self.objs.pop(key, None), self.view.pop(key, None)
                continue
            if vis["body"] != body:
                written.append((key, Expected("update", {**vis, "body": body})))
            if key in self.view:
                self.view[key]["body"] = body  # synchronize_session="fetch"
        self.flushed(written)

    def commit(self) -> None:
        """Flush and commit; the world takes the transaction's versions."""
        self.flush()
        self.s.commit()
        cs_user = self.user if self.user is not DROP else self.cs[0] if self.cs else None
        self.world.apply(self.out, cs_user, self.reason)
        self.reset()


def read_database(engine: sa.Engine) -> dict[str, Any]:
    """Everything the checks need, through a fresh connection."""
    md = Base.metadata
    vt, cs = md.tables["sm_article_version"], md.tables[va.CHANGESET_TABLE]
    values, entries = md.tables["sm_article_settings_value"], md.tables["sm_article_settings_entry"]
    got: dict[str, Any] = {"articles": {}, "versions": {}, "maps": {}, "quotes": {}}
    with engine.connect() as conn:
        for r in conn.execute(sa.select(Article.__table__)):
            got["articles"][r.id] = {"id": r.id, "title": r.title, "body": r.body,
                                     "category_id": r.category_id, "tags": []}
        for r in conn.execute(sa.select(article_tag).order_by(article_tag.c.tag_id)):
            got["articles"][r.article_id]["tags"].append(r.tag_id)
        for r in conn.execute(sa.select(vt).order_by(vt.c.id, vt.c.version)):
            got["versions"].setdefault(r.id, []).append(r)
        for r in conn.execute(sa.select(entries.c.parent_id, entries.c.version.label("number"),
                                     values.c.key, values.c.kind, values.c.str_value,
                                     values.c.int_value, values.c.bool_value)
                              .join(values, values.c.value_id == entries.c.value_id)):
            value = {"str": r.str_value, "int": r.int_value, "null": None,
                     "bool": r.bool_value if r.bool_value is None else bool(r.bool_value)}
            got["maps"].setdefault((r.parent_id, r.number), {})[r.key] = value[r.kind]
        for r in conn.execute(sa.select(Quote.__table__).order_by(Quote.id, Quote.version_id)):
            got["quotes"].setdefault(r.id, []).append(r)
        got["changesets"] = {r.id: (r.user, r.reason) for r in conn.execute(sa.select(cs))}
    return got


def check_database(engine: sa.Engine, world: World) -> None:
    """The invariants of the issue, and the database equal to the model."""
    db = read_database(engine)
    by_commit: dict[int, set[int]] = {}
    histories = [(("a", pk), rows, "version") for pk, rows in db["versions"].items()]
    histories += [(("q", pk), rows, "version_id") for pk, rows in db["quotes"].items()]
    assert {k for k, _r, _n in histories} == set(world.records), "records with a history"
    for key, rows, number in histories:
        expected, state = world.records[key], {}
        numbers = [getattr(r, number) for r in rows]
        assert numbers == list(range(1, len(rows) + 1)), f"{key}: numbers {numbers}"
        ops = [r.operation for r in rows]
        assert ops == [e.op for e in expected], f"{key}: operations {ops}"
        for row, exp in zip(rows, expected, strict=True):
            if key[0] == "a":
                state = {**row.state, "tags": sorted(row.state.get("tags", [])),
                         "settings": db["maps"].get((row.id, row.version), {})}
            else:
                state = {"id": row.id, **{c: getattr(row, c) for c in COLUMNS["q"]}}
            assert state == exp.state, f"{key} v{getattr(row, number)}: {state} != {exp.state}"
            assert row.reverted_from == exp.reverted_from, f"{key}: reverted_from"
            assert row.changeset_id in db["changesets"], f"{key}: version without changeset"
            by_commit.setdefault(exp.commit, set()).add(row.changeset_id)
        if key[0] == "a":
            live = db["articles"].get(key[1])
            live = live and {**live, "settings": state["settings"]}
        else:
            current = [r for r in rows if r.is_current_version]
            assert current in ([], rows[-1:]), f"{key}: current rows {current}"
            live = current and {"id": key[1], **{c: getattr(rows[-1], c) for c in COLUMNS["q"]}}
        live = live or None
        assert (live is None) == (rows[-1].operation == "delete"), f"{key}: live row vs op"
        assert live is None or live == state, f"{key}: live {live} != latest version {state}"
        assert live == world.live(key), f"{key}: database {live} != model {world.live(key)}"
    assert set(db["articles"]) <= {k[1] for k in world.records if k[0] == "a"}, "unversioned"
    used = set().union(*by_commit.values())
    assert used == set(db["changesets"]), "changesets without versions"
    for commit, ids in by_commit.items():
        assert len(ids) == 1, f"commit {commit} spread over changesets {ids}"
        assert db["changesets"][min(ids)] == world.commits[commit], f"changeset {ids}: user"
    assert len(by_commit) == len(world.commits) == len(used), "one changeset per commit"
