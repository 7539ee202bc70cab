"""The guest initramfs: a cpio "newc" archive holding the agent as ``/init`` and its kernel modules.

Layout agreed with the agent (katadocker/guest/agent.c)::

    /init                  the agent (static, PID 1)
    /lib/modules/<m>.ko    every module the agent must load, uncompressed
    /modules               their paths, one per line, in load (dependency) order; absent if none
    /dev/console, /dev, /proc, /sys, /tmp    mount points and the initial console

The archive is deterministic: entries sorted, mtimes 0, owner root, inode numbers by position, so
the same inputs give the same bytes. It is written uncompressed: it is small (a few MiB) and
decompressing it under TCG emulation would cost boot time.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from katadocker.errors import VMError

#: Modules the agent needs when the kernel does not build them in (dependencies are added by
#: `resolve_modules`): PCI transport + ring, the agent's virtio-serial port, the virtio-fs root,
#: the NIC.
GUEST_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_console", "virtiofs", "virtio_net")
#: Modules loaded when the kernel has them, and skipped otherwise: the balloon whose free page
#: reporting returns freed guest RAM to the host (see vm/qemu.py; ~21 MiB less host memory per idle
#: VM, bench/README.md). A kernel without it boots all the same.
OPTIONAL_GUEST_MODULES: tuple[str, ...] = ("virtio_balloon",)

_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_DIRS = ("dev", "lib", "lib/modules", "proc", "sys", "tmp")


def module_name(path: str | Path) -> str:
    """The kernel's name for a module file: ``kernel/fs/fuse/virtiofs.ko.xz`` -> ``virtiofs``.

    Dashes and underscores are interchangeable in module names; the canonical form uses ``_``.
    """
    base = Path(path).name
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def _read_modules_dep(modules_dir: Path) -> dict[str, tuple[str, list[str]]]:
    """Parse modules.dep into {name: (path, [dependency paths])}; paths relative to modules_dir."""
    dep_file = modules_dir / "modules.dep"
    try:
        text = dep_file.read_text()
    except OSError as e:
        raise VMError(f"cannot read {dep_file}: {e.strerror} (run depmod for this kernel)") from None
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            table[module_name(path)] = (path.strip(), deps.split())
    return table


def _read_builtin(modules_dir: Path) -> set[str]:
    """Names of the modules compiled into the kernel (modules.builtin; empty if absent)."""
    try:
        return {module_name(line) for line in (modules_dir / "modules.builtin").read_text().split()}
    except FileNotFoundError:
        return set()


def resolve_modules(modules_dir: Path, names: Iterable[str] = GUEST_MODULES,
                    optional: Iterable[str] = OPTIONAL_GUEST_MODULES) -> list[Path]:
    """The module files to load for `names` and for those of `optional` the kernel has,
    dependencies first, each once.

    Modules built into the kernel (listed in modules.builtin) are skipped. A name of `names` found in
    neither modules.dep nor modules.builtin raises VMError: the kernel cannot provide it.
    """
    table = _read_modules_dep(modules_dir)
    builtin = _read_builtin(modules_dir)
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen or name in builtin:
            return
        if name in chain:
            raise VMError(f"circular module dependency: {' -> '.join((*chain, name))}")
        if name not in table:
            raise VMError(f"kernel module {name} not found in {modules_dir}/modules.dep or modules.builtin")
        path, deps = table[name]
        for dep in deps:
            visit(module_name(dep), (*chain, name))
        seen.add(name)
        ordered.append(modules_dir / path)

    for name in names:
        visit(name.replace("-", "_"), ())
    for name in optional:
        if name.replace("-", "_") in table:
            visit(name.replace("-", "_"), ())
    return ordered


def read_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressing .ko.xz/.ko.zst/.ko.gz (the agent loads plain .ko)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)
    return data


@dataclass(frozen=True)
class CpioEntry:
    """One archive member. `data` is the content of a file or the target of a symlink."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_cpio(out: BinaryIO, entries: Iterable[CpioEntry]) -> None:
    """Write `entries` in the given order as a cpio newc archive, ending with the TRAILER!!! entry.

    Owners are 0:0 and mtimes 0; inodes are numbered from 1 in order (each entry is its own inode).
    """
    trailer = CpioEntry("TRAILER!!!", 0)
    for ino, entry in enumerate((*entries, trailer), start=1):
        name = entry.name.encode() + b"\0"
        is_dir = stat.S_ISDIR(entry.mode)
        fields = (
            ino if entry is not trailer else 0,
            entry.mode, 0, 0,                 # mode, uid, gid
            2 if is_dir else 1,               # nlink
            0, len(entry.data),               # mtime, filesize
            0, 0, *entry.rdev,                # dev major/minor, rdev major/minor
            len(name), 0,                     # namesize (with NUL), check (unused by newc)
        )  # fmt: skip
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out.write(header + name + _pad(len(header) + len(name)))
        out.write(entry.data + _pad(len(entry.data)))


def initramfs_entries(agent: Path, modules: Sequence[Path]) -> list[CpioEntry]:
    """The entries of the guest initramfs, sorted by name (parents before children)."""
    entries = [CpioEntry(d, stat.S_IFDIR | 0o755) for d in _DIRS]
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(CpioEntry("init", stat.S_IFREG | 0o755, agent.read_bytes()))
    load_paths = []
    for module in modules:
        target = f"lib/modules/{module_name(module)}.ko"
        entries.append(CpioEntry(target, stat.S_IFREG | 0o644, read_module(module)))
        load_paths.append(f"/{target}\n")
    if load_paths:
        entries.append(CpioEntry("modules", stat.S_IFREG | 0o644, "".join(load_paths).encode()))
    if len({e.name for e in entries}) != len(entries):
        raise VMError("duplicate module names in the initramfs module list")
    return sorted(entries, key=lambda e: e.name)


def build_initramfs(agent: Path, modules: Sequence[Path], out: Path) -> Path:
    """Write the initramfs for `agent` and `modules` (in load order) to `out` atomically; return `out`."""
    entries = initramfs_entries(agent, modules)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write_cpio(f, entries)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
