"""Strict JSON parsing and RFC 8785 (JCS) canonical serialisation.

Signatures are computed over canonical bytes, so both ends must agree on them exactly. The
protocol therefore allows no floating-point numbers at all (instants are strings, durations
integer seconds), and the parser refuses what Python's ``json`` would quietly accept: duplicate
keys (last one wins), ``NaN``/``Infinity``, floats, nesting deeper than ``MAX_DEPTH``. The size
cap is checked on the raw bytes before anything is parsed.

Canonical bytes come from the ``rfc8785`` package, which sorts keys by UTF-16 code units as the
RFC requires (Python's ``sort_keys`` sorts by code points and differs for non-BMP keys).
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

from exchange.errors import RejectedMessage

MAX_MESSAGE_BYTES = 256 * 1024
MAX_DEPTH = 32


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RejectedMessage("malformed", f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise RejectedMessage("malformed", f"{name} is not JSON")


def _no_float(text: str) -> Any:
    raise RejectedMessage("malformed", f"floating-point number {text[:20]} not allowed")


def _depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise RejectedMessage("malformed", f"nesting deeper than {limit}")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_strict(raw: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Parse one JSON document, refusing anything whose canonical form would be ambiguous."""
    if len(raw) > max_bytes:
        raise RejectedMessage("too_large", f"{len(raw)} bytes > {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedMessage("malformed", "not UTF-8") from exc
    if text.startswith("\ufeff"):
        raise RejectedMessage("malformed", "byte order mark")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_no_float,
        )
    except RejectedMessage:
        raise
    except RecursionError as exc:
        raise RejectedMessage("malformed", "nesting too deep") from exc
    except ValueError as exc:  # JSONDecodeError, and ints over Python's digit limit
        raise RejectedMessage("malformed", str(exc)[:200]) from exc
    _depth(value, MAX_DEPTH)
    _check_scalars(value)
    return value


MAX_SAFE_INTEGER = 2**53 - 1


def _check_scalars(value: Any) -> None:
    """Refuse lone surrogates, and integers that JSON peers cannot represent exactly."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                raise RejectedMessage("malformed", "integer outside the interoperable range")
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise RejectedMessage("malformed", "lone surrogate in string") from exc
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of a JSON value."""
    return bytes(rfc8785.dumps(value))


def canonical_members(value: dict[str, Any]) -> dict[str, bytes]:
    """Each member of a JSON object as its canonical ``"name":value`` bytes (``join_members``
    puts them together). An object's canonical form is its members' forms, sorted by name,
    so a signer can serialise the members once and join them with and without ``sig``."""
    return {
        name: bytes(rfc8785.dumps(name)) + b":" + canonical(item) for name, item in value.items()
    }


def join_members(members: dict[str, bytes]) -> bytes:
    """The canonical bytes of the object whose members ``canonical_members`` serialised:
    sorted by name in UTF-16 code units, as RFC 8785 sorts them."""
    order = sorted(members, key=lambda name: name.encode("utf-16-be"))
    return b"{" + b",".join(members[name] for name in order) + b"}"
