"""A running QEMU: start it, hot-add the container's devices and control it over QMP, wait for it.

Every wait has a timeout. Failures raise `VMError` whose detail holds the QEMU command line, QEMU's
own stderr and the last lines of the guest console, which is what explains a failed boot.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from katadocker.errors import VMError
from katadocker.vm import boot_priority
from katadocker.vm.children import wait_child
from katadocker.vm.qemu import QMPCommand, Share, VMSpec, nic_commands, qemu_command, share_commands
from katadocker.vm.virtiofsd import tail

#: QEMU runs under util-linux's setpriv (always installed), which has the kernel SIGKILL it when the
#: thread that started it ends: a monitor killed with -9 leaves no VM behind, not even an early VM
#: it had not taken over yet (vm/early.py). So VMs are started from a process's main thread.
PARENT_DEATH_SIGNAL = ("setpriv", "--pdeathsig", "KILL", "--")


class QMPClient:
    """A minimal QMP connection: greeting, capabilities negotiation, one command at a time."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(os.fspath(path))
        self.file = self.sock.makefile("rwb")
        self.command = ""  # the command last sent (for error messages)
        self._read()  # the {"QMP": ...} greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP connection closed")
        return json.loads(line)

    def execute(self, command: str, fds: list[int] | None = None, **arguments: Any) -> Any:
        """Run `command`, passing the open descriptors `fds` along with it (as ``getfd`` wants);
        return its "return" value, raise VMError on a QMP error. Events are skipped."""
        self.command = command
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.file.write(data)
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


class InheritedChild:
    """A child process this program inherited across an exec (vm/early.py): the part of
    subprocess.Popen that `VirtualMachine` uses."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)


class VirtualMachine:
    """One QEMU process for `spec`.

    QEMU's stdout/stderr go to `stderr_log` (next to the console log). QEMU runs in its own session
    so that a terminal's Ctrl-C reaches katadocker, which decides how the VM stops.
    """

    def __init__(self, spec: VMSpec) -> None:
        self.spec = spec
        self.argv = qemu_command(spec)
        self.proc: subprocess.Popen[bytes] | InheritedChild | None = None

    @property
    def stderr_log(self) -> Path:
        return self.spec.console_log.with_name(self.spec.console_log.name + ".qemu")

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
        """`spawn` QEMU and `wait_ready`."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Start QEMU (its priority raised while the guest boots: vm/boot_priority.py) and return at
        once; VMError when it cannot be started."""
        for sock in (self.spec.qmp_socket, self.spec.agent_socket):
            sock.unlink(missing_ok=True)
        for directory in {self.spec.console_log.parent, self.spec.qmp_socket.parent}:
            directory.mkdir(parents=True, exist_ok=True)
        memory = () if self.spec.memory_fd is None else (self.spec.memory_fd,)
        try:
            with self.stderr_log.open("wb") as log:
                self.proc = subprocess.Popen([*PARENT_DEATH_SIGNAL, *self.argv], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, start_new_session=True, pass_fds=memory)
        except OSError as e:
            raise self.error(f"cannot start QEMU: {e.strerror}") from None
        boot_priority.boost(self.proc.pid)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once the spawned QEMU has loaded the kernel and runs the guest (it answered QMP
        ``query-status``: QMP is served only after machine setup), with the agent socket listening.

        Raises VMError when QEMU exits or is not running within `timeout`.
        """
        assert self.proc is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while True:
            if self.spec.qmp_socket.exists() and self.spec.agent_socket.exists():
                try:
                    self.qmp("query-status", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except VMError:
                    try:  # QMP dropping us at startup means QEMU is on its way out: let it finish
                        wait_child(self.proc, 2)
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
            return wait_child(self.proc, timeout)
        except subprocess.TimeoutExpired:
            raise self.error(f"the VM did not stop within {timeout:.0f}s") from None

    def qmp(self, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
        """Run one QMP command on a fresh connection; VMError when QMP is unreachable or fails."""
        return self.qmp_commands([(command, arguments)], timeout)

    def plug_share(self, share: Share, slot: int) -> None:
        """Hot-add `share` (its virtiofsd listening) as a virtio-fs device into hotplug slot `slot`."""
        self.qmp_commands(share_commands(share, slot))

    def plug_nic(self, tap_fd: int, mac: str, slot: int) -> None:
        """Hot-add a virtio NIC with `mac` into hotplug slot `slot`, on the open TAP `tap_fd` (QEMU
        gets its own copy of the descriptor; the caller keeps and closes its one)."""
        self.qmp_commands([("getfd", {"fdname": "tap0"}), *nic_commands("tap0", mac, slot)], fds=[tap_fd])

    def qmp_commands(self, commands: list[QMPCommand], timeout: float = 10.0,
                     fds: list[int] | None = None) -> Any:
        """Run `commands` in order on one fresh QMP connection, passing `fds` with the first; the
        last one's result. VMError (with the VM's detail) when QMP is unreachable or one fails."""
        result = None
        with self.qmp_session(timeout) as qmp:
            for i, (command, arguments) in enumerate(commands):
                result = qmp.execute(command, fds=None if i else fds, **arguments)
        return result

    @contextlib.contextmanager
    def qmp_session(self, timeout: float = 10.0) -> Iterator[QMPClient]:
        """One QMP connection for as many commands as the caller runs on it, closed at the end.
        QMP unreachable, a command failing or the connection lost raise VMError with the VM's
        detail."""
        try:
            client = QMPClient(self.spec.qmp_socket, timeout)
        except (OSError, ValueError) as e:
            raise self.error(f"cannot reach QEMU's QMP socket: {e}") from None
        try:
            yield client
        except (OSError, ValueError) as e:
            raise self.error(f"QMP {client.command} failed: {e}") from None
        except VMError as e:
            raise self.error(e.message) from None
        finally:
            client.close()

    def powerdown(self) -> None:
        """Ask the guest to power off (ACPI power button); it decides how fast it does."""
        self.qmp("system_powerdown")

    def quit(self) -> None:
        """Make QEMU exit at once (the guest gets no say)."""
        with self.qmp_session() as qmp, contextlib.suppress(ConnectionError):
            qmp.execute("quit")  # QEMU may close the socket before it answers

    def kill(self, reap: bool = True) -> None:
        """SIGKILL QEMU if it is still running, and (unless not `reap`) reap it: freeing a VM's
        memory takes the kernel ~20 ms, which a caller may let pass while it does other work and
        `kill` again later to reap."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            if reap:
                wait_child(self.proc, 10)

    def stop(self, grace: float = 10.0) -> int:
        """Stop the VM for good: QMP quit, then SIGKILL if QEMU is still there after `grace`; the exit
        status. For a clean guest shutdown, ask the agent (or `powerdown`) first and `wait`."""
        if self.proc is None:
            raise VMError("the VM was never started")
        if self.proc.poll() is None:
            try:
                self.quit()
                return wait_child(self.proc, grace)
            except (VMError, subprocess.TimeoutExpired):
                self.kill()
        return wait_child(self.proc, 10)
