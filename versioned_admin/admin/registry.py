"""Registered models: per-model options (:class:`ModelView`) and the column facts the views need."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, RelationshipDirection, RelationshipProperty, Session

from versioned_admin.versioning import (
    VersionedRows,
    get_live,
    is_versioned,
    live_filter,
    model_info,
    record_pk,
    record_pk_columns,
)

from .values import parse_value

#: Slugs that would collide with the blueprint's own URLs.
RESERVED_SLUGS = frozenset({"static", "activity"})
#: Attributes tried, in order, for a record's label when the model has no ``__str__``.
LABEL_ATTRIBUTES = ("name", "title", "label", "username", "email", "slug", "code")
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def name_like(get: Callable[[str], Any]) -> str | None:
    """The first non-empty name-like value (``name``, ``title``, ...) that ``get`` returns."""
    for attr in LABEL_ATTRIBUTES:
        value = get(attr)
        if isinstance(value, str | int) and value != "":
            return str(value)
    return None


def default_label(obj: Any) -> str:
    """A record's label: its ``__str__`` if the model defines one, else a name-like column."""
    if type(obj).__str__ is not object.__str__:
        return str(obj)
    name = name_like(lambda attr: getattr(obj, attr, None))
    if name is not None:
        return name
    return f"{type(obj).__name__} #{format_pk(model_pk(obj))}"


def format_pk(pk: Sequence[Any]) -> str:
    """The URL form of a primary key: parts joined by commas (commas and % escaped)."""
    return ",".join(str(part).replace("%", "%25").replace(",", "%2C") for part in pk)


def split_pk(text: str) -> list[str]:
    """Inverse of :func:`format_pk` for the text parts."""
    return [part.replace("%2C", ",").replace("%25", "%") for part in text.split(",")]


def pk_columns(model: type) -> list[sa.Column[Any]]:
    """The logical primary-key columns of a model (rows strategy: without ``version_id``)."""
    if is_versioned(model):
        return list(record_pk_columns(model))
    return list(sa.inspect(model).primary_key)


def model_pk(obj: Any) -> tuple[Any, ...]:
    """The logical primary key of a record."""
    if is_versioned(type(obj)):
        return tuple(record_pk(obj))
    return tuple(sa.inspect(type(obj)).primary_key_from_instance(obj))


def attr_key(model: type, column: sa.ColumnElement[Any]) -> str:
    """The attribute name under which a model maps a column."""
    mapper: Mapper[Any] = sa.inspect(model)
    return mapper.get_property_by_column(column).key


