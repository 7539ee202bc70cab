"""Real VM boots (TCG here): guest assets -> virtiofsd -> QEMU -> the agent runs a command in the
container root.

The guest assets are built into the suite's persistent state root
(``$KATADOCKER_TEST_CACHE/state``, the one every test state root links its assets to), so later
runs only rebuild what changed (the agent, when its source changes). Their kernel is katadocker's
own when scripts/test built it there, else Debian's cloud kernel;
`test_debian_cloud_kernel_loads_its_modules` boots Debian's either way.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from katadocker.agent.build import agent_compiler
from katadocker.agent.client import AgentClient
from katadocker.agent.protocol import ProcessSpec
from katadocker.config import Settings
from katadocker.errors import VMError
from katadocker.state.paths import StateRoot
from katadocker.vm import boot_priority
from katadocker.vm.assets import GuestAssets, ensure_assets
from katadocker.vm.initramfs import write_cpio
from katadocker.vm.kernel import (
    KERNEL_ENV,
    KERNEL_MODULES_ENV,
    built_kernel,
    cached_debian_kernel,
    fetch_debian_kernel,
)
from katadocker.vm.machine import VirtualMachine
from katadocker.vm.qemu import ROOTFS_TAG, Share, VMSpec
from katadocker.vm.virtiofsd import Virtiofsd
from tests.support import images
from tests.support.images import busybox_rootfs
from tests.support.sched import session_nice, thread_nices

pytestmark = [pytest.mark.vm, pytest.mark.slow]

BOOT_TIMEOUT = 120  # TCG on 2 shared cores: a boot takes ~3 s idle, much longer under load
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def assets_settings() -> Settings:
    root = images.CACHE / "state"
    return Settings(state=StateRoot(root), docker_config=root / "docker")


@pytest.fixture(scope="session")
def assets() -> GuestAssets:
    return ensure_assets(assets_settings())


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return busybox_rootfs(tmp_path / "rootfs")


def vm_spec(assets: GuestAssets, run: Path, hotplug: bool = False) -> VMSpec:
    return VMSpec(kernel=assets.kernel, initramfs=assets.initramfs, accel=assets.accel.name,
                  agent_socket=run / "agent.sock", console_log=run / "console.log",
                  qmp_socket=run / "qmp.sock", hotplug=hotplug, memory_mib=256)


@contextmanager
def boot(assets: GuestAssets, rootfs: Path, tmp_path: Path,
         share_after_hello: bool = False) -> Iterator[tuple[VirtualMachine, AgentClient]]:
    """A VM with `rootfs` as its container root, its agent said hello; stopped afterwards. The
    root share is hot-added right after QEMU starts (before the guest scans its PCI buses), or with
    `share_after_hello`, once the guest has booted without it."""
    run = tmp_path / "run"
    with Virtiofsd(rootfs, run / "fs0.sock", run / "virtiofsd.log") as fs:
        vm = VirtualMachine(vm_spec(assets, run, hotplug=True))
        began = time.monotonic()
        vm.start()
        try:
            if not share_after_hello:
                vm.plug_share(Share(ROOTFS_TAG, fs.socket_path), 0)
            client = AgentClient.connect(os.fspath(vm.spec.agent_socket), 10)
            try:
                client.wait_hello(BOOT_TIMEOUT)
            except VMError as e:
                raise vm.error(f"no hello from the agent: {e.message}") from e
            print(f"agent hello {time.monotonic() - began:.2f}s after QEMU started")
            if share_after_hello:
                vm.plug_share(Share(ROOTFS_TAG, fs.socket_path), 0)
            yield vm, client
            client.close()
        finally:
            vm.stop()


@pytest.fixture
def booted(assets: GuestAssets, rootfs: Path, tmp_path: Path) -> Iterator[tuple[VirtualMachine, AgentClient]]:
    with boot(assets, rootfs, tmp_path) as vm_and_client:
        yield vm_and_client


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


def test_a_share_hot_added_after_the_guest_booted_is_waited_for(assets: GuestAssets, rootfs: Path,
                                                                 tmp_path: Path) -> None:
    """A container's devices can arrive after its early VM booted (vm/early.py: the CLI was still
    pulling): the guest's PCI hotplug finds the share and the agent waits for it before mounting."""
    with boot(assets, rootfs, tmp_path, share_after_hello=True) as (_, client):
        done = client.start(ProcessSpec(args=["cat", "/etc/passwd"], env=[PATH_ENV]),
                            timeout=60).collect(timeout=60)
    assert done.exit.code == 0
    assert done.stdout == (rootfs / "etc/passwd").read_bytes()


