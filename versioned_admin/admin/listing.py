"""List pages: parse ``?page/sort/q/f_*``, build the query, count with a cap, paginate."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .forms import format_value
from .registry import ModelView, live_where
from .values import parse_value

#: Longest search string used; longer input is cut (a notice says so).
MAX_QUERY_LENGTH = 200
#: Highest page number accepted (keeps OFFSET within every database's range).
MAX_PAGE = 1_000_000


@dataclasses.dataclass
class ListRequest:
    """What a list URL asks for, after checking every parameter."""

    page: int = 1
    sort: str | None = None
    descending: bool = False
    q: str = ""
    filters: dict[str, Any] = dataclasses.field(default_factory=dict)
    raw_filters: dict[str, str] = dataclasses.field(default_factory=dict)
    notices: list[str] = dataclasses.field(default_factory=list)

    @property
    def sort_param(self) -> str | None:
        """The ``sort`` parameter that reproduces this order, if one was asked for."""
        if self.sort is None:
            return None
        return f"-{self.sort}" if self.descending else self.sort

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query parameters for a link to this list with some of them changed."""
        params: dict[str, Any] = {}
        if self.q:
            params["q"] = self.q
        if self.sort_param:
            params["sort"] = self.sort_param
        for key, raw in self.raw_filters.items():
            params[f"f_{key}"] = raw
        if self.page != 1:
            params["page"] = self.page
        params.update(changes)
        return {k: v for k, v in params.items() if v not in (None, "") and (k, v) != ("page", 1)}


