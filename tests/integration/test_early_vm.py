"""The early VM (vm/early.py): `run` and `start` boot a VM while the CLI creates the container, and the
monitor takes it over when it is the machine the container wants; else the container gets its own
VM and the early one is killed, as it is when the CLI ends with nothing to start."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from katadocker.state.containers import read_pid_file
from katadocker.state.paths import RUN_ROOT
from tests.support.cli import Katadocker
from tests.support.leaks import early_vms
from tests.support.sched import session_nice, thread_nices

pytestmark = [pytest.mark.vm, pytest.mark.slow]


def monitor_log(kd: Katadocker, cid: str) -> str:
    return (kd.root / "containers" / cid / "monitor.log").read_text()


@pytest.fixture
def early_vms_ready(vm_kd: Katadocker, busybox_image: str) -> None:
    """An early VM boots the guest assets the last container used: one container has run."""
    vm_kd.ok("run", "--rm", "--network", "none", busybox_image, "true")


@pytest.mark.usefixtures("early_vms_ready")
def test_run_takes_over_the_early_vm(vm_kd: Katadocker, busybox_image: str) -> None:
    script = "ls /sys/bus/virtio/drivers/virtiofs | grep -c virtio; ip -4 addr show eth0; sleep 600"
    cid = vm_kd.ok("run", "-d", busybox_image, "sh", "-c", script).strip()
    try:
        assert "took over the early VM" in monitor_log(vm_kd, cid)
        qemu = read_pid_file(vm_kd.root / "containers" / cid / "pids" / "qemu")
        # its console log moved into the container's directory, where QEMU keeps writing it
        assert Path(f"/proc/{qemu}/fd").is_dir()
        held = {str(p.readlink()) for p in Path(f"/proc/{qemu}/fd").iterdir() if p.is_symlink()}
        assert str(vm_kd.root / "containers" / cid / "console.log") in held
        deadline = time.monotonic() + 60
        while "inet " not in (logs := vm_kd.ok("logs", cid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert logs.splitlines()[0] == "1"  # the hot-added root share
        assert "inet 172." in logs  # the hot-added NIC, configured
        assert vm_kd.ok("exec", cid, "cat", "/etc/hostname").strip() == cid[:12]
        # booted at a raised priority (vm/boot_priority.py); the process runs: back to normal
        assert set(thread_nices(qemu)) == {0}
        assert session_nice(qemu) in (0, None)
    finally:
        vm_kd.ok("rm", "-f", cid)


@pytest.mark.usefixtures("early_vms_ready")
def test_a_container_with_mounts_takes_over_the_early_vm(vm_kd: Katadocker, busybox_image: str,
                                                         tmp_path: Path) -> None:
    """The early VM's hotplug bridge has slots for the root share, the NIC and 29 mounts: a container
    with a bind mount and a volume (a share each) gets the head start too."""
    (tmp_path / "from-host").write_text("host file\n")
    cid = vm_kd.ok("run", "-d", "-v", f"{tmp_path}:/h:ro", "-v", "/data", busybox_image, "sh", "-c",
                   "cat /h/from-host; echo written > /data/f; cat /data/f").strip()
    try:
        assert vm_kd.ok("wait", cid).strip() == "0"
        assert "took over the early VM" in monitor_log(vm_kd, cid)
        assert vm_kd.ok("logs", cid) == "host file\nwritten\n"
    finally:
        vm_kd.ok("rm", "-f", "-v", cid)


@pytest.mark.usefixtures("early_vms_ready")
def test_a_container_wanting_more_memory_gets_a_vm_of_its_own(vm_kd: Katadocker, busybox_image: str) -> None:
    cid = vm_kd.ok("run", "-d", "-m", "300m", busybox_image, "head", "-1", "/proc/meminfo").strip()
    try:
        assert vm_kd.ok("wait", cid).strip() == "0"
        assert "does not fit this container" in monitor_log(vm_kd, cid)
        total_kib = int(vm_kd.ok("logs", cid).split()[1])
        assert 300 * 1024 < total_kib < (300 + 64) * 1024  # --memory plus the guest's overhead
        assert early_vms(vm_kd.root) == []
    finally:
        vm_kd.ok("rm", "-f", cid)


def wait_for(condition, what: str, seconds: float = 30) -> object:  # noqa: ANN001
    """Poll `condition` until it returns something true; that value. AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"no {what} after {seconds:.0f} s"
        time.sleep(0.05)
    return value


