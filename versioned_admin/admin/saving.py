"""Committing a form's change, and what to tell the user when the database refuses it."""

from __future__ import annotations

from flask_wtf import FlaskForm
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from versioned_admin.versioning import StaleVersionError, UnstorableValue, set_reason

from . import forms as f
from .context import current_admin


def commit_form(form: FlaskForm) -> str | None:
    """Commit with the form's reason; on a constraint or data error roll back and say why."""
    session = current_admin().session()
    reason_field = form._fields.get(f.REASON_FIELD)
    if reason_field is not None and reason_field.data and reason_field.data.strip():
        set_reason(session, reason_field.data.strip())
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        return "The database refused this change: " + first_line(exc)
    except DataError as exc:
        session.rollback()
        return "The database refused a value: " + first_line(exc)
    except UnstorableValue as exc:
        # e.g. a revert to a version stored before such values were refused
        session.rollback()
        return f"This change was refused: {exc}"
    except (StaleVersionError, StaleDataError):
        # StaleDataError: a concurrent save already changed the same rows (e.g. both removed
        # one tag link), which is the same lost race
        session.rollback()
        return "Someone else saved this record while you were editing it."
    return None


def first_line(exc: Exception) -> str:
    """The first line of a database error, for people."""
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()
    return detail[0][:300] if detail else "constraint violated"


def form_status(form: FlaskForm) -> int:
    """400 when the CSRF token is missing or stale, 422 for other invalid input."""
    return 400 if "csrf_token" in form.errors else 422


def form_problem(form: FlaskForm) -> str:
    """What to say above a refused form."""
    if "csrf_token" in form.errors:
        return ("The form's security token was missing or has expired. Nothing was changed; "
                "please submit again.")
    return "Please correct the errors below."
