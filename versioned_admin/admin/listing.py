"""List pages: parse ``?page/sort/q/f_*``, build the query, count with a cap, paginate."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from markupsafe import Markup, escape
from sqlalchemy.orm import Session, selectinload

from .context import admin_url
from .forms import format_value
from .registry import ModelView, live_where
from .values import parse_value

#: Longest search string used; longer input is cut (a notice says so).
MAX_QUERY_LENGTH = 200
#: Highest page number accepted (keeps OFFSET within every database's range).
MAX_PAGE = 1_000_000
#: Characters werkzeug's URL building leaves unquoted in query strings.
_QUERY_SAFE = "!$'()*,/:;?@"


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
    slug: str = ""
    _base_url: str | None = dataclasses.field(default=None, repr=False, compare=False)

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

    def url(self, **changes: Any) -> str:
        """The URL of this list with some parameters changed (what ``url_for`` would build)."""
        # A page has a dozen such links (sort headers, pagination): routing is done once.
        if self._base_url is None:
            self._base_url = admin_url("list_view", model=self.slug)
        query = urlencode(list(self.args(**changes).items()), safe=_QUERY_SAFE)
        return f"{self._base_url}?{query}" if query else self._base_url


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
    req = ListRequest(slug=view.slug)
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


def _count_column(
    model: type, where: list[sa.ColumnElement[bool]], cap: int | None
) -> sa.ScalarSelect[Any]:
    """``capped_count`` as a scalar subquery, to ride along with the page query."""
    inner: sa.Select[Any] = sa.select(sa.literal_column("1")).select_from(model).where(*where)
    if cap is not None:
        inner = inner.limit(cap + 1)
    counted = sa.select(sa.func.count()).select_from(inner.subquery())
    return counted.scalar_subquery().correlate(None)


def _page_total(
    cap: int | None, counted: int | None, seen: int, has_next: bool
) -> tuple[int, bool] | None:
    """(total, capped) from the page query: its count, or how far its rows reached."""
    if counted is None and has_next and (cap is None or seen <= cap):
        return None  # more rows follow, and nothing counted them
    total = counted if counted is not None else seen
    return (cap, True) if cap is not None and total > cap else (total, False)


def fetch_page(
    session: Session, view: ModelView, req: ListRequest, page_size: int, cap: int | None
) -> ListPage:
    """Run the list query for one page (its count in the same statement when it is needed)."""
    where = conditions(view, req)
    order: list[sa.ColumnElement[Any]] = []
    sorted_by: list[sa.ColumnElement[Any]] = []
    if req.sort is not None:
        sorted_by = list(view.info(req.sort).sort_columns)
        order = [col.desc() if req.descending else col.asc() for col in sorted_by]
    # the primary key breaks ties (pages never overlap); a column already sorted by is skipped
    # because a repeated ORDER BY term keeps SQLite from walking the index
    order.extend(col.asc() for col in view.pk_columns if not _listed(col, sorted_by))
    offset = (req.page - 1) * page_size
    stmt: sa.Select[Any] = (
        sa.select(view.model)
        .where(*where)
        .order_by(*order)
        .offset(offset)
        .limit(page_size + 1)
    )
    # A page whose rows reach past the cap shows "cap+" without counting: skip the count
    # there. Elsewhere it is a column of the page query: one round trip, not two.
    with_count = cap is None or offset + page_size + 1 <= cap
    if with_count:
        stmt = stmt.add_columns(_count_column(view.model, where, cap))
    relations = [view.info(k).relation for k in view.list_columns if view.info(k).is_relation]
    if relations:
        stmt = stmt.options(*(selectinload(rel.class_attribute) for rel in relations if rel))
    counted: int | None = None
    if with_count:
        found = session.execute(stmt).all()
        rows = [r[0] for r in found]
        counted = int(found[0][1]) if found else None
    else:
        rows = list(session.execute(stmt).scalars())
    has_next = len(rows) > page_size
    known = _page_total(cap, counted, offset + len(rows), has_next) if rows else None
    # An empty page (past the end, or an empty list) says nothing about the others: count.
    total, capped = known if known is not None else capped_count(session, view.model, where, cap)
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

    @property
    def content(self) -> Markup:
        """What goes inside the cell: the text, as a badge for yes/no."""
        text = escape(self.text)
        if self.kind in ("yes", "no"):
            return Markup(f'<span class="va-badge va-badge-{self.kind}">{text}</span>')
        return text

    def __html__(self) -> str:
        """The whole ``<td>``: the list template writes ``{{ cell }}`` per cell."""
        # Built here, not in the template: Jinja's attribute lookups and tests made the 100
        # cells of a page cost half a millisecond (and Markup.format() is slower still).
        title = f' title="{escape(self.title)}"' if self.title else ""
        return f'<td class="va-cell-{escape(self.kind)}"{title}>{self.content}</td>'


def cell(view: ModelView, obj: Any, key: str) -> Cell:
    """The list cell of an attribute, with long text cut."""
    try:
        value = getattr(obj, key)
    except Exception:  # a property on the model failed: show that, not a 500
        return Cell("(error)", "null")
    if value is None:
        return Cell("—", "null")
    cls = value.__class__
    # Exact str/int/float first (most cells; a relation's value is a record, never these).
    if cls is int or cls is float:
        return Cell(str(value), "number")
    if cls is str:
        text = value
    else:
        if isinstance(value, bool):
            return Cell("Yes" if value else "No", "yes" if value else "no")
        if view.info(key).relation is not None:
            return Cell(view.label_of(value), "relation")
        if isinstance(value, int | float) or cls.__name__ == "Decimal":
            return Cell(format_value(value), "number")
        text = format_value(value)
    if len(text) > view.truncate_at:
        tooltip = text if len(text) <= 200 else text[:200] + "…"
        return Cell(text[: view.truncate_at].rstrip() + "…", "text", tooltip)
    return Cell(text, "text")
