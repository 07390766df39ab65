"""verify: check that the stored history tells the truth about the data, and record each run.

The checks read every table in keyset batches (see verify_scan), so a run over millions of
rows holds one batch at a time; problems are yielded as they are found.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    inspect,
    select,
)
from sqlalchemy.orm import Session, configure_mappers

from .schema import ModelInfo, registered, require_info
from .tables import UTCDateTime
from .types import VersioningError
from .verify_rows import rows_problems
from .verify_scan import Invariant, Problem, Tally, orphan_changesets
from .verify_shadow import shadow_problems

VERIFICATION_TABLE = "versioned_admin_verification"


@dataclass(frozen=True)
class VerificationRun:
    """One recorded run of verify, as ``last_verification`` reads it back."""

    id: int
    started_at: dt.datetime
    finished_at: dt.datetime
    records: int
    versions: int
    problems: int  # findings that failed the run (warnings too, if it was strict)
    warnings: int
    ok: bool
    strict: bool
    models: tuple[str, ...]


@dataclass
class VerifyReport:
    """The outcome of ``verify_history``: counts per invariant and the first problems found."""

    started_at: dt.datetime
    strict: bool = False
    finished_at: dt.datetime | None = None
    models: tuple[str, ...] = ()
    records: int = 0
    versions: int = 0
    counts: Counter[Invariant] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)  # the first ``keep`` found
    run_id: int | None = None

    @property
    def failures(self) -> int:
        """Findings that fail the run: every problem, and warnings too when strict."""
        return sum(n for inv, n in self.counts.items() if self.strict or not inv.warning)

    @property
    def warnings(self) -> int:
        """Findings that are warnings (unversioned rows, schema drift)."""
        return sum(n for inv, n in self.counts.items() if inv.warning)

    @property
    def ok(self) -> bool:
        """True if nothing failed."""
        return self.failures == 0

    @property
    def seconds(self) -> float:
        """How long the run took."""
        end = self.finished_at or dt.datetime.now(dt.UTC)
        return (end - self.started_at).total_seconds()


def verification_table() -> Table:
    """The table of recorded runs (in a MetaData of its own: it belongs to no model)."""
    return Table(
        VERIFICATION_TABLE,
        MetaData(),
        Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
               autoincrement=True),
        Column("started_at", UTCDateTime(), nullable=False),
        Column("finished_at", UTCDateTime(), nullable=False),
        Column("records", BigInteger, nullable=False),
        Column("versions", BigInteger, nullable=False),
        Column("problems", BigInteger, nullable=False),
        Column("warnings", BigInteger, nullable=False),
        Column("ok", Boolean, nullable=False),
        Column("strict", Boolean, nullable=False),
        Column("models", Text, nullable=False),
    )


def _exists(session: Session, table: Table) -> bool:
    return bool(inspect(session.connection()).has_table(table.name, schema=table.schema))


def models_to_verify(
    session: Session, models: Iterable[type] | None = None, metadata: MetaData | None = None
) -> list[ModelInfo]:
    """The versioned models a run checks: ``models``, or every registered one (of ``metadata``)
    whose table exists in the session's database; a subclass stands for its hierarchy's base.
    Raises VersioningError for a named model that is not versioned or whose tables are
    missing."""
    configure_mappers()  # collections and late history tables are known only then
    if models is not None:
        infos = list({id(i): i for i in (require_info(m) for m in models)}.values())
        for info in infos:
            if not _exists(session, info.table):
                raise VersioningError(f"{info.model.__name__}: table {info.table.name} does "
                                      "not exist")
    else:
        infos = [i for i in registered()
                 if (metadata is None or i.table.metadata is metadata)
                 and _exists(session, i.table)]
    # A subclass shares its base's table and history: verifying the base covers its records.
    infos = list({id(i.root): i.root for i in infos}.values())
    for info in infos:
        if info.version_table is not None and not _exists(session, info.version_table):
            raise VersioningError(f"{info.model.__name__}: history table "
                                  f"{info.version_table.name} does not exist")
    return sorted(infos, key=lambda i: (i.table.name, i.model.__name__))


def versioned_models(session: Session, metadata: MetaData | None = None) -> list[type]:
    """Every registered versioned model (of ``metadata``) whose table exists in the database."""
    configure_mappers()
    return [i.model for i in registered()
            if (metadata is None or i.table.metadata is metadata) and _exists(session, i.table)]


def _referencing(session: Session, changesets: Table) -> list[Column[Any]]:
    """Columns of history tables that point at ``changesets``."""
    # Map value rows are always written with a version of the same changeset, and have no
    # index on changeset_id: asking them would scan the whole table per batch.
    values = {id(s.values) for i in registered() if i.changesets is changesets
              for s in i.maps.values()}
    found: list[Column[Any]] = []
    for table in changesets.metadata.sorted_tables:
        if table is changesets or id(table) in values:
            continue
        cols = [fk.parent for fk in table.foreign_keys if fk.column.table is changesets]
        if cols and _exists(session, table):
            found.extend(cols)
    return found


def check(
    session: Session,
    infos: list[ModelInfo],
    *,
    batch_size: int = 1000,
    changesets: bool = True,
    tally: Tally | None = None,
) -> Iterator[Problem]:
    """Yield the problems of these models, then (``changesets``) their orphan changesets."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    tally = tally if tally is not None else Tally()
    for info in infos:
        if info.strategy == "rows":
            yield from rows_problems(session, info, batch_size, tally)
        else:
            yield from shadow_problems(session, info, batch_size, tally)
    if changesets:
        tables = {id(i.changesets): i.changesets for i in infos}
        for table in tables.values():
            cols = _referencing(session, table)
            yield from orphan_changesets(session, table, cols, batch_size)


