"""Timestamps as docker writes them: RFC 3339 with nanoseconds, in UTC.

Times are carried as integer nanoseconds since the epoch (Python's datetime stops at microseconds).
Go's ``time.RFC3339Nano`` trims trailing zeros of the fraction; docker's log timestamps
(``logs -t``) keep all nine digits. The zero time is Go's ``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

import calendar
import re
import time

ZERO_TIME = "0001-01-01T00:00:00Z"

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def now_ns() -> int:
    """The current time in nanoseconds since the epoch."""
    return time.time_ns()


def format_ns(ns: int, *, fixed: bool = False) -> str:
    """``2024-01-02T15:04:05.123456789Z``; trailing zeros of the fraction trimmed unless `fixed`."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}"
    if not fixed:
        digits = digits.rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def parse_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp (with optional fraction and offset) into nanoseconds.

    Raises ValueError for anything else. The zero time parses to a negative number, so that
    `parse_ns(ZERO_TIME) < 0` tells "never".
    """
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, mon, day, hh, mm, ss, frac, zone = m.groups()
    secs = calendar.timegm((int(year), int(mon), int(day), int(hh), int(mm), int(ss), 0, 0, 0))
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
