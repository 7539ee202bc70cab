"""``python -m katadocker.monitor --args-from-stdin --ready-fd=N [--early-vm=DESCRIPTION]``, then one
JSON list ``[<state-root>, <id>, ["--attached"], ["--assets=…"]]`` on stdin: a container's monitor.

engine/monitor_prestart.py and engine/monitor_launch.py start it already detached from the CLI's
process tree and session, ahead of time when they can (with the early VM it inherited,
vm/early.py), and close its stdin without a line when the CLI has nothing to start. It imports
what the monitor needs, reads its container, tells the CLI it is ready on descriptor N (stdio to
/dev/null then, diagnostics to ``<container>/monitor.log``) and runs `core.Monitor`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from katadocker.config import load_settings
from katadocker.engine.monitor_prestart import ARGS_FROM_STDIN, EARLY_VM, READY_FD


def report_ready(ready_fd: int) -> None:
    """Cut the last ties to the CLI: stdio to /dev/null, then tell it the monitor is ready."""
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.write(ready_fd, b"1")
    os.close(ready_fd)


def name_process(name: str) -> None:
    """Set this process's name (``/proc/self/comm``: what ``ps -o comm``, top and pstree show; at most
    15 bytes), before any thread starts so that its threads carry it too. The command line of a
    monitor does not name its container: the arguments came on stdin."""
    import ctypes

    PR_SET_NAME = 15  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _preload() -> None:
    """Import what `core.Monitor` needs while waiting for the arguments (see engine/monitor_prestart.py)."""
    import katadocker.agent.client  # noqa: F401
    import katadocker.engine.networking  # noqa: F401
    import katadocker.image.store  # noqa: F401
    import katadocker.monitor.core  # noqa: F401
    import katadocker.network.netns  # noqa: F401
    import katadocker.network.networks  # noqa: F401
    import katadocker.vm.machine  # noqa: F401
    import katadocker.vm.virtiofsd  # noqa: F401


def read_container() -> tuple[Any, Any, Any, list[str]]:
    """Wait for the arguments on stdin (importing what the monitor needs meanwhile), load the
    container and write monitor.pid; (settings, store, record, the flags after the container ID).
    Exits 0 at end-of-file: the CLI ended with nothing to start."""
    _preload()
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    args = json.loads(line)
    settings = load_settings(root=args[0])
    from katadocker.state.containers import ContainerStore, write_pid_file

    store = ContainerStore(settings.state)
    record = store.load(args[1])
    write_pid_file(record.dir / "monitor.pid", os.getpid())
    return settings, store, record, args[2:]


def run_monitor(settings: Any, store: Any, record: Any, flags: list[str], early: Any, no_early: str) -> None:
    """Run the container's `core.Monitor` to its end, logging to its monitor.log."""
    import logging
    import shutil

    from katadocker.monitor.core import Monitor, log

    name_process(f"kd-{record.short_id}")
    logging.basicConfig(filename=record.monitor_log, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(threadName)s: %(message)s")
    if no_early:
        log.info("%s", no_early)
    assets = next((json.loads(a.partition("=")[2]) for a in flags if a.startswith("--assets=")), None)
    monitor = Monitor(settings, store, record, "--attached" in flags, assets, early)
    try:
        monitor.run()
    except Exception:  # noqa: BLE001 - last resort: leave a trace, the next CLI command reconciles
        log.exception("monitor failed")
    finally:
        if monitor.early is not None:  # never taken over
            monitor.early.discard()
        shutil.rmtree(record.run_dir, ignore_errors=True)


def main(argv: list[str]) -> None:
    options = dict(a.partition("=")[::2] for a in argv[1:])
    if argv[:1] != [ARGS_FROM_STDIN] or READY_FD not in options or not set(options) <= {READY_FD, EARLY_VM}:
        sys.stderr.write(f"usage: python -m katadocker.monitor {ARGS_FROM_STDIN} {READY_FD}=N "
                         f"[{EARLY_VM}=DESCRIPTION], then on stdin one JSON list: STATE_ROOT CONTAINER_ID "
                         "[--attached] [--assets=JSON]\n")
        sys.exit(2)
    ready = int(options[READY_FD])
    early, no_early = None, ""
    if EARLY_VM in options:
        from katadocker.vm.early import EarlyVM, remove_orphans

        early, no_early = EarlyVM.resume(options[EARLY_VM])
        if early is not None:
            remove_orphans(early.run_dir.parent, early.log_dir.parent)
    try:
        settings, store, record, flags = read_container()
    except BaseException:
        if early is not None:
            early.discard()
        raise
    report_ready(ready)
    run_monitor(settings, store, record, flags, early, no_early)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
