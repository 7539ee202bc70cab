"""A running QEMU: start it (optionally inside a network namespace), control it over QMP, wait for it.

Every wait has a timeout. Failures raise `VMError` whose detail holds the QEMU command line, QEMU's
own stderr and the last lines of the guest console, which is what explains a failed boot.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from katadocker.errors import VMError
from katadocker.vm.qemu import VMSpec, qemu_command
from katadocker.vm.virtiofsd import tail

#: nsenter runs QEMU in a named network namespace (``ip netns add`` makes ``/run/netns/<name>``).
NETNS_DIR = Path("/run/netns")


class QMPClient:
    """A minimal QMP connection: greeting, capabilities negotiation, one command at a time."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.file = self.sock.makefile("rwb")
        self._read()  # the {"QMP": ...} greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP connection closed")
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run `command`; return its "return" value, raise VMError on a QMP error. Events are skipped."""
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise VMError(f"QMP {command} failed: {reply['error'].get('desc', reply['error'])}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class VirtualMachine:
    """One QEMU process for `spec`; `netns` names a network namespace to run it in.

    QEMU's stdout/stderr go to `stderr_log` (next to the console log unless given). QEMU runs in its
    own session so that a terminal's Ctrl-C reaches katadocker, which decides how the VM stops.
    """

    def __init__(self, spec: VMSpec, *, netns: str | None = None, stderr_log: Path | None = None) -> None:
        self.spec = spec
        self.netns = netns
        self.stderr_log = stderr_log or spec.console_log.with_name(spec.console_log.name + ".qemu")
        self.argv = self._argv()
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self) -> list[str]:
        argv = qemu_command(self.spec)
        if self.netns is None:
            return argv
        # nsenter changes only the network namespace and then execs QEMU (same pid), unlike
        # `ip netns exec`, which also makes a mount namespace to remount /sys
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", "--", *argv]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def error(self, message: str) -> VMError:
        """A VMError for `message`; its detail holds the command line, QEMU's stderr, the console tail."""
        return VMError(
            message,
            detail=f"QEMU command: {shlex.join(self.argv)}\n"
            f"QEMU stderr:\n{tail(self.stderr_log, 10)}\n"
            f"guest console (last lines):\n{tail(self.spec.console_log, 30)}",
        )

    def start(self, timeout: float = 30.0) -> None:
        """Start QEMU; returns once QEMU has loaded the kernel and runs the guest (it answered QMP
        ``query-status``: QMP is served only after machine setup), with the agent socket listening.

        Raises VMError when QEMU cannot be started, exits, or is not running within `timeout`.
        """
        for sock in (self.spec.qmp_socket, self.spec.agent_socket):
            sock.unlink(missing_ok=True)
        self.spec.console_log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.stderr_log.open("wb") as log:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True)
        except OSError as e:
            raise self.error(f"cannot start QEMU: {e.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            if self.spec.qmp_socket.exists() and self.spec.agent_socket.exists():
                try:
                    self.qmp("query-status", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except VMError:
                    try:  # QMP dropping us at startup means QEMU is on its way out: let it finish
                        self.proc.wait(2)
                    except subprocess.TimeoutExpired:
                        self.kill()
                        raise
            if self.proc.poll() is not None:
                last = tail(self.stderr_log, 1).strip()
                raise self.error(f"QEMU exited at startup with status {self.proc.returncode}"
                                 + (f": {last}" if last else ""))
            if time.monotonic() > deadline:
                self.kill()
                raise self.error(f"QEMU did not start within {timeout:.0f}s")
            time.sleep(0.01)

    def wait(self, timeout: float) -> int:
        """Wait for QEMU to exit; its exit status. VMError (QEMU left running) after `timeout`."""
        if self.proc is None:
            raise VMError("the VM was never started")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.error(f"the VM did not stop within {timeout:.0f}s") from None

    def qmp(self, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
        """Run one QMP command on a fresh connection; VMError when QMP is unreachable or fails."""
        try:
            client = QMPClient(self.spec.qmp_socket, timeout)
        except (OSError, ValueError) as e:
            raise self.error(f"cannot reach QEMU's QMP socket: {e}") from None
        try:
            return client.execute(command, **arguments)
        except (OSError, ValueError) as e:
            if command == "quit" and isinstance(e, ConnectionError):
                return None  # QEMU may close the socket before answering quit
            raise self.error(f"QMP {command} failed: {e}") from None
        finally:
            client.close()

    def powerdown(self) -> None:
        """Ask the guest to power off (ACPI power button); it decides how fast it does."""
        self.qmp("system_powerdown")

    def quit(self) -> None:
        """Make QEMU exit at once (the guest gets no say)."""
        self.qmp("quit")

    def kill(self) -> None:
        """SIGKILL QEMU if it is still running, and reap it."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace: float = 10.0) -> int:
        """Stop the VM for good: QMP quit, then SIGKILL if QEMU is still there after `grace`; the exit
        status. For a clean guest shutdown, ask the agent (or `powerdown`) first and `wait`."""
        if self.proc is None:
            raise VMError("the VM was never started")
        if self.proc.poll() is None:
            try:
                self.quit()
                return self.proc.wait(grace)
            except (VMError, subprocess.TimeoutExpired):
                self.kill()
        return self.proc.wait(10)