@dataclasses.dataclass
class ListPage:
    """One page of a list: its rows and what is known about the others."""

    rows: list[Any]
    page: int
    page_size: int
    total: int
    total_capped: bool
    has_next: bool

    @property
    def has_prev(self) -> bool:
        """Whether there is a page before this one."""
        return self.page > 1

    @property
    def last_known_page(self) -> int:
        """The highest page number known to exist."""
        return max(1, -(-self.total // self.page_size))

    @property
    def first_index(self) -> int:
        """The 1-based position of the first row shown."""
        return (self.page - 1) * self.page_size + 1

    def page_numbers(self, window: int = 2) -> list[int | None]:
        """Page links to show: first, last known, and a window around this one (None = gap)."""
        last = max(self.last_known_page, self.page + (1 if self.has_next else 0))
        wanted = {1, last} | set(range(self.page - window, self.page + window + 1))
        numbers = sorted(n for n in wanted if 1 <= n <= last)
        result: list[int | None] = []
        previous = 0
        for n in numbers:
            if n - previous > 1:
                result.append(None)
            result.append(n)
            previous = n
        return result


def parse_list_args(view: ModelView, args: Mapping[str, str]) -> ListRequest:
    """Read the list parameters; anything unusable is dropped with a notice, never an error."""
    req = ListRequest()
    raw_page = args.get("page", "1").strip() or "1"
    try:
        req.page = int(raw_page)
        if not 1 <= req.page <= MAX_PAGE:
            raise ValueError
    except ValueError:
        req.page = 1
        req.notices.append(f"Page {raw_page[:20]!r} does not exist; showing the first page.")

    sort_arg = args.get("sort", "").strip()
    if sort_arg and not _set_sort(view, req, sort_arg):
        key = sort_arg.lstrip("-")[:40]
        req.notices.append(f"Cannot sort by {key!r}; showing the default order.")
    if req.sort is None and view.default_sort:
        _set_sort(view, req, view.default_sort)

    q = args.get("q", "").replace("\x00", "").strip()
    if len(q) > MAX_QUERY_LENGTH:
        q = q[:MAX_QUERY_LENGTH]
        req.notices.append(f"The search was cut to its first {MAX_QUERY_LENGTH} characters.")
    if q and not view.search_columns:
        req.notices.append("This list has no searchable columns; the search was ignored.")
        q = ""
    req.q = q

    for name, raw in args.items():
        if not name.startswith("f_"):
            continue
        key = name[2:]
        raw = raw.strip()
        if key not in view.filters:
            req.notices.append(f"There is no filter {key[:40]!r}; it was ignored.")
            continue
        if raw == "":
            continue
        try:
            req.filters[key] = _parse_filter(view, key, raw)
        except (ValueError, TypeError, OverflowError):
            req.notices.append(
                f"{raw[:40]!r} is not a valid value for {view.label_for(key)}; filter ignored."
            )
            continue
        req.raw_filters[key] = raw
    return req


def _set_sort(view: ModelView, req: ListRequest, sort: str) -> bool:
    key = sort.lstrip("-")
    allowed = key in view.list_columns or key == (view.default_sort or "").lstrip("-")
    if not (allowed and view.sort_key(key)):
        return False
    req.sort, req.descending = key, sort.startswith("-")
    return True


def _parse_filter(view: ModelView, key: str, raw: str) -> Any:
    info = view.info(key)
    if info.relation is not None:
        (col,) = info.relation.local_columns
        return parse_value(col, raw)
    if info.column is None:
        raise ValueError("not a column")
    if isinstance(info.column.type, sa.DateTime) and len(raw) == 10:
        return date.fromisoformat(raw)
    return parse_value(info.column, raw)


def conditions(view: ModelView, req: ListRequest) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a list request (live rows, search, filters)."""
    where = live_where(view.model)
    if req.q:
        pattern = "%" + req.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = []
        for key in view.search_columns:
            col = view.info(key).column
            if col is None:
                continue
            expr = col if isinstance(col.type, sa.String) else sa.cast(col, sa.String)
            matches.append(expr.ilike(pattern, escape="\\"))
        where.append(sa.or_(*matches) if matches else sa.false())
    for key, value in req.filters.items():
        info = view.info(key)
        if info.relation is not None:
            (local,) = info.relation.local_columns
            where.append(local == value)
        elif info.column is not None:
            column = info.column
            if isinstance(value, date) and not isinstance(value, datetime):
                if isinstance(column.type, sa.DateTime):
                    start = datetime.combine(value, datetime.min.time())
                    where.append(sa.and_(column >= start, column < start + timedelta(days=1)))
                    continue
            where.append(column == value)
    return where


def _listed(column: sa.ColumnElement[Any], columns: list[sa.ColumnElement[Any]]) -> bool:
    return any(column is other for other in columns)


def capped_count(
    session: Session, model: type, where: list[sa.ColumnElement[bool]], cap: int | None
) -> tuple[int, bool]:
    """Count matching rows, stopping at ``cap``: (count, whether there are more than ``cap``)."""
    inner: sa.Select[Any] = sa.select(sa.literal_column("1")).select_from(model).where(*where)
    if cap is None:
        total = session.execute(
            sa.select(sa.func.count()).select_from(inner.subquery())
        ).scalar_one()
        return int(total), False
    limited = inner.limit(cap + 1).subquery()
    total = int(session.execute(sa.select(sa.func.count()).select_from(limited)).scalar_one())
    return (cap, True) if total > cap else (total, False)


def fetch_page(
    session: Session, view: ModelView, req: ListRequest, page_size: int, cap: int | None
) -> ListPage:
    """Run the list query for one page."""
    where = conditions(view, req)
    total, capped = capped_count(session, view.model, where, cap)
    order: list[sa.ColumnElement[Any]] = []
    sorted_by: list[sa.ColumnElement[Any]] = []
    if req.sort is not None:
        sorted_by = list(view.info(req.sort).sort_columns)
        order = [col.desc() if req.descending else col.asc() for col in sorted_by]
    # the primary key breaks ties (pages never overlap); a column already sorted by is skipped
    # because a repeated ORDER BY term keeps SQLite from walking the index
    order.extend(col.asc() for col in view.pk_columns if not _listed(col, sorted_by))
    stmt: sa.Select[Any] = (
        sa.select(view.model)
        .where(*where)
        .order_by(*order)
        .offset((req.page - 1) * page_size)
        .limit(page_size + 1)
    )
    relations = [view.info(k).relation for k in view.list_columns if view.info(k).is_relation]
    if relations:
        stmt = stmt.options(*(selectinload(rel.class_attribute) for rel in relations if rel))
    rows = list(session.execute(stmt).scalars())
    has_next = len(rows) > page_size
    return ListPage(
        rows=rows[:page_size],
        page=req.page,
        page_size=page_size,
        total=total,
        total_capped=capped,
        has_next=has_next,
    )


@dataclasses.dataclass
class Cell:
    """One list cell: its text and a CSS hint (``null``, ``yes``, ``no``, ``number``, ``text``)."""

    text: str
    kind: str = "text"
    title: str = ""


def cell(view: ModelView, obj: Any, key: str) -> Cell:
    """The list cell of an attribute, with long text cut."""
    try:
        value = getattr(obj, key)
    except Exception:  # a property on the model failed: show that, not a 500
        return Cell("(error)", "null")
    if value is None:
        return Cell("—", "null")
    if isinstance(value, bool):
        return Cell("Yes" if value else "No", "yes" if value else "no")
    if view.info(key).relation is not None:
        return Cell(view.label_of(value), "relation")
    if isinstance(value, int | float) or type(value).__name__ == "Decimal":
        return Cell(format_value(value), "number")
    text = format_value(value)
    if len(text) > view.truncate_at:
        tooltip = text if len(text) <= 200 else text[:200] + "…"
        return Cell(text[: view.truncate_at].rstrip() + "…", "text", tooltip)
    return Cell(text, "text")
