"""The run form: fields generated from a skill's input schema, and the call input read
back from what the browser posted.

An object schema whose properties are simple gets one field per property: a select for
an ``enum``, a number box for ``integer``/``number``, true/false for ``boolean``, a text
box for ``string``, and a JSON box for anything else (objects, arrays, unions). Any
other schema gets one JSON box for the whole input. The skill's own schema still decides
(the call path checks the input against it): this module only turns text into JSON
values, and says which field it could not read.

Invariants: field names are ``in.<property>`` so they cannot collide with the form's own
fields (``csrf``, ``async``); an empty optional field is left out of the input; numbers
must be finite; a select only accepts one of its own choices.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ...errors import InvalidInput

Widget = Literal["text", "textarea", "integer", "number", "boolean", "select", "json"]
PREFIX = "in."
RAW_FIELD = "input"
SHORT_STRING = 200  # a string this short (maxLength) gets a one-line box
_COMBINATORS = ("anyOf", "oneOf", "allOf", "not", "if", "$ref")


@dataclass
class Choice:
    """One option of a select: the JSON it stands for, and what it shows."""

    value: str  # the JSON text of the value (keeps its type: "1" and 1 differ)
    label: str


@dataclass
class FormField:
    """One input of the run form."""

    name: str  # the property
    widget: Widget
    required: bool
    description: str = ""
    value: str = ""  # prefilled text
    choices: list[Choice] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None

    @property
    def form_name(self) -> str:
        """The field's name in the posted form."""
        return PREFIX + self.name


@dataclass
class RunForm:
    """The run form of one skill: its fields, or one JSON box (`raw`) for the whole input."""

    fields: list[FormField]
    raw: bool
    raw_value: str = "{}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _widget(schema: Mapping[str, Any]) -> Widget:
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "select"
    if any(k in schema for k in _COMBINATORS):
        return "json"
    kind = schema.get("type")
    if kind == "string":
        short = isinstance(schema.get("maxLength"), int) and schema["maxLength"] <= SHORT_STRING
        return "text" if short or "format" in schema or "pattern" in schema else "textarea"
    if kind in ("integer", "number", "boolean"):
        return kind
    return "json"


def _prefill(widget: Widget, value: Any) -> str:
    if value is None:
        return ""
    if widget in ("text", "textarea") and isinstance(value, str):
        return value
    if widget == "boolean" and isinstance(value, bool):
        return "true" if value else "false"
    if widget in ("integer", "number") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _json(value)


def run_form(schema: Mapping[str, Any], example: Any = None) -> RunForm:
    """The form for `schema`, prefilled from `example` (the skill's first example input) or
    the schema's defaults."""
    props = schema.get("properties")
    simple = (
        schema.get("type") == "object"
        and isinstance(props, dict)
        and props
        and not any(k in schema for k in _COMBINATORS)
        and all(isinstance(s, dict) for s in props.values())
    )
    if not simple:
        return RunForm(fields=[], raw=True, raw_value=_json(example if example is not None else {}))
    required = set(schema.get("required") or [])
    given = example if isinstance(example, dict) else {}
    fields = []
    for name, sub in props.items():
        widget = _widget(sub)
        value = given.get(name, sub.get("default"))
        choices = [Choice(_json(v), str(v)) for v in sub["enum"]] if widget == "select" else []
        fields.append(
            FormField(
                name=name,
                widget=widget,
                required=name in required,
                description=str(sub.get("description") or sub.get("title") or ""),
                value=_prefill(widget, value),
                choices=choices,
                minimum=sub.get("minimum") if widget in ("integer", "number") else None,
                maximum=sub.get("maximum") if widget in ("integer", "number") else None,
            )
        )
    return RunForm(fields=fields, raw=False)


def _no_constants(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _parse_json(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


def _read(f: FormField, text: str) -> Any:
    """One field's value from its text; ValueError says what is wrong with it."""
    if f.widget in ("text", "textarea"):
        return text
    if f.widget == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("not a whole number") from None
    if f.widget == "number":
        try:
            number = int(text.strip())
        except ValueError:
            try:
                number = float(text.strip())
            except ValueError:
                raise ValueError("not a number") from None
            if not math.isfinite(number):
                raise ValueError("not a finite number") from None
        return number
    if f.widget == "boolean":
        if text not in ("true", "false"):
            raise ValueError("choose true or false")
        return text == "true"
    if f.widget == "select":
        if text not in {c.value for c in f.choices}:
            raise ValueError("not one of the choices")
        return _parse_json(text)
    try:
        return _parse_json(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None


def form_input(form: RunForm, posted: Mapping[str, str]) -> Any:
    """The call input the posted form stands for. InvalidInput names every field it could
    not read."""
    if form.raw:
        text = (posted.get(RAW_FIELD) or "").strip() or "{}"
        try:
            return _parse_json(text)
        except ValueError as exc:
            raise InvalidInput(f"the input is not valid JSON: {exc}") from None
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in form.fields:
        text = posted.get(f.form_name, "")
        if text == "" and (not f.required or f.widget not in ("text", "textarea")):
            if f.required:
                problems.append(f"{f.name}: required")
            continue
        try:
            values[f.name] = _read(f, text)
        except ValueError as exc:
            problems.append(f"{f.name}: {exc}")
    if problems:
        raise InvalidInput("the form has problems: " + "; ".join(problems))
    return values
