"""Value types and errors shared by the versioning engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Operation(enum.StrEnum):
    """What a version records: the row was inserted, updated or deleted."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Changeset:
    """One transaction's worth of changes: when, who and why."""

    id: int
    issued_at: datetime
    user: str | None
    reason: str | None


@dataclass(frozen=True)
class Version:
    """One state of one record, as written by one flush."""

    model: type
    pk: tuple[Any, ...]
    number: int
    operation: Operation
    state: dict[str, Any]
    changed: tuple[str, ...]
    changeset: Changeset
    reverted_from: int | None = None
    removed_fields: tuple[str, ...] = field(default=())

    @property
    def is_delete(self) -> bool:
        """True for the final version a delete leaves behind."""
        return self.operation is Operation.DELETE


class VersioningError(Exception):
    """Base class of the engine's errors."""


class VersionNotFound(VersioningError, LookupError):
    """The record has no version with that number."""


class NotDeleted(VersioningError):
    """Restore was asked for a record that is not deleted."""


class UnversionedWriteError(VersioningError):
    """A write that would bypass versioning was refused."""


class StaleVersionError(VersioningError):
    """A record changed since the version a writer based its change on (a lost race)."""

    def __init__(self, message: str, records: list[tuple[type, tuple[object, ...], int, int]]):
        super().__init__(message)
        # (model, pk, expected version, actual latest version) per stale record
        self.records = records
