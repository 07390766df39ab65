"""History that never lies: a model-based test of the engine (Hypothesis ``RuleBasedStateMachine``).

Three sessions interleave adds, edits (columns, many-to-one, many-to-many, map), deletes, re-adds,
reverts, restores, flushes, commits, rollbacks, savepoints, expire, merges and bulk statements as
several users, never doing what would wait for another session; after every step the database
must equal the in-memory model (state_machine_models.py) and keep the issue's invariants.
``VERSIONED_ADMIN_HYPOTHESIS_EXAMPLES``: examples per backend (default 100, ~10 s); ``-s``: counts.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

import pytest
import state_machine_models as sm
from engine_models import versioned_sessions
from hypothesis import HealthCheck, settings, stateful
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule
from sqlalchemy import Engine, create_engine, delete, event, inspect, update
from state_machine_models import COLUMNS, DROP, Article, Expected, New, Sess

from versioned_admin import versioning as va

EXAMPLES = int(os.environ.get("VERSIONED_ADMIN_HYPOTHESIS_EXAMPLES", "100"))
SESSIONS, USERS = 3, ("alice", "bob", "carol")

# What the engine gets wrong today: each gate keeps its scenario out (a rule's precondition)
# until the fix lands; then delete the name. "name@backend" gates one backend only;
# VERSIONED_ADMIN_UNGATE=name,name runs without those gates, to try a fix. (The issue's own
# scenarios, and what this machine found before, are fixed: their gates are gone.)
KNOWN_BROKEN = frozenset({
    "rows_delete_keeps_revert_mark",  # revert() then delete(): the tombstone says reverted_from
    "rows_delete_unsaved_edits",  # a quote edited, then deleted: the edit is in the tombstone
    "rows_rollback_after_expire",  # a quote flushed, expired, rolled back: DetachedInstanceError
    "readd_same_flush_map",  # a key deleted and added again in one flush: the delete loses its map
    "revert_mark_outlives_expire",  # revert() undone by expire/savepoint marks the next edit
    "restore_stale_session",  # restore/revert of a record deleted since the session loaded it
}) - set(os.environ.get("VERSIONED_ADMIN_UNGATE", "").split(","))

texts = st.text("abc", max_size=3)
cats = st.sampled_from((None, *sm.CATEGORIES))
map_values = st.none() | st.booleans() | st.integers(2, 5) | st.text("xy", max_size=2)
MAPS = st.dictionaries(st.sampled_from(("k1", "k2")), map_values, max_size=2)
sessions_ = st.integers(0, SESSIONS - 1)
FIELDS = {k: st.fixed_dictionaries({}, optional=v) for k, v in {
    "a": {"title": texts, "body": st.none() | texts, "category_id": cats},
    "q": {"sku": texts, "price": st.integers(0, 99), "category_id": cats}}.items()}


class HistoryMachine(stateful.RuleBasedStateMachine):
    engine: Engine
    runs: list[int]

    def __init__(self) -> None:
        super().__init__()
        sm.empty_schema(self.engine)
        self.backend, self.world = self.engine.dialect.name, sm.World()
        self.request_user, self.admin, self.steps = "dora", 1, 0
        self.stack = ExitStack()
        self.maker = self.stack.enter_context(versioned_sessions(
            self.engine, user=lambda: "worker", autoflush=False))
        self.sessions: list[Sess] = []
        self.sessions += [Sess(self.maker(), self.world, self.broken, self.sessions,
                               self.acting_user) for _ in range(SESSIONS)]

    def acting_user(self, sess: Sess) -> str | None:
        """Who a changeset written now should name: the factory's user=, or the user of the
        request the session's admin serves (None while the other admin serves)."""
        return "worker" if sess.source is None else self.admin_user(sess.source)

    def admin_user(self, admin: int) -> str | None:
        return self.request_user if self.admin == admin else None

    def teardown(self) -> None:
        for sess in self.sessions:
            sess.s.close()
        self.stack.close()
        self.runs.append(self.steps)

    def broken(self, name: str) -> bool:
        return name in KNOWN_BROKEN or f"{name}@{self.backend}" in KNOWN_BROKEN

    def pick(self, data: st.DataObject, items: list[Any]) -> Any:
        return data.draw(st.sampled_from(items)) if items else None

    @initialize(articles=st.lists(st.tuples(FIELDS["a"], st.sets(st.sampled_from(sm.TAGS)),
                                            MAPS, st.booleans()), min_size=1, max_size=3),
                quotes=st.lists(st.tuples(FIELDS["q"], st.booleans()), max_size=3))
    def seed(self, articles: list[Any], quotes: list[Any]) -> None:
        """A few committed records, some of them deleted since."""
        sess = self.sessions[0]
        for values, tags, pairs, _gone in articles:
            sess.add("a", None, values, tags, pairs)
        for n, (values, _gone) in enumerate(quotes, 1):
            sess.add("q", ("q", n), values)
        sess.commit()
        for key, (*_v, gone) in zip(sorted(self.world.records), articles + quotes, strict=True):
            if gone:
                sess.s.delete(sess.obtain(key))
                sess.dels.add(key)
        sess.commit()

    @rule(data=st.data(), commit=st.booleans())
    def flush(self, data: st.DataObject, commit: bool) -> None:
        sess = self.pick(data, [x for x in self.sessions if x.flushable() and (
            x.pending() or commit and (x.out or x.marks))])
        if sess:
            sess.commit() if commit else sess.flush()

    @rule(data=st.data())
    def rollback(self, data: st.DataObject) -> None:
        sess = self.pick(data, [x for x in self.sessions if x.pending() or x.out or x.marks])
        if sess:
            sess.rollback()

    @rule(data=st.data())
    def lost_race(self, data: st.DataObject) -> None:
        """A quote changed or deleted elsewhere since it was loaded: the flush is refused."""
        sess = self.pick(data, [x for x in self.sessions if x.lost() and not x.blocked(
            set(x.edits) | x.dels | {n.key for n in x.new})])
        if sess:
            with pytest.raises(va.StaleVersionError):
                sess.s.flush()
            sess.rollback()

    @rule(data=st.data(), action=st.sampled_from(("begin", "release", "rollback")))
    def savepoint(self, data: st.DataObject, action: str) -> None:
        kept = self.broken("revert_mark_outlives_expire")
        sess = self.pick(data, [x for x in self.sessions if (
            len(x.marks) < 2 and x.flushable() if action == "begin" else x.marks and (
                x.flushable() if action == "release" else not (kept and x.reverts)))])
        if not sess:
            return
        if action != "rollback":
            sess.flush()
        if action == "begin":
            if self.backend != "sqlite" or sess.writer():  # else SQLite's RELEASE commits
                sess.marks.append((sess.s.begin_nested(), dict(sess.done), len(sess.out),
                                   set(sess.created), sess.user, sess.reason))
            return
        nested, done, n_out, created, user, reason = sess.marks.pop()
        (nested.commit if action == "release" else nested.rollback)()
        if action == "rollback":
            touched = set(sess.edits) | {k for k, _e in sess.out[n_out:]}
            sess.objs = {k: v for k, v in sess.objs.items() if k not in sess.created - created}
            sess.view = {k: v for k, v in sess.view.items() if k not in touched}
            sess.done, sess.out, sess.created = done, sess.out[:n_out], created
            sess.user, sess.reason = user, reason  # set_user()/set_reason() go with it
            sess.edits, sess.rel, sess.dels, sess.new, sess.reverts = {}, set(), set(), [], {}
        if sess.cs is not None and sess.cs[1] > len(sess.marks):
            sess.cs = [sess.cs[0], len(sess.marks)] if action == "release" else None

    @rule(data=st.data(), i=sessions_, kind=st.sampled_from("aq"),
          tags=st.sets(st.sampled_from(sm.TAGS)), settings=MAPS)
    def add(self, data: st.DataObject, i: int, kind: str, tags: set[int],
            settings: dict[str, Any]) -> None:
        """A new record: the database's key, or a deleted record's key (a re-add)."""
        sess = self.sessions[i]
        free = [k for k in sess.known(kind) if sess.revivable(k)]
        free += [("q", n) for n in range(1, 7) if ("q", n) not in self.world.records
                 and not sess.busy(("q", n))] if kind == "q" else []
        sess.add(kind, self.pick(data, [None, *free]), data.draw(FIELDS[kind]), tags, settings)

    def target(self, data: st.DataObject, kind: str = "aq", test: Any = None) -> Any:
        sess = self.sessions[data.draw(sessions_)]
        keys = [k for k in sess.editable(kind) if test is None or test(sess, k)]
        hot = [k for k in keys if any(k in x.view for x in self.sessions)]  # loaded somewhere
        key = self.pick(data, hot if hot and data.draw(st.booleans()) else keys)
        return None if key is None else (sess, key, sess.obtain(key))

    @rule(data=st.data(), cat=cats, how=st.sampled_from(("columns", "relationship", "merge")))
    def edit(self, data: st.DataObject, cat: int | None, how: str) -> None:
        """Columns, the many-to-one's relationship (not after a column set), or a merged copy."""
        found = self.target(data, "aq", lambda sess, k: (
            k not in sess.done and k not in sess.rel and not sess.stale(k)) if how == "merge"
            else how == "columns" or k in sess.rel or "category_id" not in sess.edits.get(k, {}))
        if not found:
            return
        sess, key, obj = found
        changes = data.draw(FIELDS[key[0]].filter(bool))
        if how == "relationship":
            obj.category, changes = sess.s.get(sm.Category, cat) if cat else None, {}
            sess.edits.setdefault(key, {})["category_id"] = cat
            sess.rel.add(key)
        elif how == "merge":
            with self.maker() as scratch:
                obj = scratch.get(Article, key[1]) if key[0] == "a" \
                    else va.get_live(scratch, sm.Quote, key[1])
                changes = {**{c: getattr(obj, c) for c in COLUMNS[key[0]]}, **changes}
        elif key in sess.rel:
            changes.pop("category_id", None)  # the relationship's value wins at the flush
        for f, v in changes.items():
            setattr(obj, f, v)
        if how == "merge":
            sess.s.merge(obj)
        if changes:
            sess.edits.setdefault(key, {}).update(changes)

    @rule(data=st.data(), tag=st.none() | st.sampled_from(sm.TAGS), value=map_values,
          name=st.sampled_from(("k1", "k2", "k3")), drop=st.booleans())
    def edit_collection(self, data: st.DataObject, tag: int | None, name: str, value: Any,
                        drop: bool) -> None:
        """Add or remove a tag; or (tag None) set or remove a key of the versioned map."""
        found = self.target(data, "a", lambda sess, k: tag is None or sess.fresh_tags(k))
        if not found:
            return
        sess, key, obj = found
        edit = sess.edits.setdefault(key, {})
        if tag is None:
            obj.settings.pop(name, None) if drop else obj.settings.__setitem__(name, value)
            edit.setdefault("settings", {})[name] = DROP if drop else value
            return
        now = set(edit.get("tags", sess.view[key]["tags"]))
        if tag in now:
            obj.tags.remove(next(t for t in obj.tags if t.id == tag))
        else:
            obj.tags.append(sess.s.get(sm.Tag, tag))
        edit["tags"] = sorted(now ^ {tag})

    @rule(data=st.data(), readd=st.booleans())
    def delete(self, data: st.DataObject, readd: bool) -> None:
        """Delete; or delete and add the same key again, in one flush."""
        found = self.target(data, test=lambda sess, k: k[0] == "a" or not (
            k in sess.edits and self.broken("rows_delete_unsaved_edits")) and not (
            k in sess.reverts and self.broken("rows_delete_keeps_revert_mark")))
        if found:
            sess, key, obj = found
            sess.s.delete(obj)
            sess.dels.add(key)
            sess.edits.pop(key, None), sess.reverts.pop(key, None), sess.rel.discard(key)
            if readd and not (self.broken("readd_same_flush_map") and sess.visible(key).get(
                    "settings")):
                sess.add(key[0], key, data.draw(FIELDS[key[0]]))

    @rule(data=st.data(), with_tags=st.booleans(), back=st.booleans())
    def revert(self, data: st.DataObject, with_tags: bool, back: bool) -> None:
        """Revert a record to a version (a deleted one comes back); or restore a deleted one."""
        sess = self.sessions[data.draw(sessions_)]
        alive = set(sess.editable())
        key = self.pick(data, [k for k in sess.known("aq") if (k in alive and not back) or (
            sess.revivable(k))])
        if key is None:
            return
        history = sess.history(key)
        if back:
            obj = va.restore(sess.s, sm.MODELS[key[0]], key[1])
            sess.new.append(New(obj, key, dict(history[-1].state), len(history) - 1 or None))
            return
        number = data.draw(st.sampled_from([n for n, e in enumerate(history, 1)
                                            if e.op != "delete"]))
        state = history[number - 1].state
        relations = ("tags",) if with_tags and key[0] == "a" and sess.fresh_tags(key) else ()
        if key not in alive:
            obj = va.revert(sess.s, sm.MODELS[key[0]], number, pk=key[1], relations=relations)
            tags = {"tags": []} if key[0] == "a" and not relations else {}
            sess.new.append(New(obj, key, {**state, **tags}, number))
            return
        obj = sess.obtain(key)
        edit = sess.edits.setdefault(key, {})
        edit.update({c: state[c] for c in COLUMNS[key[0]]  # a relationship's value wins
                     if c != "category_id" or key not in sess.rel})
        if key[0] == "a":
            now = sm.with_ops(sess.view[key]["settings"], edit.get("settings", {}))
            edit["settings"] = {**edit.get("settings", {}), **dict.fromkeys(now, DROP),
                                **state["settings"]}
            if relations:
                edit["tags"] = list(state["tags"])
        va.revert(sess.s, obj, number, relations=relations)
        sess.reverts[key] = number

    @rule(data=st.data(), how=st.sampled_from(("expire", "refresh", "expire_all")))
    def expire(self, data: st.DataObject, how: str) -> None:
        """Expire or refresh instances: their unflushed changes are gone."""
        sess = self.sessions[data.draw(sessions_)]
        keys = [k for k in sorted(sess.view) if k not in sess.dels and (how == "expire_all" or (
            inspect(sess.objs[k]).persistent and (how == "expire" or sess.visible(k))))]
        keys = keys if how == "expire_all" or not keys else [self.pick(data, keys)]
        if not keys or set(keys) & set(sess.reverts) and self.broken(
                "revert_mark_outlives_expire") or self.broken("rows_rollback_after_expire") \
                and any(k[0] == "q" for k in sess.done):
            return
        sess.s.expire_all() if how == "expire_all" else getattr(sess.s, how)(sess.objs[keys[0]])
        for key in keys:
            sess.view.pop(key), sess.edits.pop(key, None), sess.reverts.pop(key, None)
            sess.rel.discard(key)
        if how == "refresh":
            sess.obtain(keys[0])

    @rule(data=st.data(), cat=cats, body=st.none() | texts, racing=st.booleans(),
          erase=st.booleans())
    def bulk(self, data: st.DataObject, cat: int | None, body: Any, racing: bool,
             erase: bool) -> None:
        """update() of the articles of a category, or delete() of some. ``racing`` (PostgreSQL;
        SQLite's bulk statements take the write lock first): another session commits an article
        of that category just before the UPDATE runs, which must leave it alone."""
        articles = set(self.sessions[0].known("a"))
        sess = self.pick(data, [x for x in self.sessions if not x.pending()
                                and not x.blocked(articles | set(x.done))])
        if not sess:
            return
        racing = racing and bool(cat) and not erase and self.backend != "sqlite"
        keys = data.draw(st.lists(st.sampled_from(sorted(articles)), max_size=3, unique=True)) \
            if erase and articles else [] if erase else [
                k for k in sess.known("a") if (sess.visible(k) or {}).get("category_id") == cat]
        stmt = delete(Article).where(Article.id.in_([k[1] for k in keys])) if erase \
            else update(Article).where(Article.category_id == cat).values(body=body)
        raced: list[int] = []

        def race(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if racing and not raced and statement.startswith("UPDATE sm_article SET"):
                with self.maker() as other:
                    va.set_user(other, "racer")
                    other.add(obj := Article(title="racer", category_id=cat))
                    other.commit()
                    raced.append(obj.id)

        event.listen(self.engine, "before_cursor_execute", race)
        try:
            sess.s.execute(stmt.execution_options(synchronize_session="fetch"))
        finally:
            event.remove(self.engine, "before_cursor_execute", race)
        for pk in raced:
            state = {"id": pk, "title": "racer", "body": None, "category_id": cat}
            self.world.apply([(("a", pk), Expected("insert", {**state, "tags": [],
                                                              "settings": {}}))], "racer", None)
        sess.bulk_done(keys, DROP if erase else body)

    @rule(i=sessions_, what=st.sampled_from([("user", u) for u in (*USERS, None)] + [
        ("reason", r) for r in (None, "typo", "  legal  ", "")]))
    def acting(self, i: int, what: tuple[str, str | None]) -> None:
        """set_user() or set_reason() in the session's transaction (or savepoint)."""
        sess, (name, value) = self.sessions[i], what
        (va.set_user if name == "user" else va.set_reason)(sess.s, value)
        setattr(sess, name, value if name == "user" else (value or "").strip() or None)

    @rule(i=sessions_, admin=st.sampled_from((1, 2)), user=st.sampled_from(("dora", "erin", None)))
    def request(self, i: int, admin: int, user: str | None) -> None:
        """Admin 1 or 2 (two admins, one session factory) serves a request of ``user`` with
        session i: its set_user_source() names the request's user in its changesets."""
        sess = self.sessions[i]
        if sess.source != admin:
            va.set_user_source(sess.s, lambda: self.admin_user(admin))
            sess.source = admin
        self.request_user, self.admin = user, admin

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """The session's instance holds what the model says it holds."""
        found = self.target(data)
        if found:
            sess, key, obj = found
            edit, view = sess.edits.get(key, {}), sess.view[key]
            got = {c: getattr(obj, c) for c in COLUMNS[key[0]]
                   if c != "category_id" or key not in sess.rel}  # set at the flush
            assert got == {c: edit.get(c, view[c]) for c in got}, key
            if key[0] == "a":
                assert sorted(t.id for t in obj.tags) == edit.get("tags", view["tags"]), key
                assert dict(obj.settings) == sm.with_ops(view["settings"], edit.get(
                    "settings", {})), f"{key}: map"

    @invariant()
    def database_equals_model(self) -> None:
        self.steps += 1
        sm.check_database(self.engine, self.world)


@pytest.mark.slow
def test_history_never_lies(db_url: str, record_property: Any) -> None:
    pg = {"options": "-c lock_timeout=5000"} if "postgresql" in db_url else {}  # no hanging
    engine = create_engine(db_url, connect_args=pg)
    sm.create_schema(engine)
    machine = type("Machine", (HistoryMachine,), {"engine": engine, "runs": []})
    try:
        stateful.run_state_machine_as_test(machine, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
            report_multiple_bugs=False, suppress_health_check=[
                HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                HealthCheck.filter_too_much]))
    finally:
        engine.dispose()
    record_property("examples", len(machine.runs))
    print(f"\n{engine.dialect.name}: {len(machine.runs)} examples, {sum(machine.runs)} steps")