def iter_problems(
    session: Session,
    models: Iterable[type] | None = None,
    *,
    metadata: MetaData | None = None,
    batch_size: int = 1000,
    changesets: bool | None = None,
) -> Iterator[Problem]:
    """Yield each record that breaks an invariant, as found (warnings included).

    ``models`` defaults to every versioned model (of ``metadata``) whose table exists;
    ``changesets`` (default: when ``models`` is None) also looks for orphan changesets.
    """
    infos = models_to_verify(session, models, metadata)
    wanted = models is None if changesets is None else changesets
    yield from check(session, infos, batch_size=batch_size, changesets=wanted)


def _snapshot(session: Session) -> None:
    """Read everything from one snapshot where the database offers one cheaply."""
    # In READ COMMITTED a writer committing between two batches could make a record look
    # inconsistent (its new version read, its old live row not yet): REPEATABLE READ sees
    # one moment. Only possible before the session's transaction has a connection.
    if not session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def verify_history(
    session: Session,
    models: Iterable[type] | None = None,
    *,
    metadata: MetaData | None = None,
    batch_size: int = 1000,
    strict: bool = False,
    changesets: bool | None = None,
    keep: int = 100,
    record: bool = True,
    on_problem: Callable[[Problem], None] | None = None,
) -> VerifyReport:
    """Check the history of ``models`` (default: all, see ``iter_problems``) and report.

    The report counts every finding per invariant and keeps the first ``keep``; ``on_problem``
    sees each as it is found. Warnings fail the run only if ``strict``. ``record`` stores the
    run in ``versioned_admin_verification`` (created if missing) in the session's
    transaction: commit to keep it.
    """
    _snapshot(session)
    report = VerifyReport(started_at=dt.datetime.now(dt.UTC), strict=strict)
    infos = models_to_verify(session, models, metadata)
    report.models = tuple(i.model.__name__ for i in infos)
    tally = Tally()
    wanted = models is None if changesets is None else changesets
    for problem in check(session, infos, batch_size=batch_size, changesets=wanted, tally=tally):
        report.counts[problem.invariant] += 1
        if len(report.problems) < keep:
            report.problems.append(problem)
        if on_problem is not None:
            on_problem(problem)
    report.records, report.versions = tally.records, tally.versions
    report.finished_at = dt.datetime.now(dt.UTC)
    if record:
        report.run_id = _record(session, report)
    return report


def _record(session: Session, report: VerifyReport) -> int:
    table = verification_table()
    conn = session.connection()
    table.create(conn, checkfirst=True)
    result = conn.execute(table.insert().values(
        started_at=report.started_at,
        finished_at=report.finished_at,
        records=report.records,
        versions=report.versions,
        problems=report.failures,
        warnings=report.warnings,
        ok=report.ok,
        strict=report.strict,
        models=",".join(report.models),
    ))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def last_verification(session: Session) -> VerificationRun | None:
    """The latest recorded run of verify in the session's database, None if there was none."""
    table = verification_table()
    if not _exists(session, table):
        return None
    row = session.connection().execute(
        select(table).order_by(table.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return VerificationRun(
        id=int(row.id),
        started_at=row.started_at,
        finished_at=row.finished_at,
        records=int(row.records),
        versions=int(row.versions),
        problems=int(row.problems),
        warnings=int(row.warnings),
        ok=bool(row.ok),
        strict=bool(row.strict),
        models=tuple(m for m in row.models.split(",") if m),
    )
