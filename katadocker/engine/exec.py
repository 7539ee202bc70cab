"""docker exec: run another process in a running container, through its monitor (monitor/ops.py).

`ExecSession.start()` checks the container (docker's "is not running" / "is paused" conflicts),
asks the monitor to start the process and raises `CommandNotFound` (127) / `CommandNotExecutable`
(126) / `ExecFailed` (125) when it cannot run; `run()` then relays stdin, output, resizes and
signals until the process exits and returns its exit code. Every byte of output is delivered
before the exit code; a slow `on_output` slows the process down rather than buffering its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from katadocker.config import Settings
from katadocker.engine import control, process_spec, wire
from katadocker.engine.wire import Kind
from katadocker.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    InvalidArgument,
    KatadockerError,
)
from katadocker.state.containers import ContainerRecord

#: How runc words a failed exec, which docker prints before the reason.
RUNTIME_PREFIX = "unable to start container process: "


class ExecFailed(KatadockerError):
    """The process could not be started for another reason than 126/127 (docker exits 126 too,
    but katadocker keeps 125 for its own failures, as for `run`)."""


@dataclass
class ExecOptions:
    """What `exec` was asked for, flags parsed by the CLI (env already expanded on the host)."""

    cmd: list[str]
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    rows: int = 0
    cols: int = 0


def exec_env(values: list[str], env_files: list[str]) -> list[str]:
    """The ``--env-file`` and ``-e`` values as KEY=value entries (``-e KEY`` takes the host's)."""
    host = dict(os.environ)
    out: list[str] = []
    for path in env_files:
        try:
            with open(path) as fh:
                out += process_spec.parse_env_file(fh.read(), host)
        except OSError as e:
            raise InvalidArgument(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    return out + process_spec.expand_env_options(values, host)


def check_runnable(record: ContainerRecord) -> None:
    """docker's conflicts for exec into a container that is not running or is paused."""
    status = record.state["Status"]
    if status == "paused":
        raise Conflict(f"container {record.id} is paused, unpause the container before exec")
    if status not in ("running", "restarting"):
        raise Conflict(f"container {record.id} is not running")


class ExecSession:
    """One exec'd process of `record`, relayed over one control-socket connection."""

    def __init__(self, settings: Settings, record: ContainerRecord, opts: ExecOptions) -> None:
        self.settings = settings
        self.record = record
        self.opts = opts
        self.pid = 0
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None
        self._send_lock = threading.Lock()

    def start(self) -> None:
        """Start the process (see the module doc for the errors)."""
        if not self.opts.cmd:
            raise InvalidArgument("exec requires at least 1 argument")
        check_runnable(self.record)
        o = self.opts
        request = {"op": "exec", "Cmd": o.cmd, "Env": o.env, "WorkingDir": o.workdir or "",
                   "User": o.user or "", "Tty": o.tty, "AttachStdin": o.interactive,
                   "Detach": o.detach, "Rows": o.rows, "Cols": o.cols}
        try:
            self._sock = control.connect(self.record.control_socket, request, timeout=None)
        except control.MonitorUnreachable:
            raise Conflict(f"container {self.record.id} is not running") from None
        self._reader = self._sock.makefile("rb")
        try:
            kind, payload = wire.receive(self._reader)
        except wire.WireClosed:
            self.close()
            raise Conflict(f"container {self.record.id} is not running") from None
        info = json.loads(payload or b"{}")
        if kind == Kind.ERROR:
            self.close()
            code, message = int(info.get("ExitCode", 125)), info.get("Message", "exec failed")
            text = f"OCI runtime exec failed: exec failed: {RUNTIME_PREFIX}{message}: unknown"
            if code == 127:
                raise CommandNotFound(text)
            if code == 126:
                raise CommandNotExecutable(text)
            raise ExecFailed(message)
        self.pid = int(info.get("Pid", 0))

    def run(self, on_output: Callable[[str, bytes], None], stdin: BinaryIO | None = None,
            on_stdin_end: Callable[[], None] | None = None) -> int:
        """Relay until the process exits; its exit code. `stdin` is read in a thread (until EOF,
        which closes the process's stdin); `on_output(stream, data)` gets "stdout"/"stderr"."""
        assert self._reader is not None
        if stdin is not None:
            threading.Thread(target=self._pump_stdin, args=(stdin, on_stdin_end), daemon=True).start()
        try:
            while True:
                try:
                    kind, payload = wire.receive(self._reader)
                except wire.WireClosed:
                    return 137  # the container ended under us
                if kind in (Kind.STDOUT, Kind.STDERR):
                    on_output("stderr" if kind == Kind.STDERR else "stdout", payload)
                elif kind == Kind.EXIT:
                    return int(json.loads(payload).get("ExitCode", 0))
        finally:
            self.close()

    def resize(self, rows: int, cols: int) -> None:
        self._send(Kind.RESIZE, wire.resize_payload(rows, cols))

    def signal(self, signo: int) -> None:
        self._send(Kind.SIGNAL, struct.pack("!I", signo))

    def close(self) -> None:
        """Drop the connection (the process keeps running; its output is discarded)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in run()
            with contextlib.suppress(OSError):
                self._sock.close()

    def _send(self, kind: Kind, payload: bytes = b"") -> None:
        if self._sock is None:
            return
        with self._send_lock, contextlib.suppress(OSError):
            wire.send(self._sock, kind, payload)

    def _pump_stdin(self, stdin: BinaryIO, on_end: Callable[[], None] | None) -> None:
        while True:
            try:
                chunk = stdin.read1(32768) if hasattr(stdin, "read1") else stdin.read(32768)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            self._send(Kind.STDIN, chunk)
        if on_end is not None:
            on_end()
        else:
            self._send(Kind.EOF)


def run_collect(settings: Settings, record: ContainerRecord, cmd: list[str]) -> tuple[int, bytes, bytes]:
    """Run `cmd` in the container without stdin; (exit code, stdout, stderr)."""
    out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
    session = ExecSession(settings, record, ExecOptions(cmd=cmd))
    session.start()
    code = session.run(lambda stream, data: out[stream].extend(data))
    return code, bytes(out["stdout"]), bytes(out["stderr"])
