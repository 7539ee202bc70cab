"""Starting a container's monitor process, ahead of time when the CLI can.

A monitor is a Python interpreter (``python -m katadocker.monitor``) that a container's start waits
for, and behind it the VM's boot (about a second under TCG). So `prestart()`, which the CLI calls
first thing for `run` and `start` (cli/entry.py), forks right away: the fork leaves the CLI's
process tree (setsid, a second fork), starts an early VM (vm/early.py) so that the guest boots
while the CLI creates the container, and execs the monitor's interpreter, which keeps the VM as its
child, imports what it needs and waits for its arguments on stdin. `launch()` hands them over,
waits until the monitor has its container and returns its pid. Without a pre-started monitor
`launch()` starts one through util-linux's ``setsid --fork`` (a long-lived caller with threads must
not fork itself), and hands over the same way.

A pre-started monitor that never gets its arguments (the CLI failed, or had nothing to start) reads
end-of-file when the CLI's end of the pipe closes, kills its early VM and exits.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from katadocker.errors import VMError

#: The monitor's argument saying "read your arguments from stdin, one JSON list".
ARGS_FROM_STDIN = "--args-from-stdin"
#: ``--ready-fd=N``: the descriptor on which the monitor reports that it has its container.
READY_FD = "--ready-fd"
#: ``--early-vm=JSON``: the early VM the monitor inherits (vm.early.start_described).
EARLY_VM = "--early-vm"
#: From handing over the arguments to the monitor's pid in monitor.pid.
LAUNCH_TIMEOUT_S = 60


@dataclass(frozen=True)
class _MonitorPipes:
    """This process's ends of a starting monitor's stdin, stderr and readiness pipes."""

    stdin: int
    stderr: int
    ready: int


_prestarted: _MonitorPipes | None = None


def prestart(root: str | None) -> None:
    """Fork the monitor-to-be of the next `launch` now (see the module doc); its early VM comes
    from the state root `root` (None: the default one). Call it before this process has threads."""
    global _prestarted
    if _prestarted is not None:
        return
    stdin_r, stdin_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    ready_r, ready_w = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            _become_monitor(root, stdin_r, stderr_w, ready_w)
        finally:
            os._exit(1)
    for fd in (stdin_r, stderr_w, ready_w):
        os.close(fd)
    os.waitpid(first, 0)  # it only forked the monitor-to-be and exited
    _prestarted = _MonitorPipes(stdin_w, stderr_r, ready_r)


def _become_monitor(root: str | None, stdin: int, stderr: int, ready: int) -> NoReturn:
    """In the fork: leave the CLI's process tree, start the early VM, exec the monitor."""
    os.setsid()  # no signals from the CLI's terminal
    if os.fork():
        os._exit(0)  # the monitor is no session leader: it can never take a controlling terminal
    from katadocker.state.paths import RUN_ROOT, StateRoot, default_root
    from katadocker.vm.early import start_described

    state = StateRoot(Path(root).absolute() if root else default_root())
    tag = f"early-{os.getpid()}"
    early = start_described(state.assets, RUN_ROOT / tag, state.tmp / tag)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd, target in ((stdin, 0), (devnull, 1), (stderr, 2)):
        os.dup2(fd, target)
    os.set_inheritable(ready, True)
    argv = _monitor_argv(ready, early)
    os.execv(argv[0], argv)


def _monitor_argv(ready: int, early: str | None = None) -> list[str]:
    return [sys.executable, "-m", "katadocker.monitor", ARGS_FROM_STDIN, f"{READY_FD}={ready}",
            *([f"{EARLY_VM}={early}"] if early else [])]


def launch(args: list[str], pid_file: Path) -> int:
    """Start the monitor with `args` (state root, container ID, flags), the pre-started one if there
    is one; returns the monitor's pid once it is written to `pid_file`. VMError with the monitor's
    stderr when it fails to get there."""
    from katadocker.state.containers import read_pid_file

    global _prestarted
    pending, _prestarted = _prestarted, None
    ready, stderr = _hand_over(pending or _start_detached(), (json.dumps(args) + "\n").encode())
    pid = read_pid_file(pid_file)
    if not ready or pid <= 0:
        raise VMError(f"failed to start the container monitor: {stderr.decode(errors='replace').strip()}")
    return pid


def _hand_over(pending: _MonitorPipes, line: bytes) -> tuple[bool, bytes]:
    """Give the starting monitor its arguments; (whether it reported ready, its stderr)."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    try:
        os.write(pending.stdin, line)
    except BrokenPipeError:
        pass  # it died: its stderr says why
    finally:
        os.close(pending.stdin)
    ready = _read_to_end(pending.ready, deadline)
    stderr = _read_to_end(pending.stderr, deadline)
    return ready == b"1", stderr


def _read_to_end(fd: int, deadline: float) -> bytes:
    """Everything until end-of-file on `fd` (then closed); VMError at `deadline`."""
    chunks = []
    try:
        while True:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise VMError("the container monitor did not start in time")
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _start_detached() -> _MonitorPipes:
    """A monitor (without an early VM) started by ``setsid --fork``, which leaves this process's
    tree and session at once without this process forking; this process's ends of its pipes."""
    stdin_r, stdin_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    ready_r, ready_w = os.pipe()
    try:
        subprocess.run(["setsid", "--fork", *_monitor_argv(ready_w)], stdin=stdin_r,
                       stdout=subprocess.DEVNULL, stderr=stderr_w, pass_fds=(ready_w,), check=True,
                       timeout=LAUNCH_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        for fd in (stdin_w, stderr_r, ready_r):
            os.close(fd)
        raise VMError(f"cannot start the container monitor: {e}") from None
    finally:
        for fd in (stdin_r, stderr_w, ready_w):
            os.close(fd)
    return _MonitorPipes(stdin_w, stderr_r, ready_r)
