"""Form fields and validators beyond WTForms' own, and the field that edits each column type."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from markupsafe import Markup
from wtforms import fields, validators, widgets
from wtforms.validators import StopValidation, ValidationError

from .registry import ColumnInfo, ModelView
from .text_input import json_text, parse_json_text, storable_text
from .values import enum_choices, int_bounds, parse_value

try:  # WTForms >= 3.3 wants SelectChoice objects; older versions take (value, label) pairs
    from wtforms.fields.choices import SelectChoice
except ImportError:  # pragma: no cover
    SelectChoice = None


def select_choices(pairs: list[tuple[str, str]]) -> list[Any]:
    """``choices=`` for a SelectField in the form this WTForms version prefers."""
    if SelectChoice is None:
        return pairs
    return [SelectChoice(value, label) for value, label in pairs]


class Required:
    """The input must not be empty (whitespace counts as empty)."""

    field_flags = {"required": True}

    def __call__(self, form: Any, field: fields.Field) -> None:
        """Stop validation with an error when the input is empty."""
        raw = field.raw_data
        if raw is not None and (not raw or not str(raw[0]).strip()):
            field.errors[:] = []
            raise StopValidation("This field is required.")


def no_nul(form: Any, field: fields.Field) -> None:
    """Text the database cannot store (NUL characters) is refused."""
    if isinstance(field.data, str) and "\x00" in field.data:
        raise ValidationError("This value contains a NUL character, which cannot be stored.")


def finite(form: Any, field: fields.Field) -> None:
    """NaN and infinities are refused."""
    value = field.data
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValidationError("Enter a finite number.")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValidationError("Enter a finite number.")


class IntRange:
    """An integer must fit the column's type."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __call__(self, form: Any, field: fields.Field) -> None:
        """Reject integers the database cannot store."""
        if isinstance(field.data, int) and not self.low <= field.data <= self.high:
            raise ValidationError(f"Enter a number between {self.low} and {self.high}.")


class DecimalDigits:
    """A Decimal must fit ``Numeric(precision, scale)``."""

    def __init__(self, precision: int | None, scale: int | None) -> None:
        self.precision, self.scale = precision, scale

    def __call__(self, form: Any, field: fields.Field) -> None:
        """Reject values with too many digits before or after the point."""
        value = field.data
        if not isinstance(value, Decimal) or not value.is_finite():
            return
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        if self.scale is not None and -exponent > self.scale:
            raise ValidationError(f"Use at most {self.scale} digits after the decimal point.")
        if self.precision is not None:
            whole = max(len(digits) + exponent, 0)
            if whole > self.precision - (self.scale or 0):
                raise ValidationError("This number is too large.")