@contextlib.contextmanager
def proxy(target: str | None = None, hold: float = 0.0) -> Iterator[str]:
    """A "registry" on loopback, yielding its host:port: a TCP relay to `target` (host:port) that
    holds its first connection for `hold` seconds; with no `target`, one that never answers."""
    server = socket.create_server(("127.0.0.1", 0))

    def relay(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        held = False
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                if target is None:
                    continue
                if not held:
                    time.sleep(hold)
                    held = True
                upstream = socket.create_connection(tuple(target.rsplit(":", 1)))
                for pair in ((client, upstream), (upstream, client)):
                    threading.Thread(target=relay, args=pair, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@contextlib.contextmanager
def cli_pulling_forever(kd: Katadocker) -> Iterator[int]:
    """A `run` waiting for a registry that never answers, its early VM booting meanwhile; yields
    that VM's QEMU pid and SIGKILLs the CLI at the end."""
    with proxy() as registry:
        cli = subprocess.Popen([sys.executable, "-m", "katadocker", "run", "--rm", f"{registry}/x", "true"],
                               env=kd.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield wait_for(lambda: early_vms(kd.root), "early VM while the CLI waited for the registry")[0]
        finally:
            cli.send_signal(signal.SIGKILL)
            cli.wait()


@pytest.mark.usefixtures("early_vms_ready")
def test_the_early_vm_dies_with_a_cli_killed_mid_pull(vm_kd: Katadocker) -> None:
    """Killing the CLI closes its monitor's stdin: the monitor kills the early VM and removes its
    directories."""
    with cli_pulling_forever(vm_kd):
        pass
    wait_for(lambda: not [*early_vms(vm_kd.root), *(vm_kd.root / "tmp").glob("early-*")],
             "early VM and directories gone", 20)


@pytest.mark.usefixtures("early_vms_ready")
def test_the_early_vm_dies_with_its_monitor(vm_kd: Katadocker, busybox_image: str) -> None:
    """QEMU runs under setpriv --pdeathsig: a monitor killed with -9 before it took its early VM over
    takes the VM along, and the next monitor removes the directories that VM left."""
    with cli_pulling_forever(vm_kd) as qemu:
        monitor = int(Path(f"/proc/{qemu}/stat").read_text().rpartition(")")[2].split()[1])
        os.kill(monitor, signal.SIGKILL)
        wait_for(lambda: not early_vms(vm_kd.root), "end of the early VM", 20)
    left = [RUN_ROOT / f"early-{monitor}", vm_kd.root / "tmp" / f"early-{monitor}"]
    assert any(d.exists() for d in left)  # what the killed monitor could not remove
    vm_kd.ok("run", "--rm", "--network", "none", busybox_image, "true")
    assert not any(d.exists() for d in left)


@pytest.mark.usefixtures("early_vms_ready")
def test_devices_hot_added_after_the_guest_booted(vm_kd: Katadocker, busybox_image: str) -> None:
    """A pull slower than the boot (the registry holds the first request 8 s): the early VM's guest
    is up, with no container devices, when the monitor hot-adds the root share and the NIC; the
    guest's ACPI hotplug probes them and the agent waits for them."""
    host, _, path = busybox_image.partition("/")
    with proxy(target=host, hold=8) as slow:
        cid = vm_kd.ok("run", "-d", f"{slow}/{path}", "sh", "-c", "dmesg; ip -4 addr show eth0").strip()
    try:
        assert vm_kd.ok("wait", cid).strip() == "0"
        assert "took over the early VM" in monitor_log(vm_kd, cid)
        log = vm_kd.ok("logs", cid)
        after_init = log.partition("Run /init as init process")[2]
        assert "[1af4:105a]" in after_init  # virtio-fs, found after the agent started
        assert "[1af4:1041]" in after_init  # virtio-net
        assert "inet 172." in log
    finally:
        vm_kd.ok("rm", "-f", cid)
