"""Typed values: one checker for MLproject parameters and pipeline inputs alike.

MLproject names its types `string`, `float`, `int`, `bool`, `path` and `uri`; pipelines (Azure ML's
words) `string`, `number`, `integer`, `boolean`, `uri_file` and `uri_folder`. Both are read the same
way, strictly: numbers are finite and written in ASCII digits (no `nan`, `inf`, `1_000` or `١٢`, which
Python's float() and int() would take), integers are digits with an optional sign, booleans are
true/false/yes/no/1/0 in any case, URIs have a scheme. Values stay the strings the user wrote.
"""

from __future__ import annotations

import math

_ALIASES = {
    "str": "string",
    "float": "number",
    "double": "number",
    "int": "integer",
    "bool": "boolean",
}
KINDS = frozenset({"string", "number", "integer", "boolean", "path", "uri", "uri_file", "uri_folder"})
BOOLEANS = frozenset({"true", "false", "1", "0", "yes", "no"})
_DIGITS = frozenset("0123456789")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def kind_of(type_name: str) -> str | None:
    """The checker's name for a type of either vocabulary (`float` → `number`), or None if unknown."""
    kind = _ALIASES.get(type_name, type_name)
    return kind if kind in KINDS else None


def check(type_name: str, value: str) -> str | None:
    """Why `value` is not a valid `type_name`, or None when it is. (Whether a path exists is checked
    where it is resolved.)"""
    kind = kind_of(type_name)
    text = value.strip()
    if kind == "number":
        if not _is_number(text):
            return f"expected a number, got {value!r}"
    elif kind == "integer":
        if not _is_integer(text):
            return f"expected an integer, got {value!r}"
    elif kind == "boolean":
        if text.lower() not in BOOLEANS:
            return f"expected true or false, got {value!r}"
    elif kind == "uri":
        if uri_scheme(value) is None:
            return f"expected a URI with a scheme (such as file:// or s3://), got {value!r}"
    elif kind in ("uri_file", "uri_folder") and not text:
        return "expected a path or URI"
    return None


def check_timeout(timeout: float | None, flag: str = "--timeout") -> None:
    """A timeout is a positive, finite number of seconds; an input error says so otherwise."""
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        from mlproj.errors import InputError

        raise InputError(f"{flag} {timeout:g}: expected a positive number of seconds")


def _is_integer(text: str) -> bool:
    digits = text[1:] if text[:1] in ("+", "-") else text
    return bool(digits) and set(digits) <= _DIGITS


def _is_number(text: str) -> bool:
    if not text or not set(text) <= _NUMBER_CHARS:
        return False  # letters (nan, inf), underscores, other scripts' digits
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def uri_scheme(value: str) -> str | None:
    """The scheme of a URI (`s3`, `file`…), or None for a plain path. A Windows drive is not a scheme."""
    scheme, colon, _rest = value.partition(":")
    if not colon or len(scheme) < 2 or not scheme[0].isalpha() or not set(scheme) <= _SCHEME_CHARS:
        return None
    return scheme.lower()
