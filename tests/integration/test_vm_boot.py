"""Real VM boots (TCG here): guest assets -> virtiofsd -> QEMU -> the agent runs a command in the
container root.

The guest assets (with the Debian kernel, downloaded once) are built into a persistent state root:
``KATADOCKER_TEST_ASSETS`` or /var/cache/katadocker-test/state, so later runs only rebuild what
changed (the agent, when its source changes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from katadocker.agent.client import AgentClient
from katadocker.agent.protocol import ProcessSpec
from katadocker.config import Settings
from katadocker.errors import VMError
from katadocker.state.paths import StateRoot
from katadocker.vm.assets import GuestAssets, ensure_assets
from katadocker.vm.initramfs import write_cpio
from katadocker.vm.machine import VirtualMachine
from katadocker.vm.qemu import ROOTFS_TAG, Share, VMSpec
from katadocker.vm.virtiofsd import Virtiofsd
from tests.support.images import busybox_rootfs

pytestmark = [pytest.mark.vm, pytest.mark.slow]

BOOT_TIMEOUT = 120  # TCG on 2 shared cores: a boot takes ~3 s idle, much longer under load
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def assets() -> GuestAssets:
    root = Path(os.environ.get("KATADOCKER_TEST_ASSETS", "/var/cache/katadocker-test/state"))
    return ensure_assets(Settings(state=StateRoot(root), docker_config=root / "docker"))


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return busybox_rootfs(tmp_path / "rootfs")


def vm_spec(assets: GuestAssets, run: Path, shares: tuple[Share, ...]) -> VMSpec:
    return VMSpec(kernel=assets.kernel, initramfs=assets.initramfs, accel=assets.accel.name,
                  agent_socket=run / "agent.sock", console_log=run / "console.log",
                  qmp_socket=run / "qmp.sock", shares=shares, memory_mib=256)


@pytest.fixture
def booted(assets: GuestAssets, rootfs: Path, tmp_path: Path) -> Iterator[tuple[VirtualMachine, AgentClient]]:
    """A VM with `rootfs` as its container root, its agent said hello."""
    run = tmp_path / "run"
    with Virtiofsd(rootfs, run / "fs0.sock", run / "virtiofsd.log") as fs:
        vm = VirtualMachine(vm_spec(assets, run, (Share(ROOTFS_TAG, fs.socket_path),)))
        began = time.monotonic()
        vm.start()
        try:
            client = AgentClient.connect(os.fspath(vm.spec.agent_socket), 10)
            try:
                client.wait_hello(BOOT_TIMEOUT)
            except VMError as e:
                raise vm.error(f"no hello from the agent: {e.message}") from e
            print(f"agent hello {time.monotonic() - began:.2f}s after QEMU started")
            yield vm, client
            client.close()
        finally:
            vm.stop()


def test_echo_hello_in_the_container_root(booted: tuple[VirtualMachine, AgentClient], rootfs: Path) -> None:
    vm, client = booted
    proc = client.start(ProcessSpec(args=["sh", "-c", "echo hello; echo from-guest > /tmp/written"],
                                    env=[PATH_ENV]), timeout=60)
    done = proc.collect(timeout=60)
    assert done.stdout == b"hello\n"
    assert done.exit.code == 0
    assert (rootfs / "tmp/written").read_text() == "from-guest\n"  # virtio-fs writes land on the host
    client.shutdown()
    assert vm.wait(60) == 0  # the agent powered the VM off


def test_qmp_quit_ends_qemu(booted: tuple[VirtualMachine, AgentClient]) -> None:
    vm, _ = booted
    assert vm.qmp("query-status")["status"] == "running"
    vm.quit()
    vm.wait(30)


def test_kernel_panic_reports_the_console_tail(assets: GuestAssets, tmp_path: Path) -> None:
    """An initramfs without /init panics the kernel; QEMU ends (panic=-1, -no-reboot) and the
    error carries the guest console's last lines."""
    empty = tmp_path / "empty.cpio"
    with empty.open("wb") as f:
        write_cpio(f, [])
    vm = VirtualMachine(replace(vm_spec(assets, tmp_path, ()), initramfs=empty))
    vm.start()
    vm.wait(BOOT_TIMEOUT)
    err = vm.error("the VM failed to boot")
    assert err.detail and "Kernel panic" in err.detail
    assert "qemu-system-x86_64" in err.detail  # the command line, for --debug


def test_bogus_kernel_fails_with_qemu_stderr(assets: GuestAssets, tmp_path: Path) -> None:
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"not a kernel" * 100)
    vm = VirtualMachine(replace(vm_spec(assets, tmp_path, ()), kernel=bogus))
    with pytest.raises(VMError) as info:
        vm.start()
    assert "QEMU exited at startup" in info.value.message
    assert info.value.detail and "QEMU stderr" in info.value.detail and str(bogus) in info.value.detail
