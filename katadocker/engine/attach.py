"""Attaching a client to a running container: its output (followed in the json-file log), its stdin
(forwarded through the monitor), signals (sig-proxy), pty resizes, detaching, and its exit code.

Output comes from the log, not from the monitor, so nothing written before the client attached is
lost and stdout and stderr stay apart; the monitor answers ``wait`` only after the log holds all of
the process's output, so draining the log after the answer yields every byte.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO

from katadocker.config import Settings
from katadocker.engine import control, logs
from katadocker.errors import KatadockerError
from katadocker.state.containers import ContainerRecord, ContainerStore, reconcile


class AttachSession:
    """One client attached to `record` from log offset `offset` (0 for a fresh run)."""

    def __init__(self, settings: Settings, record: ContainerRecord, offset: int = 0) -> None:
        self.settings = settings
        self.record = record
        self.offset = offset
        self._done = threading.Event()
        self._detached = False

    def send_signal(self, signo: int) -> None:
        """sig-proxy: deliver `signo` to the container's process (ignored once it has exited)."""
        with contextlib.suppress(control.MonitorUnreachable):
            control.kill(self.record.control_socket, signo)

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the container's pty (a ``-t`` container; ignored once it has exited)."""
        with contextlib.suppress(control.MonitorUnreachable, OSError):
            control.request(self.record.control_socket, {"op": "resize", "Rows": rows, "Cols": cols})

    def detach(self) -> None:
        """Stop following (docker's detach keys): `run` returns 0 soon, the container runs on."""
        self._detached = True
        self._done.set()

    def run(self, on_output: Callable[[str, bytes], None], stdin: BinaryIO | None = None) -> int:
        """Stream output to `on_output(stream, data)` and forward `stdin` until the container
        exits; return its exit code (after all its output was delivered)."""
        log = logs.open_log(self.record.log_path, create=True)  # before the exit code: see its doc
        if stdin is not None:
            threading.Thread(target=self._pump_stdin, args=(stdin,), daemon=True).start()
        result: dict[str, int] = {}
        waiter = threading.Thread(target=self._wait, args=(result,), daemon=True)
        waiter.start()
        if log is not None:
            with log:
                for rec in logs.follow_records(log, self.offset, logs.LogOptions(), self._done.is_set,
                                               wake=self._done):
                    on_output(rec.stream, rec.data)
        if self._detached:
            return 0
        waiter.join()
        return result.get("code", 0)

    def _wait(self, result: dict[str, int]) -> None:
        try:
            with control.connect(self.record.control_socket, {"op": "wait"}, timeout=None) as s:
                reply = control.read_reply(s)
        except control.MonitorUnreachable:
            reply = None
        if reply is not None:
            result["code"] = int(reply.get("ExitCode", 0))
        else:  # the monitor vanished: what the reconciled record says
            store = ContainerStore(self.settings.state)
            try:
                rec = reconcile(store, store.load(self.record.id))
                result["code"] = int(rec.state.get("ExitCode", 0))
            except KatadockerError:  # removed meanwhile: nothing better than 137
                result["code"] = 137
        self._done.set()

    def _pump_stdin(self, stdin: BinaryIO) -> None:
        try:
            with control.connect(self.record.control_socket, {"op": "stdin"}, timeout=None) as s:
                while True:
                    chunk = stdin.read1(65536) if hasattr(stdin, "read1") else stdin.read(65536)
                    if not chunk:
                        break
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
                with contextlib.suppress(OSError):
                    s.recv(1)  # hold the connection until the monitor has closed the process's stdin
        except (control.MonitorUnreachable, OSError):
            return
