"""Guest assets: the kernel and the initramfs (agent + modules) every VM boots, built once per host.

``ensure_assets`` is cheap when nothing changed (it hashes a few source files and stats the cache)
and is called by every ``run``. What it builds lives under ``<state>/assets/``::

    agent-<key>           the compiled agent; key = hash of the agent's sources
    initramfs-<key>.cpio  key = hash of (agent key, kernel path + version, module files, format)
    debian-kernel/...     a downloaded kernel (see vm/kernel.py)
    template-<key>/       that machine booted once and saved (vm/template.py): early VMs are
                          restored from it instead of booting
    early-vm              the machine of the last call's assets as QEMU's command line, for the
                          next early VM (vm/early.py, vm/early_spawn.py)

Each file is written aside and renamed into place; the whole step runs under a lock kept in the
assets dir (``.build.lock``) so that concurrent first runs build once. Superseded agents, initramfs
files and templates are removed once unused for an hour (QEMU reads the initramfs at startup, so
running VMs do not need the old file, but a process that was just handed it does).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from katadocker.agent.build import agent_compiler, agent_sources, compile_agent
from katadocker.config import Settings
from katadocker.state.lock import locked
from katadocker.vm.accel import Accel, choose_accelerator
from katadocker.vm.early import machine_spec, remember_machine
from katadocker.vm.initramfs import build_initramfs, resolve_modules
from katadocker.vm.kernel import find_kernel
from katadocker.vm.template import PREFIX as TEMPLATE_PREFIX
from katadocker.vm.template import ensure_template, failure, template_path

#: Bump when the initramfs layout changes, so older cached archives are rebuilt.
INITRAMFS_FORMAT = 1

Progress = Callable[[str], None]


@dataclass(frozen=True)
class GuestAssets:
    """What a VM boots, and the facts ``katadocker info`` shows about it."""

    kernel: Path
    initramfs: Path
    kernel_version: str
    kernel_source: str  # config | katadocker | debian | host
    reason: str  # why this kernel
    accel: Accel
    modules: tuple[str, ...]  # module file names packed into the initramfs, in load order
    template: Path | None  # the template VM early VMs are restored from (vm/template.py); None: they boot
    template_failure: str  # why there is no template ("" when there is one)


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


#: A superseded agent or initramfs is deleted only once unused for this long: another process may
#: have been handed it a moment ago and not yet started QEMU with it (ensure_assets touches the
#: files it hands out).
STALE_AFTER_SECONDS = 3600


def _remove_stale(directory: Path, pattern: str, keep: Path) -> None:
    """Remove what matches `pattern` in `directory` (files or directories) and is unused for
    STALE_AFTER_SECONDS, except `keep` and what its name begins (``template-<key>.failed``)."""
    cutoff = time.time() - STALE_AFTER_SECONDS
    for old in directory.glob(pattern):
        if not old.name.startswith(keep.name) and old.stat().st_mtime < cutoff:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def ensure_agent(assets_dir: Path, progress: Progress | None) -> Path:
    """The compiled agent for the current sources and compiler, compiling it when either changed."""
    cc = agent_compiler()
    key = _digest([cc.encode(), *(p.read_bytes() for p in agent_sources())])
    agent = assets_dir / f"agent-{key}"
    if not agent.is_file():
        if progress:
            progress(f"Compiling the guest agent ({cc})")
        compile_agent(agent, cc)
    os.utime(agent)
    _remove_stale(assets_dir, "agent-*", agent)
    return agent


def ensure_assets(settings: Settings, progress: Progress | None = None) -> GuestAssets:
    """Kernel + initramfs for this host, building whatever is missing or out of date.

    `progress` receives one line per step that does real work (compile, download, build, the template
    VM's boot); nothing when everything is cached. Raises VMError when a step fails (no compiler, no
    kernel, ...); a template VM that cannot be made is only a warning (containers then boot).
    """
    accel = choose_accelerator()
    assets_dir = settings.state.assets
    assets_dir.mkdir(parents=True, exist_ok=True)
    # The lock lives with the assets, so state roots sharing one assets dir (tests) share it too.
    with locked(assets_dir, ".build"):
        agent = ensure_agent(assets_dir, progress)
        kernel = find_kernel(settings, progress)
        modules = resolve_modules(kernel.modules_dir) if kernel.modules_dir else []
        key = _digest([
            agent.name.encode(),
            str(kernel.vmlinuz).encode(),
            kernel.version.encode(),
            *(f"{m}:{m.stat().st_size}:{m.stat().st_mtime_ns}".encode() for m in modules),
            str(INITRAMFS_FORMAT).encode(),
        ])
        initramfs = assets_dir / f"initramfs-{key}.cpio"
        if not initramfs.is_file():
            if progress:
                progress(f"Building the guest initramfs ({len(modules)} kernel modules)")
            build_initramfs(agent, modules, initramfs)
        os.utime(initramfs)
        _remove_stale(assets_dir, "initramfs-*.cpio", initramfs)
        machine = machine_spec(kernel.vmlinuz, initramfs, accel.name, restored=True)
        template = template_path(assets_dir, machine)
        restorable = ensure_template(template, machine, progress)
        for pattern in (f"{TEMPLATE_PREFIX}*", f".{TEMPLATE_PREFIX}*"):  # and builds killed midway
            _remove_stale(assets_dir, pattern, template)
        remember_machine(settings.state, kernel.vmlinuz, initramfs, accel.name,
                         template if restorable else None)
    return GuestAssets(
        kernel=kernel.vmlinuz,
        initramfs=initramfs,
        kernel_version=kernel.version,
        kernel_source=kernel.source,
        reason=kernel.reason,
        accel=accel,
        modules=tuple(m.name for m in modules),
        template=template if restorable else None,
        template_failure="" if restorable else failure(template),
    )
