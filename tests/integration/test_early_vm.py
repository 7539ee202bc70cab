"""The early VM (vm/early.py): `run` and `start` boot a VM while the CLI creates the container, and the
monitor takes it over when it is the machine the container wants; else the container gets its own
VM and the early one is killed, as it is when the CLI ends with nothing to start."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from katadocker.state.containers import read_pid_file
from tests.support.cli import Katadocker
from tests.support.leaks import early_vms

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
    finally:
        vm_kd.ok("rm", "-f", cid)


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


@contextlib.contextmanager
def silent_registry() -> Iterator[str]:
    """A "registry" on loopback that accepts connections and never answers; yields host:port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.mark.usefixtures("early_vms_ready")
def test_the_early_vm_dies_with_a_cli_killed_mid_pull(vm_kd: Katadocker) -> None:
    """While the CLI waits for a registry, its early VM boots; killing the CLI kills the VM too."""
    with silent_registry() as registry:
        cli = subprocess.Popen([sys.executable, "-m", "katadocker", "run", "--rm", f"{registry}/x", "true"],
                               env=vm_kd.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (booting := early_vms(vm_kd.root)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert booting, "no early VM while the CLI waited for the registry"
        finally:
            cli.send_signal(signal.SIGKILL)
            cli.wait()
    def left() -> list[object]:  # the VM, then its directories (removed right after it died)
        return [*early_vms(vm_kd.root), *(vm_kd.root / "tmp").glob("early-*")]

    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == []
