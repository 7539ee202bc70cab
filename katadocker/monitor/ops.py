"""Control-socket operations a monitor serves for interactive use: ``exec``, ``resize``, ``pause``
and ``unpause`` (engine/control.py lists every operation).

* ``exec`` runs another process in the container (`serve_exec`) and relays its streams in
  engine/wire.py frames; with ``"Detach": true`` the monitor answers STARTED and drains the output
  itself. A client that goes away mid-exec only loses the output: the monitor keeps reading (and
  discarding) it so the process never blocks on a full pipe and the agent link stays healthy; its
  stdin is closed as a pipe's would be.
* ``resize`` sets the main process's pty size (``{"Rows": r, "Cols": c}``); reply ``{"ok": true}``.
* ``pause`` / ``unpause`` stop and resume the whole VM (QMP ``stop`` / ``cont``); reply ``{"ok":
  true}`` or ``{"error": "…"}``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

from katadocker.engine import events, process_spec, wire
from katadocker.engine.wire import Kind
from katadocker.errors import CommandNotExecutable, CommandNotFound, KatadockerError, VMError

OPS = ("exec", "resize", "pause", "unpause")
#: How long the agent gets to start an exec'd process.
EXEC_START_TIMEOUT = 60.0


def handle(monitor: Any, op: str, request: dict[str, Any], conn: socket.socket, f: Any) -> None:
    """Serve one of `OPS` on `conn` (whose buffered reader is `f`, past the request line)."""
    if op == "exec":
        serve_exec(monitor, request, conn, f)
        return
    try:
        if monitor.proc is None or monitor.finished.is_set():
            raise VMError("the container is not running")
        if op == "resize":
            monitor.proc.resize(int(request["Rows"]), int(request["Cols"]))
        else:
            monitor.vm.qmp("stop" if op == "pause" else "cont")
            events.container(monitor.store.root, monitor.record, op)
        reply: dict[str, Any] = {"ok": True}
    except (KatadockerError, OSError, KeyError, ValueError) as e:
        reply = {"error": getattr(e, "message", None) or str(e)}
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")


def exec_spec(monitor: Any, request: dict[str, Any]) -> Any:
    """The agent ProcessSpec for an exec request: the container's user database, environment and
    working directory, overridden by the request's ``User``, ``Env`` and ``WorkingDir``."""
    from katadocker.agent.protocol import ProcessSpec

    rec = monitor.record
    cfg = rec.config["Config"]
    user = process_spec.resolve_user(request.get("User") or cfg.get("User") or "",
                                     process_spec.read_root_file(rec.rootfs, "/etc/passwd"),
                                     process_spec.read_root_file(rec.rootfs, "/etc/group"))
    tty = bool(request.get("Tty"))
    env = process_spec.merge_env(list(cfg.get("Env") or []), list(request.get("Env") or []))
    hostname = cfg.get("Hostname") or rec.short_id
    return ProcessSpec(args=list(request["Cmd"]), env=process_spec.process_env(env, hostname, tty, user.home),
                       cwd=request.get("WorkingDir") or cfg.get("WorkingDir") or "/", uid=user.uid,
                       gid=user.gid, groups=user.groups, tty=tty, rows=int(request.get("Rows") or 0),
                       cols=int(request.get("Cols") or 0), stdin=bool(request.get("AttachStdin")))


def serve_exec(monitor: Any, request: dict[str, Any], conn: socket.socket, f: Any) -> None:
    """Start the process and relay it until it exits (see the module doc)."""
    try:
        if monitor.agent is None or not monitor.started.is_set() or monitor.finished.is_set():
            raise VMError(f"container {monitor.record.id} is not running")
        proc = monitor.agent.exec(exec_spec(monitor, request), timeout=EXEC_START_TIMEOUT)
    except KatadockerError as e:
        code = e.exit_code if isinstance(e, (CommandNotFound, CommandNotExecutable)) else 125
        with contextlib.suppress(OSError):
            wire.send_json(conn, Kind.ERROR, {"ExitCode": code, "Message": e.message})
        return
    client = _Client(conn)
    client.send_json(Kind.STARTED, {"Pid": proc.pid})
    if request.get("Detach"):
        client.gone = True
        conn.close()
    else:
        threading.Thread(target=_pump_input, args=(proc, f, bool(request.get("AttachStdin")), client),
                         name=f"exec-{proc.id}-in", daemon=True).start()
    _pump_output(proc, client)


class _Client:
    """The exec's client connection; `gone` once a write failed (output is then discarded)."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.gone = False

    def send(self, kind: Kind, payload: bytes) -> None:
        if self.gone:
            return
        try:
            wire.send(self.conn, kind, payload)
        except OSError:
            self.gone = True

    def send_json(self, kind: Kind, value: dict[str, Any]) -> None:
        self.send(kind, json.dumps(value).encode())


def _pump_output(proc: Any, client: _Client) -> None:
    from katadocker.agent.client import Output

    while True:
        try:
            event = proc.next_event(None)
        except VMError as e:
            client.send_json(Kind.EXIT, {"ExitCode": 137, "Error": e.message})
            return
        if isinstance(event, Output):
            client.send(Kind.STDERR if event.stream == 2 else Kind.STDOUT, event.data)
        elif event is not None:
            client.send_json(Kind.EXIT, {"ExitCode": int(event.code)})
            return


def _pump_input(proc: Any, f: Any, stdin: bool, client: _Client) -> None:
    """Client frames to the process until the client closes its side; then close the stdin."""
    try:
        while True:
            kind, payload = wire.receive(f)
            if kind == Kind.STDIN and stdin:
                proc.write_stdin(payload, timeout=3600)
            elif kind == Kind.EOF:
                proc.close_stdin()
            elif kind == Kind.RESIZE:
                proc.resize(*wire.decode_resize(payload))
            elif kind == Kind.SIGNAL:
                proc.signal(int.from_bytes(payload[:4], "big"))
    except wire.WireClosed:
        pass  # the client closed its side (or went away): only its stdin ends
    except (VMError, OSError):
        return
    with contextlib.suppress(VMError, OSError):
        if stdin:
            proc.close_stdin()

