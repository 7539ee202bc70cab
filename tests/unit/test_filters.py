"""katadocker.filters: docker's parsing of --filter and --label/--opt values, and its error texts."""

from __future__ import annotations

import pytest

from katadocker.errors import InvalidArgument, UsageError
from katadocker.filters import parse_filters, parse_pairs


def test_filters_grouped_by_key_in_order() -> None:
    got = parse_filters(["Label=a=b", "dangling=true", " label =c"], ("dangling", "label"))
    assert got == {"label": ["a=b", "c"], "dangling": ["true"]}
    assert list(got) == ["label", "dangling"]


def test_filter_errors() -> None:
    with pytest.raises(UsageError, match=r'invalid argument "dangling" for "-f, --filter" flag: '
                                         r"bad format of filter \(expected name=value\)"):
        parse_filters(["dangling"], ("dangling",))
    with pytest.raises(InvalidArgument, match="invalid filter 'foo'"):
        parse_filters(["foo=1"], ("dangling",))


def test_pairs() -> None:
    assert parse_pairs(["a=1", "b", "c=x=y"], "--label") == {"a": "1", "b": "", "c": "x=y"}
    with pytest.raises(UsageError, match=r'invalid argument "=v" for "-o, --opt" flag: '
                                         r"bad format \(expected key=value\)"):
        parse_pairs(["=v"], "-o, --opt")
