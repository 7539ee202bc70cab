"""The json-file log: docker's record format, partial lines, and the reader's filters."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from katadocker.engine import logs
from katadocker.errors import InvalidArgument
from katadocker.state import clock


def test_record_format_matches_dockers() -> None:
    line = logs.encode_record(b'a\t"<b>"&\\\r\n', "stdout", 1_700_000_000_120_000_000)
    assert line == (b'{"log":"a\\u0009\\"\\u003cb\\u003e\\"\\u0026\\\\\\r\\n","stream":"stdout",'
                    b'"time":"2023-11-14T22:13:20.12Z"}\n')
    assert json.loads(line)["log"] == 'a\t"<b>"&\\\r\n'


def test_invalid_utf8_becomes_replacement_char() -> None:
    assert json.loads(logs.encode_record(b"\xff\n", "stderr", 0))["log"] == "\ufffd\n"


def read_records(path: Path, opts: logs.LogOptions) -> tuple[list[logs.LogRecord], int]:
    log = logs.open_log(path)
    assert log is not None
    with log:
        return logs.read_records(log, opts)


def test_writer_cuts_lines_and_keeps_partials(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    w = logs.LogWriter(path)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\nx" * 1 + b"y" * (logs.MAX_LINE + 10))
    w.close()
    records, offset = read_records(path, logs.LogOptions())
    assert offset == path.stat().st_size
    assert [(r.stream, r.data) for r in records][:3] == [("stdout", b"one\n"), ("stderr", b"err\n"),
                                                         ("stdout", b"two\n")]
    rest = records[3:]
    assert [len(r.data) for r in rest] == [logs.MAX_LINE, 11]        # long line cut, tail partial
    assert b"".join(r.data for r in rest) == b"x" + b"y" * (logs.MAX_LINE + 10)


def _write(path: Path, entries: list[tuple[str, str, int]]) -> None:
    with path.open("wb") as f:
        for stream, text, ns in entries:
            f.write(logs.encode_record(text.encode(), stream, ns))


def test_tail_since_until(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    s = 1_000_000_000
    _write(path, [("stdout", f"{i}\n", (100 + i) * s) for i in range(10)])
    data = lambda opts: [r.data for r in read_records(path, opts)[0]]  # noqa: E731
    assert data(logs.LogOptions(tail=2)) == [b"8\n", b"9\n"]
    assert data(logs.LogOptions(tail=0)) == []
    assert data(logs.LogOptions(since=107 * s)) == [b"7\n", b"8\n", b"9\n"]
    assert data(logs.LogOptions(until=101 * s)) == [b"0\n", b"1\n"]
    assert data(logs.LogOptions(since=103 * s, tail=1)) == [b"9\n"]


def test_timestamps_render_with_nine_digits() -> None:
    rec = logs.LogRecord("stdout", b"x\n", 1_700_000_000_000_000_000)
    out = logs.render(rec, timestamps=True)
    assert out == b"2023-11-14T22:13:20.000000000Z x\n"
    assert out[29:30] == b"Z"


@pytest.mark.parametrize(("value", "expected"), [("all", None), ("-1", None), ("random", None), ("0", 0),
                                                 ("5", 5)])
def test_parse_tail(value: str, expected: int | None) -> None:
    assert logs.parse_tail(value) == expected


def test_parse_timestamp_forms() -> None:
    now = 1_700_000_000 * 1_000_000_000
    assert logs.parse_timestamp("10m", "since", now) == now - 600 * 1_000_000_000
    assert logs.parse_timestamp("1h30m", "since", now) == now - 5400 * 1_000_000_000
    assert logs.parse_timestamp("1700000000", "since", now) == now
    assert logs.parse_timestamp("1700000000.5", "since", now) == now + 500_000_000
    assert logs.parse_timestamp("2023-11-14T22:13:20Z", "since", now) == now
    assert logs.parse_timestamp("2023-11-14T23:13:20+01:00", "since", now) == now
    local = logs.parse_timestamp("2023-11-14", "since", now)
    assert abs(local - now) < 2 * 86400 * 1_000_000_000
    with pytest.raises(InvalidArgument, match='invalid value for "since"'):
        logs.parse_timestamp("yesterday", "since", now)


def test_follow_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "ctr.log"
    w = logs.LogWriter(path)
    w.write("stdout", b"first\n")
    _, offset = read_records(path, logs.LogOptions())
    done = threading.Event()

    def produce() -> None:
        time.sleep(0.2)
        w.write("stderr", b"second\n")
        w.close()
        done.set()

    threading.Thread(target=produce).start()
    log = logs.open_log(path, create=True)
    assert log is not None
    with log:
        got = [(r.stream, r.data) for r in logs.follow_records(log, offset, logs.LogOptions(), done.is_set,
                                                                  poll=0.02)]
    assert got == [("stderr", b"second\n")]


def test_a_log_opened_for_follow_reads_to_its_end_after_it_is_removed(tmp_path: Path) -> None:
    """An attached ``run --rm`` client opens the log first: the container may be removed (its log
    with it) before the client reads a byte, and the client still gets every record."""
    path = tmp_path / "ctr" / "ctr.log"
    path.parent.mkdir()
    log = logs.open_log(path, create=True)  # before the monitor created it: created empty
    assert log is not None and path.exists()
    w = logs.LogWriter(path)
    w.write("stdout", b"all of it\n")
    w.close()
    path.unlink()
    path.parent.rmdir()
    with log:
        got = [r.data for r in logs.follow_records(log, 0, logs.LogOptions(), lambda: True)]
    assert got == [b"all of it\n"]
    assert logs.open_log(path, create=True) is None  # the container's directory is gone
    assert logs.open_log(tmp_path / "no-such.log") is None  # not created without `create`
    assert not (tmp_path / "no-such.log").exists()


def test_clock_roundtrip() -> None:
    ns = 1_700_000_000_123_456_789
    assert clock.parse_ns(clock.format_ns(ns)) == ns
    assert clock.format_ns(ns, fixed=True).endswith(".123456789Z")
