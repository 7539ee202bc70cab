"""Framing of the streams that follow an ``exec`` request on a monitor's control socket.

After the JSON request line both sides exchange frames: a 5-byte header (u8 kind, u32 big-endian
payload length) and the payload. The client sends STDIN data, EOF (close the process's stdin),
RESIZE (u16 rows, u16 cols) and SIGNAL (u32); the monitor answers STARTED (JSON ``{"Pid": n}``) or
ERROR (JSON ``{"ExitCode": 125|126|127, "Message": "…"}``), then STDOUT/STDERR data and finally EXIT
(JSON ``{"ExitCode": n}``) after all output. Nothing is buffered beyond one frame per side: a slow
reader stalls its writer through the socket, and in the monitor that withholds the agent's credit.
"""

from __future__ import annotations

import enum
import json
import socket
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct("!BI")
#: The largest payload either side accepts (the agent's frames are smaller).
MAX_PAYLOAD = 1 << 20


class Kind(enum.IntEnum):
    """Frame kinds (see the module doc for who sends which)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    EOF = 3
    RESIZE = 4
    SIGNAL = 5
    STARTED = 6
    ERROR = 7
    EXIT = 8


class WireClosed(Exception):
    """The peer closed the connection (or it broke, or sent garbage) where a frame was expected."""


def send(sock: socket.socket, kind: Kind, payload: bytes = b"") -> None:
    """Write one frame (blocks while the peer does not read); OSError when the peer is gone."""
    sock.sendall(HEADER.pack(kind, len(payload)) + payload)


def send_json(sock: socket.socket, kind: Kind, value: dict[str, Any]) -> None:
    send(sock, kind, json.dumps(value).encode())


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n) if n else b""
    if len(data) != n:
        raise WireClosed("connection closed")
    return data


def receive(f: BinaryIO) -> tuple[Kind, bytes]:
    """Read one frame from the buffered reader `f`; `WireClosed` at end of stream or on garbage."""
    try:
        kind, length = HEADER.unpack(_read_exact(f, HEADER.size))
        if length > MAX_PAYLOAD:
            raise WireClosed(f"frame of {length} bytes")
        return Kind(kind), _read_exact(f, length)
    except (OSError, ValueError) as e:
        raise WireClosed(str(e)) from None


def resize_payload(rows: int, cols: int) -> bytes:
    return struct.pack("!HH", rows, cols)


def decode_resize(payload: bytes) -> tuple[int, int]:
    rows, cols = struct.unpack("!HH", payload[:4])
    return rows, cols
