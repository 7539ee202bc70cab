"""Forking a container's monitor-to-be, and its early VM, before the CLI has imported anything.

`prestart`, which the CLI calls first thing for `run` and `start` (cli/entry.py), forks right away:
the fork leaves the CLI's process tree (setsid, a second fork), starts an early VM (vm/early.py) so
that the guest boots while the CLI creates the container, and execs the monitor's interpreter
(``python -m katadocker.monitor``), which keeps the VM as its child, imports what it needs and
waits for its arguments on stdin. engine/monitor_launch.py hands them over (`take_prestarted`).

This module imports nothing but `os` and `sys` at its top, and the fork only state/layout.py and
vm/early_spawn.py (no pathlib even): all of it lies between the CLI's start and QEMU's.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

#: The monitor's argument saying "read your arguments from stdin, one JSON list".
ARGS_FROM_STDIN = "--args-from-stdin"
#: ``--ready-fd=N``: the descriptor on which the monitor reports that it has its container.
READY_FD = "--ready-fd"
#: ``--early-vm=DESCRIPTION``: the early VM the monitor inherits (vm/early_spawn.py `spawn`'s
#: description, as a Python literal).
EARLY_VM = "--early-vm"


class MonitorPipes:
    """This process's ends of a starting monitor's stdin, stderr and readiness pipes."""

    __slots__ = ("stdin", "stderr", "ready")

    def __init__(self, stdin: int, stderr: int, ready: int) -> None:
        self.stdin = stdin
        self.stderr = stderr
        self.ready = ready


_prestarted: MonitorPipes | None = None


def prestart(root: str | None) -> None:
    """Fork the monitor-to-be of the next `take_prestarted` now (see the module doc); its early VM
    comes from the state root `root` (None: the default one). Call it before this process has
    threads."""
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
    _prestarted = MonitorPipes(stdin_w, stderr_r, ready_r)


def take_prestarted() -> MonitorPipes | None:
    """The pre-started monitor's pipes (once; None when there is none)."""
    global _prestarted
    pending, _prestarted = _prestarted, None
    return pending


def monitor_argv(ready: int, early: str | None = None) -> list[str]:
    """The monitor's command line: its readiness descriptor `ready`, the early VM it inherits."""
    return [sys.executable, "-m", "katadocker.monitor", ARGS_FROM_STDIN, f"{READY_FD}={ready}",
            *([f"{EARLY_VM}={early}"] if early else [])]


def _become_monitor(root: str | None, stdin: int, stderr: int, ready: int) -> NoReturn:
    """In the fork: leave the CLI's process tree, start the early VM, exec the monitor."""
    os.setsid()  # no signals from the CLI's terminal
    if os.fork():
        os._exit(0)  # the monitor is no session leader: it can never take a controlling terminal
    from katadocker.state import layout
    from katadocker.vm.early_spawn import DIR_PREFIX, RECIPE, spawn

    state = layout.root_dir(root)
    name = f"{DIR_PREFIX}{os.getpid()}"
    early = spawn(os.path.join(state, layout.ASSETS, RECIPE), os.path.join(layout.RUN_ROOT, name),
                  os.path.join(state, layout.TMP, name))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd, target in ((stdin, 0), (devnull, 1), (stderr, 2)):
        os.dup2(fd, target)
    os.set_inheritable(ready, True)
    argv = monitor_argv(ready, repr(early))
    os.execv(argv[0], argv)