def live_where(model: type) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses that limit a query to live rows (empty for most models)."""
    if not is_versioned(model):
        return []
    clause = live_filter(model)
    return [] if clause is None else [clause]


def parse_pk(model: type, text: str) -> tuple[Any, ...]:
    """Parse a primary key from a URL; ValueError if malformed."""
    columns = pk_columns(model)
    parts = split_pk(text)
    if len(parts) != len(columns):
        raise ValueError("wrong number of key parts")
    return tuple(parse_value(col, part) for col, part in zip(columns, parts, strict=True))


def load_record(session: Session, model: type, pk: tuple[Any, ...]) -> Any | None:
    """The live record with this logical primary key, or None."""
    if is_versioned(model):
        return get_live(session, model, pk)
    return session.get(model, pk)


@dataclasses.dataclass
class ColumnInfo:
    """One attribute of a model as the admin sees it."""

    key: str
    column: sa.Column[Any] | None = None
    relation: RelationshipProperty[Any] | None = None

    @property
    def is_relation(self) -> bool:
        """Whether this is a many-to-one relationship."""
        return self.relation is not None

    @property
    def sort_columns(self) -> list[sa.Column[Any]]:
        """The columns to ORDER BY for this attribute (none if not sortable)."""
        if self.column is not None:
            return [self.column]
        if self.relation is not None:
            return list(self.relation.local_columns)  # type: ignore[arg-type]
        return []

    @property
    def target(self) -> type:
        """The related model of a relationship."""
        assert self.relation is not None
        return self.relation.mapper.class_


class ModelView:
    """A registered model and its admin options.

    Subclass it to change templates or formatting for one model and pass it as
    ``admin.register(Model, view_class=MyView)``.
    """

    list_template: str | None = None
    form_template: str | None = None
    delete_template: str | None = None
    #: Characters of text shown in a list cell before it is cut with an ellipsis.
    truncate_at: int = 80

    def __init__(
        self,
        model: type,
        *,
        slug: str | None = None,
        label: str | None = None,
        list_columns: Sequence[str] | None = None,
        search_columns: Sequence[str] | None = None,
        filters: Sequence[str] | None = None,
        default_sort: str | None = None,
        page_size: int | None = None,
        form_columns: Sequence[str] | None = None,
        readonly_columns: Sequence[str] | None = None,
        labels: dict[str, str] | None = None,
        record_label: Callable[[Any], str] | str | None = None,
        can_create: bool = True,
        can_edit: bool = True,
        can_delete: bool = True,
        inline: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(sa.inspect(model, raiseerr=False), Mapper):
            raise TypeError(f"{model!r} is not a mapped SQLAlchemy model")
        self.model = model
        self.slug = slug or model.__name__.lower()
        if not _SLUG_RE.match(self.slug) or self.slug in RESERVED_SLUGS:
            raise ValueError(f"invalid slug {self.slug!r} for {model.__name__}")
        #: The model's name for one record ("Price quote") and for the list ("Price quotes").
        self.singular = _humanize(model.__name__)
        self.label = label or _plural(self.singular)
        self._list_columns = _names(model, "list_columns", list_columns)
        self._search_columns = _names(model, "search_columns", search_columns)
        self._filters = _names(model, "filters", filters)
        self._form_columns = _names(model, "form_columns", form_columns)
        self._readonly = _names(model, "readonly_columns", readonly_columns) or []
        self.labels = dict(labels or {})
        _names(model, "labels", list(self.labels))
        if default_sort is not None:
            _names(model, "default_sort", [default_sort.lstrip("-")])
        self.default_sort = default_sort
        if page_size is not None and page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self._record_label = record_label
        self.can_create = can_create
        self.can_edit = can_edit
        self.can_delete = can_delete
        #: One-to-many relations edited inline (None: those whose rows the parent owns, i.e.
        #: ``cascade="all, delete-orphan"``), when they are in the form's columns.
        self.inline = _names(model, "inline", inline)
        self.inline_views: dict[str, ModelView] = {}
        #: Views of the other models of the same admin, by model (set by ``register``).
        self.peers: dict[type, ModelView] = {}

    def __repr__(self) -> str:
        return f"<ModelView {self.model.__name__} /{self.slug}/>"

    # -- column facts ---------------------------------------------------------------------

    @cached_property
    def mapper(self) -> Mapper[Any]:
        """The model's mapper (configured)."""
        return sa.inspect(self.model)

    @cached_property
    def is_rows(self) -> bool:
        """Whether the model uses the rows strategy."""
        return isinstance(self.model, type) and issubclass(self.model, VersionedRows)

    @cached_property
    def versioned(self) -> bool:
        """Whether the engine versions this model."""
        return is_versioned(self.model)

    @cached_property
    def pk_columns(self) -> list[sa.Column[Any]]:
        """The logical primary-key columns."""
        return pk_columns(self.model)

    @cached_property
    def bookkeeping(self) -> frozenset[str]:
        """Attributes the engine keeps on the live table (rows strategy); never shown or edited."""
        info = model_info(self.model)
        if info is None or not self.is_rows:
            return frozenset()
        mapped = {prop.key for prop in self.mapper.column_attrs}
        return frozenset(mapped - info.field_keys - info.exclude)

    @cached_property
    def discriminator(self) -> str | None:
        """The column naming a record's class (inheritance): its class sets it, not a form."""
        info = model_info(self.model)
        return info.discriminator if info is not None else None

    @cached_property
    def infos(self) -> dict[str, ColumnInfo]:
        """Every column attribute and many-to-one relationship, by attribute key, in order."""
        result: dict[str, ColumnInfo] = {}
        key_cols = {id(c) for c in self.mapper.primary_key}
        for prop in self.mapper.column_attrs:
            # A joined subclass's key maps its own table's column and the base's: the base's
            # is the record's (autoincremented) key.
            col = next((c for c in prop.columns if id(c) in key_cols), prop.columns[0])
            if isinstance(col, sa.Column) and prop.key not in self.bookkeeping:
                result[prop.key] = ColumnInfo(prop.key, column=col)
        for rel in self.mapper.relationships:
            if rel.direction is RelationshipDirection.MANYTOONE and not rel.uselist:
                result[rel.key] = ColumnInfo(rel.key, relation=rel)
        return result

    @cached_property
    def fk_keys(self) -> set[str]:
        """Keys of columns that a single-column many-to-one relationship stands for."""
        keys: set[str] = set()
        for info in self.infos.values():
            if info.relation is not None and len(info.relation.local_columns) == 1:
                (col,) = info.relation.local_columns
                keys.add(attr_key(self.model, col))
        return keys

    def info(self, key: str) -> ColumnInfo:
        """The facts about one attribute (plain attributes get an empty ColumnInfo)."""
        return self.infos.get(key) or ColumnInfo(key)

    def _default_columns(self) -> list[str]:
        """Column keys with foreign keys replaced by their relationship."""
        keys: list[str] = []
        for key, info in self.infos.items():
            if info.relation is not None:
                continue
            rel = self._relation_for_fk(key)
            keys.append(rel if rel is not None else key)
        return keys

    def _relation_for_fk(self, key: str) -> str | None:
        if key not in self.fk_keys:
            return None
        col = self.infos[key].column
        for info in self.infos.values():
            if info.relation is not None and list(info.relation.local_columns) == [col]:
                return info.key
        return None

    @cached_property
    def list_columns(self) -> list[str]:
        """Attributes shown as list columns."""
        return self._list_columns if self._list_columns is not None else self._default_columns()

    @cached_property
    def search_columns(self) -> list[str]:
        """String columns searched by ``?q=``."""
        if self._search_columns is not None:
            return self._search_columns
        return [
            key for key, info in self.infos.items()
            if info.column is not None and isinstance(info.column.type, sa.String)
            and not isinstance(info.column.type, sa.Enum) and key not in self.fk_keys
        ]

    @cached_property
    def filters(self) -> list[str]:
        """Attributes filterable with ``?f_<key>=value`` (default: booleans and enums)."""
        if self._filters is not None:
            return self._filters
        return [
            key for key, info in self.infos.items()
            if info.column is not None and isinstance(info.column.type, sa.Boolean | sa.Enum)
        ]

    @cached_property
    def readonly_columns(self) -> list[str]:
        """Attributes shown on the edit form but never changed by it."""
        return self._readonly

    def form_columns(self, creating: bool) -> list[str]:
        """Attributes on the form, in order (read-only ones included on edit)."""
        if self._form_columns is not None:
            keys = list(self._form_columns)
        else:
            keys = [k for k in self._default_columns()
                    if not self._is_autoincrement(k) and k != self.discriminator]
        if creating:
            return [k for k in keys if k not in self._readonly]
        pk_keys = [attr_key(self.model, c) for c in self.pk_columns]
        return keys + [k for k in self._readonly if k not in keys and k not in pk_keys]

    def is_readonly(self, key: str, creating: bool) -> bool:
        """Whether a form attribute is shown but not editable."""
        if key in self._readonly:
            return True
        info = self.info(key)
        if info.column is None and info.relation is None:
            return True
        return not creating and info.column is not None and info.column.primary_key

    def _is_autoincrement(self, key: str) -> bool:
        col = self.infos[key].column if key in self.infos else None
        if col is None or not col.primary_key:
            return False
        return col.table.autoincrement_column is col or col.identity is not None

    def label_for(self, key: str) -> str:
        """The human label of an attribute."""
        if key in self.labels:
            return self.labels[key]
        return _humanize(key)

    def record_label(self, obj: Any) -> str:
        """The label of one record of this model."""
        if callable(self._record_label):
            return str(self._record_label(obj))
        if isinstance(self._record_label, str):
            return str(getattr(obj, self._record_label))
        return default_label(obj)

    def label_of(self, obj: Any) -> str:
        """The label of any record: through its model's own view when registered."""
        view = self.peers.get(type(obj))
        return view.record_label(obj) if view is not None else default_label(obj)

    def sort_key(self, key: str) -> bool:
        """Whether a list column can be sorted by."""
        return bool(self.info(key).sort_columns)


def _names(model: type, option: str, names: Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):
        raise TypeError(f"{option} must be a list of attribute names, not a string")
    unknown = [name for name in names if not hasattr(model, name)]
    if unknown:
        raise ValueError(f"{model.__name__} has no attribute(s) {unknown} (in {option})")
    return list(names)


def _humanize(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").strip()
    if spaced.lower().endswith(" id"):
        spaced = spaced[:-3]
    return spaced[:1].upper() + spaced[1:].lower() if spaced else name


def _plural(text: str) -> str:
    if text.endswith("y") and text[-2:-1] not in "aeiou":
        return text[:-1] + "ies"
    if text.endswith(("s", "x", "sh", "ch")):
        return text + "es"
    return text + "s"
