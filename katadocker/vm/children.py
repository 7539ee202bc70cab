"""Waiting for a helper process (QEMU, virtiofsd) to exit, woken by the kernel instead of polling.

`subprocess.Popen.wait(timeout)` sleeps between polls, doubling the sleep up to 50 ms, so a helper
that takes a few ms to die is noticed up to twice as late; between a container's exit and its exit
file (and an ``--rm`` run's return) that was ~5-10 ms per wait. A pidfd becomes readable the moment
the process exits.
"""

from __future__ import annotations

import os
import select
import subprocess
from typing import Protocol


class Child(Protocol):
    """What a `subprocess.Popen` or vm/machine.py's `InheritedChild` offers."""

    pid: int
    args: list[str]

    def poll(self) -> int | None: ...


def wait_exited(pid: int, timeout: float | None) -> bool:
    """Wait until process `pid` has exited (a zombie has) or `timeout` passed; whether it has. A
    process that is gone altogether counts as exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def wait_child(proc: Child, timeout: float | None) -> int:
    """Reap the child `proc` once it exits; its exit status. TimeoutExpired after `timeout`."""
    code = proc.poll()
    while code is None:
        if not wait_exited(proc.pid, timeout):
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
        code = proc.poll()
    return code
