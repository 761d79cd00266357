"""Inputs made from the catalog's facts alone: a minimal valid input for each model, and for each
field the mutations its facts forbid. Shared by the provider's and the emulator's validation tests."""

from __future__ import annotations

from typing import Any

from airflow_provider_kie import models

SAMPLE_URL = {
    "image": "https://example.org/in.png",
    "video": "https://example.org/in.mp4",
    "audio": "https://example.org/in.mp3",
    "document": "https://example.org/in.pdf",
}


def sample(field: models.Field) -> Any:
    """A value the field takes: its default, its first allowed value, or one made from its bounds."""
    if field.default is not None:
        return field.default
    if field.enum:
        return field.enum[0]
    if field.file:
        url = SAMPLE_URL.get(field.file, SAMPLE_URL["image"])
        return [url] * max(field.min_items or 1, 1) if field.is_list else url
    if field.type == "boolean":
        return False
    if field.type in ("integer", "number"):
        return field.min if field.min is not None else 1
    if field.type == "string":
        if field.min is not None:  # a number Kie wants as text
            return str(int(field.min))
        return "a" * max(field.min_length or 1, 5)
    if field.type == "array[object]":
        return [{}] * max(field.min_items or 1, 1)
    if field.is_list:
        return [["a"]] * max(field.min_items or 1, 1) if field.type == "array[array]" else ["a"]
    return "a"


def minimal_input(model: models.KieModel) -> dict[str, Any]:
    return {f.name: sample(f) for f in model.fields if f.required}


def mutations(model: models.KieModel) -> list[tuple[str, str, dict[str, Any]]]:
    """(field, what is wrong, input) for each rule the catalog states of each field."""
    base = minimal_input(model)
    cases = []
    for f in model.fields:

        def with_(value: Any, f: models.Field = f) -> dict[str, Any]:
            return {**base, f.name: value}

        if f.required and f.default is None:
            cases.append((f.name, "missing", {k: v for k, v in base.items() if k != f.name}))
        if f.enum and f.type == "string":
            cases.append((f.name, "not an allowed value", with_("no-such-value")))
        elif f.enum:
            cases.append((f.name, "not an allowed value", with_(987654)))
        if f.type in ("integer", "number") and f.max is not None and not f.enum:
            cases.append((f.name, "above the maximum", with_(f.max + 1)))
        if f.type in ("integer", "number") and f.min is not None and not f.enum:
            cases.append((f.name, "below the minimum", with_(f.min - 1)))
        if f.type == "string" and f.max_length is not None and not f.enum and not f.file:
            cases.append((f.name, "too long", with_("a" * (f.max_length + 1))))
        if f.is_list and f.max_items is not None:
            one = sample(f)[0] if sample(f) else "a"
            cases.append((f.name, "too many items", with_([one] * (f.max_items + 1))))
        if f.file:
            cases.append((f.name, "not a URL", with_(["ftp://x/y"] if f.is_list else "ftp://x/y")))
        if f.type == "boolean":
            cases.append((f.name, "not a boolean", with_("maybe")))
    return cases
