"""The field table: how each config field appears in a form, declared next to the field itself.

A config dataclass marks a field for the studio's forms with `dataclasses.field(..., metadata=ui(...))`:

    latent: int = field(default=16, metadata=ui("Code size", "Number of code units ...", lo=1, hi=65536,
                                                   group="Bottleneck"))

`ui_fields(cls)` lists the marked fields in declaration order. The UI (`aestudio.ui.forms`) builds a
widget for each, with its label, accessible name, tooltip and range, reads and writes the values,
and shows or enables rows by their `visible_when` / `enabled_when` rules. A new marked field
therefore appears in the form without any UI code. This module is plain data: no Qt, no torch.

Widget kinds (`widget=`; inferred from the field when omitted):
  "spin"       whole number (int)             "float"  number with a linear step
  "log"        positive number stepped 1-2-5 per decade (learning rates, penalty weights)
  "combo"      one of `choices`               "check"  true / false
  "text"       free text                      "int_list" / "name_list"  comma-separated list, or None
  other names  widgets the UI registers itself (e.g. "noise", "device")

Rules (`visible_when`, `enabled_when`) map field names to the value wanted, or to a tuple of
allowed values; every entry must hold. Names are looked up among the form's own fields first,
then in the context the form is given (the Training panel passes the model config, so a training
field can depend on the model's kind).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

#: The metadata key under which a field's `UiSpec` is stored.
UI_KEY = "ui"

WIDGETS = ("spin", "float", "log", "combo", "check", "text", "int_list", "name_list")


@dataclass(frozen=True)
class UiSpec:
    """How one config field appears in a form."""

    label: str  # the form's row label (a check box's own text)
    tip: str  # tooltip
    widget: str | None = None  # see the module docstring; None: inferred from the field
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    decimals: int | None = None  # shown decimals for "float" (None: as many as the value needs)
    choices: tuple[tuple[Any, str], ...] | None = None  # (value, label) pairs for "combo"
    group: str | None = None  # a titled group box; fields of one group stay together
    accessible: str | None = None  # accessible name; None: the label
    advanced: bool = False  # shown only when the form's advanced settings are opened
    visible_when: Mapping[str, Any] | None = None
    enabled_when: Mapping[str, Any] | None = None
    unavailable: str = ""  # added to the tooltip while enabled_when does not hold
    beside: str | None = None  # share the row of this (earlier) field, with the label inline
    placeholder: str = ""  # grey text of an empty text or list field
    prefix: str = ""  # shown before a number ("k = ")
    suffix: str = ""  # shown after a number (" nats", " epochs")

    @property
    def name(self) -> str:
        """The accessible name: what screen readers and tests find the widget by."""
        return self.accessible or self.label


def ui(label: str, tip: str, *, widget: str | None = None, lo: float | None = None, hi: float | None = None,
       step: float | None = None, decimals: int | None = None, choices: Iterable | None = None,
       group: str | None = None, accessible: str | None = None, advanced: bool = False,
       visible_when: Mapping[str, Any] | None = None, enabled_when: Mapping[str, Any] | None = None,
       unavailable: str = "", beside: str | None = None, placeholder: str = "", prefix: str = "",
       suffix: str = "") -> dict[str, UiSpec]:
    """The `metadata=` mapping that puts a config field in the studio's forms.

    `choices` are values or (value, label) pairs. Returns {"ui": UiSpec(...)}.
    """
    if not label or not tip:
        raise ValueError("a form field needs a label and a tooltip")
    if widget is not None and not isinstance(widget, str):
        raise TypeError(f"widget must be a name, got {widget!r}")
    pairs = None
    if choices is not None:
        pairs = tuple((c[0], str(c[1])) if isinstance(c, (tuple, list)) else (c, str(c)) for c in choices)
        if not pairs:
            raise ValueError(f"{label}: choices must not be empty")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{label}: lo {lo} is above hi {hi}")
    return {UI_KEY: UiSpec(label=label, tip=tip, widget=widget, lo=lo, hi=hi, step=step, decimals=decimals,
                           choices=pairs, group=group, accessible=accessible, advanced=advanced,
                           visible_when=_frozen_rule(visible_when), enabled_when=_frozen_rule(enabled_when),
                           unavailable=unavailable, beside=beside, placeholder=placeholder, prefix=prefix,
                           suffix=suffix)}


def labelled(values: Iterable[str], labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(value, label) pairs for `choices`: every value, labelled where a label is known (a value added
    later to the list, without a label yet, still appears, under its own name)."""
    return tuple((v, labels.get(v, v)) for v in values)


@dataclass(frozen=True)
class UiField:
    """One row of the field table: the dataclass field and how it appears."""

    name: str
    spec: UiSpec
    widget: str  # resolved widget kind
    default: Any
    type: str  # the annotation as text


def ui_fields(cls: type) -> list[UiField]:
    """The form fields of a config dataclass (or an instance), in declaration order."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(UI_KEY)
        if spec is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        type_text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        out.append(UiField(f.name, spec, spec.widget or infer_widget(spec, default, type_text), default, type_text))
    return out


def infer_widget(spec: UiSpec, default: Any, type_text: str) -> str:
    """The widget kind for a field that names none: from its choices, default and annotation."""
    t = type_text.replace(" ", "")
    if spec.choices:
        return "combo"
    if t.startswith(("list[int]", "tuple[int", "Sequence[int]")) or "|list[int]" in t or "|tuple[int" in t:
        return "int_list"
    if t.startswith(("list[str]", "tuple[str", "Sequence[str]")) or "|list[str]" in t or "|tuple[str" in t:
        return "name_list"
    if isinstance(default, bool) or t == "bool":
        return "check"
    if isinstance(default, int) or t == "int":
        return "spin"
    if isinstance(default, float) or t == "float":
        return "float"
    return "text"


def rule_holds(rule: Mapping[str, Any] | None, values: Mapping[str, Any]) -> bool:
    """True when every entry of `rule` holds for `values` (a missing name never holds)."""
    if not rule:
        return True
    for name, wanted in rule.items():
        if name not in values:
            return False
        v = values[name]
        if isinstance(wanted, tuple):
            if v not in wanted:
                return False
        elif v != wanted:
            return False
    return True


def _frozen_rule(rule: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if rule is None:
        return None
    if not isinstance(rule, Mapping):
        raise TypeError(f"a visibility rule maps field names to values, got {rule!r}")
    return {k: tuple(v) if isinstance(v, (list, set, frozenset)) else v for k, v in rule.items()}


__all__ = ["UI_KEY", "UiField", "UiSpec", "WIDGETS", "infer_widget", "labelled", "rule_holds", "ui", "ui_fields"]
