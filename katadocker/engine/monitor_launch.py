"""Starting a container's monitor process, ahead of time when the CLI can.

A monitor is a Python interpreter (``python -m katadocker.monitor``) that a container's start waits
for, and behind it the VM's boot (about a second under TCG). So the CLI forks one, with an early
VM, first thing for `run` and `start` (engine/monitor_prestart.py). `launch()` hands it its
arguments, waits until the monitor has its container and returns its pid. Without a pre-started
monitor `launch()` starts one through util-linux's ``setsid --fork`` (a long-lived caller with
threads must not fork itself), and hands over the same way.

A pre-started monitor that never gets its arguments (the CLI failed, or had nothing to start) reads
end-of-file when the CLI's end of the pipe closes, kills its early VM and exits.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

from katadocker.engine.monitor_prestart import MonitorPipes, monitor_argv, take_prestarted
from katadocker.errors import VMError

#: From handing over the arguments to the monitor's pid in monitor.pid.
LAUNCH_TIMEOUT_S = 60


def launch(args: list[str], pid_file: Path) -> int:
    """Start the monitor with `args` (state root, container ID, flags), the pre-started one if there
    is one; returns the monitor's pid once it is written to `pid_file`. VMError with the monitor's
    stderr when it fails to get there."""
    from katadocker.state.containers import read_pid_file

    ready, stderr = _hand_over(take_prestarted() or _start_detached(), (json.dumps(args) + "\n").encode())
    pid = read_pid_file(pid_file)
    if not ready or pid <= 0:
        raise VMError(f"failed to start the container monitor: {stderr.decode(errors='replace').strip()}")
    return pid


def _hand_over(pending: MonitorPipes, line: bytes) -> tuple[bool, bytes]:
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


def _start_detached() -> MonitorPipes:
    """A monitor (without an early VM) started by ``setsid --fork``, which leaves this process's
    tree and session at once without this process forking; this process's ends of its pipes."""
    stdin_r, stdin_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    ready_r, ready_w = os.pipe()
    try:
        subprocess.run(["setsid", "--fork", *monitor_argv(ready_w)], stdin=stdin_r,
                       stdout=subprocess.DEVNULL, stderr=stderr_w, pass_fds=(ready_w,), check=True,
                       timeout=LAUNCH_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as e:
        for fd in (stdin_w, stderr_r, ready_r):
            os.close(fd)
        raise VMError(f"cannot start the container monitor: {e}") from None
    finally:
        for fd in (stdin_r, stderr_w, ready_w):
            os.close(fd)
    return MonitorPipes(stdin_w, stderr_r, ready_r)
