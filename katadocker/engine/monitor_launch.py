"""Starting a container's monitor process, optionally ahead of time.

A monitor is a new Python interpreter (``python -m katadocker.monitor``). Its start-up and imports
take ~0.1-0.2 s, and they lie on the path of every `run` before QEMU can start. `prestart()` starts
that interpreter at once, with nothing to monitor yet: it imports what a monitor needs and waits
for its arguments on stdin while the CLI goes on creating the container. `launch()` hands the
pre-started interpreter its container (or starts a new one with its arguments when none is
waiting), waits until it has daemonized and returns the daemon's pid.

A pre-started monitor that never gets its arguments (the CLI failed, or had nothing to start) reads
end-of-file when the CLI's end closes the pipe, and exits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from katadocker.errors import VMError

#: The monitor's argument saying "read your arguments from stdin, one JSON list".
ARGS_FROM_STDIN = "--args-from-stdin"
#: From handing over the arguments to the daemon's pid in monitor.pid: daemonizing only.
LAUNCH_TIMEOUT_S = 60

_prestarted: subprocess.Popen[bytes] | None = None


def _monitor_process(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "katadocker.monitor", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def prestart() -> None:
    """Start a monitor interpreter now, for the next `launch` of this process to use."""
    global _prestarted
    if _prestarted is None:
        _prestarted = _monitor_process([ARGS_FROM_STDIN])


def launch(args: list[str], pid_file: Path) -> int:
    """Start the monitor with `args` (state root, container ID, flags), the pre-started one if there
    is one; returns the daemon's pid once it is written to `pid_file`. VMError with the monitor's
    stderr when it fails to get there."""
    from katadocker.state.containers import read_pid_file

    global _prestarted
    proc, _prestarted = _prestarted, None
    if proc is None or proc.poll() is not None:
        proc = _monitor_process([ARGS_FROM_STDIN])
    try:
        _, stderr = proc.communicate((json.dumps(args) + "\n").encode(), timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise VMError("the container monitor did not start in time") from None
    pid = read_pid_file(pid_file)
    if proc.returncode != 0 or pid <= 0:
        raise VMError(f"failed to start the container monitor: {stderr.decode(errors='replace').strip()}")
    return pid
