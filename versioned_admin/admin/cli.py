"""The ``flask versioned-admin`` command group: ``verify`` checks the stored history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Session

from versioned_admin.versioning import (
    Problem,
    VerifyReport,
    verify_history,
    versioned_models,
)

from .context import EXTENSION_KEY
from .registry import ModelView

GROUP = "versioned-admin"


class _Admin(Protocol):
    """What the commands need of a VersionedAdmin (imported by it, so not imported here)."""

    endpoint: str
    views: dict[str, ModelView]

    def session(self) -> Session: ...


def command_group() -> AppGroup:
    """A new ``versioned-admin`` group for one app's ``app.cli``."""
    group = AppGroup(GROUP, help="Maintain the history that versioned_admin keeps.")
    group.add_command(verify_command)
    return group


def _candidates(admin: _Admin, session: Session) -> dict[str, type]:
    """Name -> versioned model: the admin's slugs, and the class names of every versioned
    model in the admin's metadata (registered in the admin or not)."""
    metadata = {id(m): m for m in (getattr(v.model, "metadata", None) for v in
                                   admin.views.values() if v.versioned) if m is not None}
    found: dict[str, type] = {}
    for md in metadata.values():
        for model in versioned_models(session, md):
            found[model.__name__] = model
            found.setdefault(model.__name__.lower(), model)
    for view in admin.views.values():
        if view.versioned:
            found.setdefault(view.slug, view.model)
    return found


def _pick(found: Mapping[str, type], names: tuple[str, ...]) -> tuple[list[type], set[str]]:
    """The models named (by slug or class name, any case), and the names that match none."""
    if not names:
        return list(dict.fromkeys(found.values())), set()
    lowered = {k.lower(): m for k, m in found.items()}
    picked = [found.get(n) or lowered.get(n.lower()) for n in names]
    unknown = {n for n, m in zip(names, picked, strict=True) if m is None}
    return list(dict.fromkeys(m for m in picked if m is not None)), unknown


def _summary(report: VerifyReport, shown_warnings: bool) -> str:
    counts = sorted(report.counts.items())
    failing = [f"{inv} {n:,}" for inv, n in counts if report.strict or not inv.warning]
    warning = [f"{inv} {n:,}" for inv, n in counts if inv.warning]
    text = (f"Verified {report.records:,} records ({report.versions:,} versions) of "
            f"{len(report.models)} model{'' if len(report.models) == 1 else 's'} in "
            f"{report.seconds:.2f} s: ")
    text += "OK" if report.ok else (
        f"{report.failures:,} problem{'' if report.failures == 1 else 's'} "
        f"({', '.join(failing)})")
    if warning and not report.strict:
        text += f"; {report.warnings:,} warning{'' if report.warnings == 1 else 's'} "
        text += f"({', '.join(warning)})"
        if not shown_warnings:
            text += "; --show-warnings lists them"
    return text + "."


@click.command("verify")
@with_appcontext
@click.argument("models", nargs=-1)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Rows read per query (memory stays bounded by it).")
@click.option("--strict", is_flag=True,
              help="Warnings (unversioned rows, schema drift) fail the run too.")
@click.option("--show-warnings", is_flag=True, help="List each warning, not only their count.")
def verify_command(models: tuple[str, ...], batch_size: int, strict: bool,
                   show_warnings: bool) -> None:
    """Check that the history matches the data: MODELS (slugs or class names), or all.

    Prints one line per problem and exits with status 1 if any was found, 0 otherwise.
    """
    admins: list[_Admin] = list(current_app.extensions.get(EXTENSION_KEY, {}).values())
    if not admins:
        raise click.UsageError("this app has no VersionedAdmin")
    listed = show_warnings or strict
    failed = False
    plans: list[tuple[_Admin, Session, list[type]]] = []
    unknown = set(models)
    seen: set[type] = set()
    for admin in admins:
        session = admin.session()
        picked, missed = _pick(_candidates(admin, session), models)
        unknown &= missed
        picked = [m for m in picked if m not in seen]
        seen.update(picked)
        plans.append((admin, session, picked))
    if unknown:
        for _admin, session, _picked in plans:
            session.close()
        raise click.UsageError(f"no versioned model called {', '.join(sorted(unknown))}")

    def echo(problem: Problem) -> None:
        if listed or not problem.warning:
            click.echo(str(problem))

    if not seen:
        click.echo("Nothing to verify: no versioned model has a table in the database.")
    for admin, session, picked in plans:
        if not picked:
            session.close()
            continue
        try:
            report = verify_history(session, picked, batch_size=batch_size, strict=strict,
                                    changesets=not models, on_problem=echo)
            session.commit()  # keep the record of the run
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()
        prefix = f"[{admin.endpoint}] " if len(admins) > 1 else ""
        click.echo(prefix + _summary(report, listed))
        failed = failed or not report.ok
    if failed:
        raise click.exceptions.Exit(1)
