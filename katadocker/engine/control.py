"""The monitor's control socket (``<container>/control.sock``): how CLI commands talk to a running
container's monitor.

Each connection starts with one JSON line naming the operation:

* ``{"op": "kill", "signal": 15}`` → the monitor delivers the signal to the container's process
  (SIGKILL also tears the VM down if the process does not end promptly); reply ``{"ok": true}``.
* ``{"op": "wait"}`` → the monitor replies ``{"ExitCode": n, "Error": "…"}`` when the process has
  ended and its output is in the log. A monitor running an ``--rm`` container answers every waiter
  before removing the container.
* ``{"op": "stdin"}`` → every byte the client sends afterwards goes to the process's stdin; the
  client's end of stream (shutdown of its write side) closes the process's stdin.
* ``{"op": "exec", …}`` → runs another process in the container (``Cmd``, ``Env``, ``User``,
  ``WorkingDir``, ``Tty``, ``Rows``, ``Cols``, ``AttachStdin``, ``Detach``) and relays its streams
  in engine/wire.py frames; with ``"Detach": true`` the monitor answers once the process has started
  and drains its output itself (monitor/ops.py).
* ``{"op": "resize", "Rows": r, "Cols": c}`` → sets the main process's pty size; reply
  ``{"ok": true}`` or ``{"error": "…"}``.
* ``{"op": "pause"}`` / ``{"op": "unpause"}`` → stop / resume the whole VM (QMP ``stop`` / ``cont``)
  and record the event; reply ``{"ok": true}`` or ``{"error": "…"}``.

Any other operation (or a request line that is not JSON) gets the connection closed without a reply.
The first three are served by monitor/core.py's ``_handle``; the interactive ones by monitor/ops.py.

Output is not carried here: attached clients follow the json-file log, which keeps stdout and
stderr apart and loses nothing written before they connected.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from katadocker.errors import KatadockerError


class MonitorUnreachable(KatadockerError):
    """The container's monitor does not answer (it has exited or crashed)."""


def connect(sock_path: Path, op: dict[str, Any], timeout: float | None = 10.0) -> socket.socket:
    """Open a connection and send the operation line; `MonitorUnreachable` if nobody listens."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        s.sendall(json.dumps(op).encode() + b"\n")
    except OSError as e:
        s.close()
        raise MonitorUnreachable(f"container monitor not reachable: {e}") from None
    return s


def read_reply(s: socket.socket) -> dict[str, Any] | None:
    """The single JSON line a monitor answers with; None if it closed the connection first."""
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            chunk = s.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return json.loads(buf)


def request(sock_path: Path, op: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one operation and return the reply."""
    with connect(sock_path, op, timeout) as s:
        reply = read_reply(s)
    if reply is None:
        raise MonitorUnreachable("container monitor closed the connection")
    return reply


def kill(sock_path: Path, signo: int) -> None:
    request(sock_path, {"op": "kill", "signal": signo})
