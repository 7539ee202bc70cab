"""docker's json-file log: the writer the monitor uses and the reader behind `logs`.

One JSON object per line, keys in docker's order::

    {"log":"hello\\n","stream":"stdout","time":"2024-01-02T15:04:05.123456789Z"}

As docker's copier does, output is cut into lines; a line longer than 16 KiB, or output that ends
without a newline, is stored as a partial record without ``\\n`` so that reading reproduces the
bytes exactly. Strings are escaped as Go's encoding/json does (``<>&`` and control bytes as
``\\u00XX``, invalid UTF-8 as U+FFFD).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from katadocker.errors import InvalidArgument
from katadocker.state import clock

#: docker's copier buffer: a line longer than this is split into partial records.
MAX_LINE = 16 * 1024

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r"}


def go_json_string(text: str) -> str:
    """`text` as Go's encoding/json writes a string (HTML-safe)."""
    out = ['"']
    for ch in text:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " " or ch in "<>&" or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def encode_record(data: bytes, stream: str, ns: int) -> bytes:
    """One json-file line (with its trailing newline) for `data` written on `stream` at `ns`."""
    log = go_json_string(data.decode("utf-8", errors="replace"))
    return f'{{"log":{log},"stream":"{stream}","time":"{clock.format_ns(ns)}"}}\n'.encode()


class LogWriter:
    """Cuts a container's stdout and stderr into json-file records appended to `path`.

    `write` may be called with arbitrary chunks; `close` flushes unterminated output as partial
    records. Each record is written with one ``write`` so a concurrent reader never sees half a line.
    """

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the writer
        self._pending: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream]
        buf += data
        while True:
            nl = buf.find(b"\n")
            if nl < 0 or nl >= MAX_LINE:
                break
            self._emit(stream, bytes(buf[: nl + 1]))
            del buf[: nl + 1]
        while len(buf) >= MAX_LINE:
            self._emit(stream, bytes(buf[:MAX_LINE]))
            del buf[:MAX_LINE]

    def flush_partial(self) -> None:
        """Write any unterminated output as partial records."""
        for stream, buf in self._pending.items():
            if buf:
                self._emit(stream, bytes(buf))
                buf.clear()

    def close(self) -> None:
        self.flush_partial()
        self._file.close()

    def _emit(self, stream: str, data: bytes) -> None:
        self._file.write(encode_record(data, stream, clock.now_ns()))


# --- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LogRecord:
    stream: str
    data: bytes
    ns: int


@dataclass(frozen=True)
class LogOptions:
    """`logs` options: `tail` None = all; `since`/`until` in ns (None = unbounded)."""

    tail: int | None = None
    since: int | None = None
    until: int | None = None
    timestamps: bool = False


def parse_tail(value: str) -> int | None:
    """docker's ``--tail``: a non-negative integer, else (``all``, negative, garbage) everything."""
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_LOCAL_LAYOUTS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d")


def parse_go_duration(text: str) -> int | None:
    """Go's time.ParseDuration in ns (``1h30m``, ``10m``, ``1.5s``), None if `text` is not one."""
    if not text or text == "0":
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(body):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(body) or pos == 0:
        return None
    return sign * int(total)


def parse_timestamp(value: str, flag: str, now_ns: int | None = None) -> int:
    """docker's ``--since``/``--until`` value in ns: a Go duration (before now), an RFC 3339 time,
    a date/time without zone (local time), or Unix seconds with optional fraction."""
    now = clock.now_ns() if now_ns is None else now_ns
    duration = parse_go_duration(value)
    if duration is not None:
        return now - duration
    try:
        return clock.parse_ns(value)
    except ValueError:
        pass
    frac = ""
    base = value
    if "." in value and "T" in value:
        base, frac = value.split(".", 1)
    for layout in _LOCAL_LAYOUTS:
        try:
            dt = datetime.strptime(base, layout)
        except ValueError:
            continue
        if frac and not frac.isdigit():
            break
        return int(time.mktime(dt.timetuple())) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    raise InvalidArgument(f'invalid value for "{flag}": parsing time "{value}": cannot parse "{value}"')


def _parse_line(line: bytes) -> LogRecord | None:
    try:
        obj = json.loads(line)
        return LogRecord(obj["stream"], obj["log"].encode("utf-8", errors="surrogateescape"),
                         clock.parse_ns(obj["time"]))
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign line: docker skips it too


def read_records(f: BinaryIO, opts: LogOptions) -> tuple[list[LogRecord], int]:
    """Records of the log open as `f` (`open_log`), from its start, matching `opts`, and the byte
    offset where reading stopped (for `follow_records` on the same file)."""
    kept: deque[LogRecord] = deque(maxlen=opts.tail) if opts.tail is not None else deque()
    offset = 0
    f.seek(0)
    for line in f:
        if not line.endswith(b"\n"):
            break  # being written right now: follow picks it up
        offset += len(line)
        rec = _parse_line(line)
        if rec is not None and _in_window(rec, opts):
            kept.append(rec)
    return list(kept), offset


def _in_window(rec: LogRecord, opts: LogOptions) -> bool:
    if opts.since is not None and rec.ns < opts.since:
        return False
    return not (opts.until is not None and rec.ns > opts.until)


def open_log(path: Path, create: bool = False) -> BinaryIO | None:
    """The log `path` opened for reading; None when it does not exist. With `create` (to follow it)
    it is created empty if its writer has not created it yet, and None means the container's
    directory is gone. Open a log to follow before anything can end the container: an ``--rm``
    container's log is deleted once its attached client got the exit code, and an open file still
    reads to its end after that."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return None
    return os.fdopen(fd, "rb")


def follow_records(f: BinaryIO, offset: int, opts: LogOptions, stopped: Callable[[], bool],
                   poll: float = 0.05, wake: threading.Event | None = None) -> Iterator[LogRecord]:
    """Records appended to the log open as `f` (`open_log`) after `offset` until `stopped()`
    is true and the file is drained. Between polls it sleeps `poll` seconds, or less when `wake` is
    set (the caller's stop event: the final drain then starts at once instead of up to `poll`
    later)."""
    partial = b""
    f.seek(offset)
    while True:
        done = stopped()
        chunk = f.read()
        if chunk:
            partial += chunk
            *lines, partial = partial.split(b"\n")
            for line in lines:
                rec = _parse_line(line)
                if rec is not None and _in_window(rec, opts):
                    yield rec
            continue
        if done:
            return
        if wake is not None:
            wake.wait(poll)
        else:
            time.sleep(poll)


def render(rec: LogRecord, timestamps: bool) -> bytes:
    """The bytes `logs` prints for one record (with docker's fixed-width timestamp when asked)."""
    if timestamps:
        return clock.format_ns(rec.ns, fixed=True).encode() + b" " + rec.data
    return rec.data
