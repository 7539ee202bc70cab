"""Signal names as docker accepts them (``--stop-signal``, ``kill -s``, image STOPSIGNAL)."""

from __future__ import annotations

import signal

from katadocker.errors import InvalidArgument


def parse_signal(value: str) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15`` → 15; docker's ``Invalid signal: X`` otherwise."""
    text = value.strip()
    if text.isdigit():
        n = int(text)
        if 0 < n < signal.NSIG:
            return n
        raise InvalidArgument(f"Invalid signal: {value}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {value}") from None
