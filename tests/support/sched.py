"""Scheduling state of a process, as vm/boot_priority.py sets it: its threads' nice values and its
session's (autogroup's)."""

from __future__ import annotations

import os
from pathlib import Path


def thread_nices(pid: int) -> list[int]:
    """The nice value of each thread of process `pid`."""
    return [os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()]


def session_nice(pid: int) -> int | None:
    """The nice value of `pid`'s autogroup ("/autogroup-N nice K"). None where no autogroup of its
    own applies: a kernel without autogroups, or a process still in the boot session's root group,
    whose file reads empty (as a CI job started by a service manager without setsid may be)."""
    path = Path(f"/proc/{pid}/autogroup")
    fields = path.read_text().split() if path.exists() else []
    return int(fields[-1]) if fields else None
