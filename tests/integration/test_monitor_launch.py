"""The monitor interpreter that `run` and `start` pre-start (engine/monitor_prestart.py), and the early
VM it starts (vm/early.py), never outlive a CLI that had nothing to hand it: a failed `run`, a
`start` of a missing container, `run --help`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from katadocker.engine.monitor_prestart import ARGS_FROM_STDIN
from katadocker.state.containers import read_pid_file
from tests.support.cli import Katadocker
from tests.support.leaks import early_vms


def waiting_monitors(root: Path) -> list[int]:
    """Pids of pre-started monitors (still waiting for their arguments) of the state root `root`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if ARGS_FROM_STDIN.encode() in argv and f"KATADOCKER_ROOT={root}".encode() in environ:
            out.append(int(entry.name))
    return out


def gone_within(root: Path, seconds: float) -> list[int]:
    """The pre-started monitors and early VMs of `root` still there after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := waiting_monitors(root) + early_vms(root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("argv", [
    ("run", "--rm", "127.0.0.1:1/no/such:image", "true"),  # the pull fails: nothing to start
    ("start", "no-such-container"),
    ("run", "--help"),
    ("run", "--no-such-flag", "busybox"),
])
def test_a_cli_that_starts_nothing_leaves_no_monitor(kd: Katadocker, argv: tuple[str, ...]) -> None:
    result = kd(*argv, timeout=120)
    assert result.rc != 0 or argv[-1] == "--help"
    assert gone_within(kd.root, 10) == []


@pytest.mark.vm
def test_a_running_containers_monitor_is_named_after_it(vm_kd: Katadocker, busybox_image: str) -> None:
    """Its command line does not name the container (the arguments came on stdin), its name does:
    ``kd-<short id>`` in ps -o comm, top and pstree."""
    cid = vm_kd.ok("run", "-d", "--network", "none", busybox_image, "sleep", "600").strip()
    try:
        monitor = read_pid_file(vm_kd.root / "containers" / cid / "monitor.pid")
        assert Path(f"/proc/{monitor}/comm").read_text().strip() == f"kd-{cid[:12]}"
    finally:
        vm_kd.ok("rm", "-f", cid)