class JSONField(fields.TextAreaField):
    """A textarea holding JSON, shown pretty-printed; JSON that cannot be saved is an error."""

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0])
        if self.data is None:
            return ""
        return json_text(self.data, indent=2)

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the submitted text."""
        if not valuelist:
            return
        text = str(valuelist[0]).strip()
        self.data = None
        if text:
            self.data = parse_json_text(text)


class RelationWidget:
    """A select when the related table is small, else a text input for the related id."""

    def __call__(self, field: RelationField, **kwargs: Any) -> Markup:
        """Render the field."""
        if field.choices is None:
            kwargs.setdefault("inputmode", "numeric" if field.numeric else "text")
            return widgets.TextInput()(field, **kwargs)
        kwargs.setdefault("id", field.id)
        options = []
        current = field._value()
        if field.allow_empty or current == "":
            options.append(Markup('<option value="">—</option>'))
        for value, label in field.choices:
            selected = Markup(" selected") if value == current else Markup("")
            options.append(
                Markup('<option value="{}"{}>{}</option>').format(value, selected, label)
            )
        params = widgets.html_params(name=field.name, **kwargs)
        return Markup(f"<select {params}>") + Markup("").join(options) + Markup("</select>")


class RelationField(fields.Field):
    """A many-to-one relationship, edited by the related record's key."""

    widget = RelationWidget()

    def __init__(self, *args: Any, info: ColumnInfo, allow_empty: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert info.relation is not None
        (self.remote,) = info.relation.remote_side
        self.target = info.target
        self.allow_empty = allow_empty
        self.numeric = isinstance(self.remote.type, sa.Integer)
        self.choices: list[tuple[str, str]] | None = None
        self.current_label: str | None = None

    def _value(self) -> str:
        if self.raw_data:
            return str(self.raw_data[0]).strip()
        return "" if self.data is None else str(self.data)

    def process_formdata(self, valuelist: list[Any]) -> None:
        """Parse the related key."""
        if not valuelist:
            return
        raw = str(valuelist[0]).strip()
        if raw == "":
            self.data = None
            return
        try:
            self.data = parse_value(self.remote, raw)
        except (ValueError, TypeError, OverflowError):
            self.data = None
            raise ValueError("Not a valid id.") from None


def valid_uuid(form: Any, field: fields.Field) -> None:
    """The text must be a UUID."""
    try:
        uuid.UUID(str(field.data).strip())
    except ValueError:
        raise ValidationError("Not a valid UUID.") from None


# -- fields for model columns ---------------------------------------------------------------


def field_class_for(column: sa.Column[Any]) -> type[fields.Field] | None:
    """The WTForms field class that edits a column of this type (None: not editable)."""
    type_ = column.type
    if isinstance(type_, sa.Enum):
        return fields.SelectField
    if isinstance(type_, sa.Boolean):
        return fields.SelectField if column.nullable else fields.BooleanField
    if isinstance(type_, sa.Integer):
        return fields.IntegerField
    if isinstance(type_, sa.Float):
        return fields.FloatField
    if isinstance(type_, sa.Numeric):
        return fields.DecimalField
    if isinstance(type_, sa.DateTime):
        return fields.DateTimeLocalField
    if isinstance(type_, sa.Date):
        return fields.DateField
    if isinstance(type_, sa.Time):
        return fields.TimeField
    if isinstance(type_, sa.JSON):
        return JSONField
    if isinstance(type_, sa.Uuid):
        return fields.StringField
    if isinstance(type_, sa.String):
        return fields.StringField if type_.length else fields.TextAreaField
    return None


def has_default(column: sa.Column[Any]) -> bool:
    """Whether the database or the model fills the column when it is left out."""
    return column.default is not None or column.server_default is not None


def make_field(view: ModelView, info: ColumnInfo, creating: bool) -> fields.Field:
    """An unbound WTForms field for one model attribute."""
    label = view.label_for(info.key)
    if info.relation is not None:
        (local,) = info.relation.local_columns
        nullable = bool(local.nullable)
        checks: list[Any] = [validators.Optional()] if nullable else [Required()]
        return RelationField(label, checks, info=info, allow_empty=nullable)
    column = info.column
    assert column is not None
    cls = field_class_for(column)
    assert cls is not None
    type_ = column.type
    required = not column.nullable and not (creating and has_default(column))
    if isinstance(type_, sa.Boolean) and not column.nullable:
        return fields.BooleanField(label, [validators.Optional()])
    checks = [Required()] if required else [validators.Optional()]
    kwargs: dict[str, Any] = {}
    if isinstance(type_, sa.Enum):
        choices = enum_choices(type_)
        kwargs["choices"] = select_choices(([("", "—")] if column.nullable else []) + choices)
    elif isinstance(type_, sa.Boolean):
        kwargs["choices"] = select_choices([("", "—"), ("true", "Yes"), ("false", "No")])
    elif isinstance(type_, sa.Integer):
        low, high = int_bounds(type_)
        checks.append(IntRange(low, high))
    elif isinstance(type_, sa.Float):
        checks.append(finite)
    elif isinstance(type_, sa.Numeric):
        checks += [finite, DecimalDigits(type_.precision, type_.scale)]
        kwargs["places"] = None
    elif isinstance(type_, sa.DateTime):
        kwargs["format"] = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S",
                            "%Y-%m-%d %H:%M"]
        kwargs["render_kw"] = {"step": "1"}
        if type_.timezone:
            kwargs["description"] = "UTC"
    elif isinstance(type_, sa.Time):
        kwargs["format"] = ["%H:%M:%S", "%H:%M"]
        kwargs["render_kw"] = {"step": "1"}
    elif isinstance(type_, sa.Uuid):
        checks.append(valid_uuid)
    if isinstance(type_, sa.String | sa.JSON):
        checks.append(no_nul)
    if isinstance(type_, sa.String):
        checks.append(storable_text)
    if isinstance(type_, sa.String) and type_.length and not isinstance(type_, sa.Enum):
        checks.append(validators.Length(max=type_.length))
        kwargs["render_kw"] = {"maxlength": str(type_.length)}
    if isinstance(type_, sa.Text) or (isinstance(type_, sa.String) and not type_.length):
        kwargs["render_kw"] = {"rows": "8"}
    return cls(label, checks, **kwargs)
