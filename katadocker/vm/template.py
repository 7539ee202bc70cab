"""Template VMs: the guest booted once and saved, then restored for each container instead of booted.

Under TCG a guest's boot is a second or more of emulated kernel work, the same for every container of
the default machine: the container's own devices are hot-added after it (vm/qemu.py), so the booted
machine with its agent waiting is one state every such container passes through. `build` boots that
machine once, waits until the agent says it waits for a host (it finds none connected), stops it and
saves it: QEMU's device and CPU state as a migration stream (``state``) and guest RAM as a sparse
file of the pages the boot touched (``ram``, ~40 MiB of 512). `restore` starts a VM from them in
well under a tenth of the boot: QEMU waits for its state (``-incoming defer``), the template's RAM is
copied into the VM's own memfd, the state is loaded and the VM continues where the template stopped.
The agent then says HELLO to the host that connects, and START brings it the host's clock and fresh
randomness (agent/protocol.py `ProcessSpec.clock_ns`, `seed`: a clone wakes up with the template's).

Guest RAM is a memfd of the VM's own, never shared between VMs: virtiofsd maps guest memory, which a
copy-on-write mapping of a common file would not let it see. QEMU opens it by ``/proc/self/fd/N``
(`VMSpec.memory_fd`) and leaves it out of the migration stream (the ``x-ignore-shared`` capability,
set on both sides over QMP: QEMU 7.2 has no command-line switch for it).

What a clone shares with its template, beside RAM contents: the kernel's boot-time secrets (TCP
sequence number and syncookie keys, hash seeds) are the same in every VM restored from one template;
the random pool is reseeded by START.

Templates live in the assets dir as ``template-<key>/`` (key: the machine's command line and the
files it boots: `template_path`); `ensure_template` builds the current one (vm/assets.py removes
superseded ones once unused for an hour, as other assets).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from katadocker.agent.protocol import WAITING_FOR_HOST
from katadocker.errors import VMError
from katadocker.vm.early_spawn import TEMPLATE_RAM
from katadocker.vm.machine import VirtualMachine
from katadocker.vm.qemu import VMSpec, qemu_command
from katadocker.vm.virtiofsd import tail

#: Bump when what a template holds changes in a way its key does not show.
TEMPLATE_FORMAT = 1
#: Directory name prefix of a template in the assets dir.
PREFIX = "template-"
#: A template's files: guest RAM (sparse, the full RAM size) and QEMU's migration stream.
RAM, STATE = TEMPLATE_RAM, "state"
#: The console line of an agent that booted and waits for a host (agent.c, protocol.h).
AGENT_WAITING = f"katadocker-agent: {WAITING_FOR_HOST}"
#: How long `build` waits for the template's guest to boot.
BUILD_TIMEOUT = float(os.environ.get("KATADOCKER_BOOT_TIMEOUT", "240"))
#: How long `restore` waits for QEMU and for the state to load.
RESTORE_TIMEOUT = 60.0
#: How long a template that could not be built is not tried again (seconds).
RETRY_FAILED_AFTER = 3600
#: QMP capability that leaves shared guest RAM (the memfd) out of the migration stream.
IGNORE_SHARED = [{"capability": "x-ignore-shared", "state": True}]


def template_path(assets_dir: Path, spec: VMSpec) -> Path:
    """Where the template of the machine `spec` (restored: `memory_fd`, `incoming`) lives: keyed by
    QEMU's command line (which names the initramfs by its content's key, vm/assets.py) and the
    identity (path, size, mtime) of QEMU, the kernel and the firmware it loads."""
    argv = qemu_command(spec)
    h = hashlib.sha256(f"{TEMPLATE_FORMAT}\0".encode())
    for arg in argv:
        h.update(arg.encode() + b"\0")
    for path in (argv[0], spec.kernel, spec.firmware):
        if path is not None:
            st = os.stat(path)
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return assets_dir / f"{PREFIX}{h.hexdigest()[:16]}"


def ensure_template(template: Path, spec: VMSpec, progress: Callable[[str], None] | None) -> bool:
    """Whether the template `template` of the machine `spec` is there, built now when missing. When
    it cannot be built, why is kept in ``<template>.failed`` and said through `progress`, and
    containers boot instead (slower) until a try after RETRY_FAILED_AFTER. Call it under the assets
    lock."""
    failed = _failure_file(template)
    if not (template / STATE).is_file():
        with contextlib.suppress(FileNotFoundError):
            if time.time() - failed.stat().st_mtime < RETRY_FAILED_AFTER:
                return False
        if progress:
            progress("Booting the guest once to save it as a template VM (containers then start from it)")
        try:
            build(spec, template)
        except (VMError, OSError) as e:
            detail = getattr(e, "detail", None)  # a VMError's: QEMU's stderr, the guest console
            failed.write_text(f"{e}\n" + (f"\n{detail}\n" if detail else ""))
            if progress:
                progress(f"warning: no template VM, containers will boot instead: {e}")
            return False
    os.utime(template)
    return True


def failure(template: Path) -> str:
    """Why the template `template` could not be built (the first line `ensure_template` kept), or ""."""
    try:
        return _failure_file(template).read_text().partition("\n")[0]
    except FileNotFoundError:
        return ""


def _failure_file(template: Path) -> Path:
    return template.with_name(template.name + ".failed")


def build(spec: VMSpec, template: Path) -> None:
    """Boot the machine `spec` (into a memfd of this process's: `memory_fd` and `incoming` are
    replaced, and its socket and log paths by a scratch dir's) until its agent waits for a host, and
    save it as `template`. VMError (with the console's last lines) when the guest does not get there."""
    scratch = Path(tempfile.mkdtemp(prefix="kd-template-"))  # short: unix socket paths
    partial = template.with_name(f".{template.name}.{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    memfd = os.memfd_create("katadocker-template-ram")
    vm: VirtualMachine | None = None
    try:
        os.ftruncate(memfd, spec.memory_mib << 20)
        vm = VirtualMachine(replace(spec, memory_fd=memfd, incoming=False,
                                    agent_socket=scratch / "agent.sock", qmp_socket=scratch / "qmp.sock",
                                    console_log=scratch / "console.log"))
        vm.start()
        _wait_for_agent(vm, BUILD_TIMEOUT)
        with open(os.open(partial / STATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as state:
            vm.qmp_commands([("getfd", {"fdname": "state"}), ("stop", {}),
                             ("migrate-set-capabilities", {"capabilities": IGNORE_SHARED})],
                            fds=[state.fileno()])
            vm.qmp("migrate", uri="fd:state")
            _wait_for_migration(vm, "saving the template's state: migration", BUILD_TIMEOUT)
        ram = os.open(partial / RAM, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(ram, spec.memory_mib << 20)
            copy_extents(memfd, ram)
        finally:
            os.close(ram)
        partial.rename(template)
    finally:
        os.close(memfd)
        if vm is not None:
            vm.kill()
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_for_agent(vm: VirtualMachine, timeout: float) -> None:
    """Return once the guest console says the agent waits for a host; VMError if QEMU ends first."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if AGENT_WAITING.encode() in vm.spec.console_log.read_bytes():
                return
        if vm.returncode is not None:
            raise vm.error(f"the template VM ended while booting (QEMU status {vm.returncode})")
        if time.monotonic() > deadline:
            raise vm.error(f"the template VM's agent did not come up within {timeout:.0f}s")
        time.sleep(0.02)


def _wait_for_migration(vm: VirtualMachine, failure: str, timeout: float) -> None:
    """Return once QEMU's migration (either way) has completed, polled on one QMP connection;
    VMError (`failure`: ...) when it failed or hangs."""
    deadline = time.monotonic() + timeout
    with vm.qmp_session(timeout) as qmp:
        while True:
            info = qmp.execute("query-migrate")
            status = info.get("status")
            if status == "completed":
                return
            if status in ("failed", "cancelled") or time.monotonic() > deadline:
                raise vm.error(f"{failure} {status}: {info.get('error-desc', '')}".rstrip(": "))
            time.sleep(0.002)


def copy_extents(src: int, dst: int) -> int:
    """Copy the data of file `src` into file `dst` at the same offsets, skipping holes (so a sparse
    `src` stays sparse in `dst`); the bytes copied. In-kernel (sendfile): no copy through Python."""
    copied, offset, size = 0, 0, os.fstat(src).st_size
    while offset < size:
        try:
            start = os.lseek(src, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after offset
            break
        end = os.lseek(src, start, os.SEEK_HOLE)
        os.lseek(dst, start, os.SEEK_SET)
        while start < end:
            sent = os.sendfile(dst, src, start, end - start)
            if sent == 0:
                raise OSError(f"short copy at offset {start}")
            start += sent
            copied += sent
        offset = end
    return copied


def restore(vm: VirtualMachine, template: Path, ram_fd: int) -> None:
    """Make `vm`, just spawned from a template's command line (``-incoming defer``, guest RAM the
    memfd `ram_fd`), the template's machine: copy its RAM into `ram_fd` (closed here), load its
    state and let it run. VMError when QEMU or the state fails (QEMU then exits)."""
    try:
        src = os.open(template / RAM, os.O_RDONLY)
        try:
            copy_extents(src, ram_fd)
        finally:
            os.close(src)
    finally:
        os.close(ram_fd)
    try:
        vm.wait_ready(RESTORE_TIMEOUT)
        with open(template / STATE, "rb") as state:
            vm.qmp_commands([("getfd", {"fdname": "state"}),
                             ("migrate-set-capabilities", {"capabilities": IGNORE_SHARED}),
                             ("migrate-incoming", {"uri": "fd:state"})], fds=[state.fileno()])
        _wait_for_migration(vm, "migration", RESTORE_TIMEOUT)
        vm.qmp("cont")  # the template was saved stopped: a restored VM waits for this
    except VMError as e:
        why = _qemu_said(vm) or e.message
        raise vm.error(f"cannot restore the template VM {template.name}: {why}") from None


def _qemu_said(vm: VirtualMachine) -> str:
    """The last line QEMU wrote, once it has exited (within a second); "" while it runs."""
    with contextlib.suppress(VMError):
        vm.wait(1.0)
        return tail(vm.stderr_log, 1).strip()
    return ""