def test_qemu_boots_at_a_raised_priority_until_settled(booted: tuple[VirtualMachine, AgentClient]) -> None:
    """vm/boot_priority.py: every QEMU thread (the vCPU's too, started after the spawn) and QEMU's
    session run at BOOT_NICE from the spawn on, and at 0 once settled (the monitor does it when the
    container's process runs)."""
    vm, _ = booted

    assert len(thread_nices(vm.pid)) > 1
    assert set(thread_nices(vm.pid)) == {boot_priority.BOOT_NICE}
    assert session_nice(vm.pid) in (boot_priority.BOOT_NICE, None)
    boot_priority.settle(vm.pid)
    assert set(thread_nices(vm.pid)) == {0}
    assert session_nice(vm.pid) in (0, None)


def test_the_agent_every_vm_boots_is_the_musl_build(assets: GuestAssets, tmp_path: Path) -> None:
    """agent/build.py: with musl-tools installed (scripts/setup does) the initramfs's /init, the
    agent these tests boot, is linked against musl: no glibc in it, a tenth of static glibc's size."""
    assert agent_compiler() == "musl-gcc"
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(assets.initramfs)], cwd=tmp_path, check=True)
    init = (tmp_path / "init").read_bytes()
    assert b"GLIBC" not in init and len(init) < 200_000


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
    vm = VirtualMachine(replace(vm_spec(assets, tmp_path), initramfs=empty))
    vm.start()
    vm.wait(BOOT_TIMEOUT)
    err = vm.error("the VM failed to boot")
    assert err.detail and "Kernel panic" in err.detail
    assert "qemu-system-x86_64" in err.detail  # the command line, for --debug


def test_bogus_kernel_fails_with_qemu_stderr(assets: GuestAssets, tmp_path: Path) -> None:
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"not a kernel" * 100)
    vm = VirtualMachine(replace(vm_spec(assets, tmp_path), kernel=bogus))
    with pytest.raises(VMError) as info:
        vm.start()
    assert "QEMU exited at startup" in info.value.message
    assert info.value.detail and "QEMU stderr" in info.value.detail and str(bogus) in info.value.detail


#: Run in the guest by the kernel tests: the kernel, the page reporting order the agent set, then the
#: loaded modules (none, and no /proc/modules, without module support).
KERNEL_PROBE = ("uname -r; cat /sys/module/page_reporting/parameters/page_reporting_order; "
                "cat /proc/modules 2>/dev/null || true")


def probe_kernel(assets: GuestAssets, rootfs: Path, tmp_path: Path) -> tuple[str, str, set[str]]:
    """Boot `assets` and run KERNEL_PROBE: (uname -r, page reporting order, loaded modules)."""
    with boot(assets, rootfs, tmp_path) as (_, client):
        done = client.start(ProcessSpec(args=["sh", "-c", KERNEL_PROBE], env=[PATH_ENV]),
                            timeout=60).collect(timeout=60)
    assert done.exit.code == 0, done.stderr
    release, order, *modules = done.stdout.decode().splitlines()
    return release, order, {line.split()[0] for line in modules}


def test_katadocker_kernel_has_everything_built_in(rootfs: Path, tmp_path: Path) -> None:
    """The kernel `system build-kernel` makes, as scripts/test installs it into the suite's assets
    (and requires it there, with KATADOCKER_TEST_BUILT_KERNEL): no modules at all, virtio-fs and the
    agent's port work, and the agent set the balloon's page reporting order."""
    settings = assets_settings()
    built = built_kernel(settings)
    if built is None:
        if os.environ.get("KATADOCKER_TEST_BUILT_KERNEL"):
            pytest.fail(f"no katadocker-built kernel in {settings.state.assets} (scripts/test installs it)")
        pytest.skip("no katadocker-built kernel in the suite's assets (scripts/test installs it)")
    assets = ensure_assets(settings)
    assert assets.kernel == built.vmlinuz
    release, order, modules = probe_kernel(assets, rootfs, tmp_path)
    assert release == built.version and release.endswith("-katadocker")
    assert order == "6"
    assert modules == set()


def test_debian_cloud_kernel_loads_its_modules(rootfs: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's cloud kernel (what katadocker uses until `system build-kernel` ran): its virtio
    drivers are modules, put into the initramfs and loaded by the agent before it says hello; the
    agent set the page reporting order after loading the balloon."""
    settings = assets_settings()
    debian = cached_debian_kernel(settings) or fetch_debian_kernel(settings)
    monkeypatch.setenv(KERNEL_ENV, str(debian.vmlinuz))
    monkeypatch.setenv(KERNEL_MODULES_ENV, str(debian.modules_dir))
    release, order, modules = probe_kernel(ensure_assets(settings), rootfs, tmp_path)
    assert release == debian.version
    assert order == "6"
    assert {"virtiofs", "virtio_console", "virtio_net", "virtio_balloon"} <= modules
