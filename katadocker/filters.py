"""``key=value`` flag values as docker's client parses them, for the CLI and the engine alike:
``--filter`` (`parse_filters`) and ``--label``/``--opt`` (`parse_pairs`), with docker's error texts.

Imports only katadocker.errors (the CLI may import it at start-up cost close to nothing).
"""

from __future__ import annotations

from collections.abc import Collection

from katadocker.errors import InvalidArgument, UsageError


def parse_filters(values: list[str], allowed: Collection[str]) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` -> ``{"dangling": ["true"], "label": ["a"]}`` (keys trimmed
    and lower-cased, values kept as given, in order of first appearance).

    Raises UsageError (docker's client-side text) for a value without ``=`` and InvalidArgument
    (docker's daemon text) for a key not in `allowed`.
    """
    out: dict[str, list[str]] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep:
            raise UsageError(f'invalid argument "{v}" for "-f, --filter" flag: '
                             "bad format of filter (expected name=value)")
        key = key.strip().lower()
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


def parse_pairs(values: list[str], flag: str) -> dict[str, str]:
    """``k=v`` flag values (``--label``, ``--opt``) as a dict; ``k`` alone means an empty value, as
    in docker. `flag` names the flag in the error for an empty key (``"-o, --opt"``)."""
    out = {}
    for v in values:
        key, _, value = v.partition("=")
        if not key:
            raise UsageError(f'invalid argument "{v}" for "{flag}" flag: bad format (expected key=value)')
        out[key] = value
    return out
