"""The initramfs writer, checked by extracting with the real cpio tool, and modules.dep resolution."""

from __future__ import annotations

import io
import lzma
import os
import stat
import subprocess
from pathlib import Path

import pytest

from katadocker.errors import VMError
from katadocker.vm.initramfs import (
    CpioEntry,
    build_initramfs,
    module_name,
    resolve_modules,
    write_cpio,
)

pytestmark = pytest.mark.skipif(not Path("/usr/bin/cpio").exists(), reason="needs the cpio tool")


def fake_modules(tmp_path: Path, dep: str, builtin: str = "") -> Path:
    """A modules dir with the given modules.dep; every module file holds its own name."""
    d = tmp_path / "lib/modules/6.1.0-test"
    for line in dep.splitlines():
        for rel in line.replace(":", " ").split():
            f = d / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            data = f"ELF:{module_name(rel)}".encode()
            f.write_bytes(lzma.compress(data) if rel.endswith(".xz") else data)
    d.mkdir(parents=True, exist_ok=True)
    (d / "modules.dep").write_text(dep)
    (d / "modules.builtin").write_text(builtin)
    return d


DEP = """\
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
"""  # noqa: E501


def names(paths: list[Path]) -> list[str]:
    return [module_name(p) for p in paths]


def test_module_name_strips_suffixes_and_normalizes_dashes() -> None:
    assert module_name("kernel/fs/fuse/virtiofs.ko") == "virtiofs"
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.zst") == "virtio_rng"
    assert module_name("x/virtio_console.ko.xz") == "virtio_console"


def test_resolve_modules_puts_every_dependency_first_and_each_once(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path, DEP)
    order = names(resolve_modules(mods, ["virtio_pci", "virtio_console", "virtiofs", "virtio-net"]))
    assert sorted(order) == sorted(set(order)), "each module once"
    assert set(order) == {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                          "virtio_pci", "virtio_console", "fuse", "virtiofs", "failover", "net_failover",
                          "virtio_net"}
    before = [("virtio_ring", "virtio"), ("virtio", "virtio_pci"), ("virtio_pci_modern_dev", "virtio_pci"),
              ("fuse", "virtiofs"), ("failover", "net_failover"), ("net_failover", "virtio_net"),
              ("virtio", "virtio_console")]
    for first, then in before:
        assert order.index(first) < order.index(then), (first, then, order)
    assert all(p.is_file() for p in resolve_modules(mods, ["virtiofs"]))


def test_resolve_modules_skips_builtin_modules(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path, DEP, builtin="kernel/drivers/virtio/virtio.ko\n"
                                                 "kernel/drivers/virtio/virtio_ring.ko\n")
    assert names(resolve_modules(mods, ["virtio", "virtiofs"])) == ["fuse", "virtiofs"]


def test_resolve_modules_rejects_unknown_modules_and_missing_dep_file(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path, DEP)
    with pytest.raises(VMError, match="vsock not found"):
        resolve_modules(mods, ["vsock"])
    with pytest.raises(VMError, match="depmod"):
        resolve_modules(tmp_path / "nowhere", ["virtio"])


def extract(archive: Path, dest: Path) -> str:
    """Extract with the real cpio tool (as the kernel would unpack it); returns `cpio -tv`'s listing."""
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(archive)], cwd=dest, check=True)
    return subprocess.run(["cpio", "-tv", "--quiet", "-F", str(archive)], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="extracting /dev/console needs root")
def test_initramfs_extracts_with_cpio(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path, DEP)
    modules = resolve_modules(mods, ["virtio_console", "virtiofs"])
    agent = tmp_path / "agent"
    agent.write_bytes(b"\x7fELF agent" * 1000 + b"x")  # odd length: exercises the padding
    out = build_initramfs(agent, modules, tmp_path / "out" / "initramfs.cpio")

    listing = extract(out, tmp_path / "x")
    root = tmp_path / "x"
    assert (root / "init").read_bytes() == agent.read_bytes()
    assert stat.S_IMODE((root / "init").stat().st_mode) == 0o755
    loaded = (root / "modules").read_text().splitlines()
    assert loaded == [f"/lib/modules/{n}.ko" for n in names(modules)]
    for line in loaded:
        assert (root / line.lstrip("/")).read_bytes() == f"ELF:{module_name(line)}".encode()
    # virtio_console came as .ko.xz: it is stored decompressed, as plain .ko
    assert (root / "lib/modules/virtio_console.ko").read_bytes() == b"ELF:virtio_console"
    for d in ("dev", "proc", "sys", "tmp", "lib/modules"):
        assert (root / d).is_dir()
    console = root / "dev/console"
    assert stat.S_ISCHR(console.lstat().st_mode) and os.major(console.lstat().st_rdev) == 5
    assert all(line.split()[2:4] == ["root", "root"] for line in listing.splitlines())  # owner 0:0


def test_initramfs_without_modules_has_no_modules_file(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    agent.write_bytes(b"agent")
    out = build_initramfs(agent, [], tmp_path / "initramfs.cpio")
    listing = subprocess.run(["cpio", "-t", "--quiet", "-F", str(out)], check=True, capture_output=True,
                             text=True).stdout.split()
    assert listing == sorted(listing)
    assert "init" in listing and "modules" not in listing


def test_initramfs_is_deterministic(tmp_path: Path) -> None:
    mods = fake_modules(tmp_path, DEP)
    agent = tmp_path / "agent"
    agent.write_bytes(b"agent")
    a = build_initramfs(agent, resolve_modules(mods, ["virtiofs"]), tmp_path / "a.cpio").read_bytes()
    os.utime(agent, (0, 12345))
    b = build_initramfs(agent, resolve_modules(mods, ["virtiofs"]), tmp_path / "b.cpio").read_bytes()
    assert a == b
    assert len(a) % 4 == 0


def test_write_cpio_header_fields() -> None:
    buf = io.BytesIO()
    write_cpio(buf, [CpioEntry("hello", stat.S_IFREG | 0o644, b"hi")])
    data = buf.getvalue()
    assert data[:6] == b"070701"
    fields = [int(data[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
    ino, mode, uid, gid, nlink, mtime, size, *_, namesize, check = fields
    assert (ino, mode, uid, gid, nlink, mtime, size, namesize, check) == (1, 0o100644, 0, 0, 1, 0, 2, 6, 0)
    assert data[110:116] == b"hello\0"
    assert data[116:118] == b"hi"  # 110 + 6 is already 4-aligned
    assert b"TRAILER!!!\0" in data


def test_optional_modules_are_loaded_when_present_and_skipped_otherwise(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/a.ko:\nkernel/balloon.ko: kernel/a.ko\n")
    (tmp_path / "modules.builtin").write_text("")
    assert resolve_modules(tmp_path, ["a"], optional=["balloon"]) == [
        tmp_path / "kernel/a.ko", tmp_path / "kernel/balloon.ko"]
    assert resolve_modules(tmp_path, ["a"], optional=["absent"]) == [tmp_path / "kernel/a.ko"]
