"""The versioning engine: keeps every state of versioned SQLAlchemy models. Never imports Flask."""

from .changesets import set_reason, set_user, set_user_source
from .guard import expect_version
from .history import as_of, changesets, deleted_records, get_version, latest_version, versions
from .listener import disable_versioning, enable_versioning, versioning_enabled
from .maps import MapValue, VersionedMap, key_history, map_at
from .records import (
    get_live,
    live_filter,
    live_select,
    record_pk,
    record_pk_columns,
    restore,
    revert,
)
from .schema import CHANGESET_TABLE, Versioned, VersionedRows, is_versioned, model_info
from .temporal import RelatedRecord, related_as_of
from .types import (
    Changeset,
    NotDeleted,
    Operation,
    StaleVersionError,
    UnversionedWriteError,
    Version,
    VersioningError,
    VersionNotFound,
)
from .values_check import UnstorableValue
from .verify import (
    VerificationRun,
    VerifyReport,
    iter_problems,
    last_verification,
    verify_history,
    versioned_models,
)
from .verify_scan import Invariant, Problem

__all__ = [
    "CHANGESET_TABLE",
    "Changeset",
    "Invariant",
    "MapValue",
    "NotDeleted",
    "Operation",
    "Problem",
    "RelatedRecord",
    "StaleVersionError",
    "UnstorableValue",
    "UnversionedWriteError",
    "Version",
    "VerificationRun",
    "VerifyReport",
    "VersionNotFound",
    "Versioned",
    "VersionedMap",
    "VersionedRows",
    "VersioningError",
    "as_of",
    "changesets",
    "deleted_records",
    "disable_versioning",
    "enable_versioning",
    "expect_version",
    "get_live",
    "get_version",
    "iter_problems",
    "key_history",
    "last_verification",
    "is_versioned",
    "latest_version",
    "live_filter",
    "live_select",
    "map_at",
    "model_info",
    "record_pk",
    "record_pk_columns",
    "related_as_of",
    "restore",
    "revert",
    "set_reason",
    "set_user",
    "set_user_source",
    "verify_history",
    "versioned_models",
    "versioning_enabled",
    "versions",
]
