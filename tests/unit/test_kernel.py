"""Guest kernel discovery: version from the bzImage header and the brief's order of sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from katadocker.config import Settings
from katadocker.errors import VMError
from katadocker.state.paths import StateRoot
from katadocker.vm.kernel import KERNEL_ENV, bzimage_version, find_kernel


def fake_bzimage(path: Path, version: str) -> Path:
    """Enough of an x86 boot header for the version lookup: "HdrS" and the version pointer."""
    data = bytearray(0x400)
    data[0x202:0x206] = b"HdrS"
    data[0x20E:0x210] = (0x300 - 0x200).to_bytes(2, "little")
    text = f"{version} (builder@host) #1 SMP".encode() + b"\0"
    data[0x300:0x300 + len(text)] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def with_modules(base: Path, version: str) -> Path:
    d = base / "lib/modules" / version
    d.mkdir(parents=True)
    (d / "modules.dep").write_text("")
    return d


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    return Settings(state=StateRoot(tmp_path / "root"), docker_config=tmp_path / "docker")


def test_bzimage_version(tmp_path: Path) -> None:
    assert bzimage_version(fake_bzimage(tmp_path / "k", "6.1.0-56-cloud-amd64")) == "6.1.0-56-cloud-amd64"
    (tmp_path / "junk").write_bytes(b"\0" * 4096)
    with pytest.raises(VMError, match="not a Linux"):
        bzimage_version(tmp_path / "junk")


def test_order_config_then_built_then_debian(settings: Settings, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assets = settings.state.assets
    for v in ("6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64"):
        fake_bzimage(assets / "debian-kernel" / v / "vmlinuz", v)
        with_modules(assets / "debian-kernel" / v, v)
    debian = find_kernel(settings)
    assert (debian.source, debian.version) == ("debian", "6.1.0-56-cloud-amd64")  # newest, numerically
    newest = "6.1.0-56-cloud-amd64"
    assert debian.modules_dir == assets / "debian-kernel" / newest / "lib/modules" / newest

    fake_bzimage(assets / "kernel/vmlinuz", "6.1.99-katadocker")
    built = find_kernel(settings)
    assert (built.source, built.version, built.modules_dir) == ("katadocker", "6.1.99-katadocker", None)

    monkeypatch.setenv(KERNEL_ENV, str(fake_bzimage(tmp_path / "mine/bzImage", "6.6.0-mine")))
    configured = find_kernel(settings)
    assert (configured.source, configured.version) == ("config", "6.6.0-mine")
    assert KERNEL_ENV in configured.reason


def test_config_file_kernel_and_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    kernel = fake_bzimage(tmp_path / "bzImage", "6.6.0-x")
    modules = with_modules(tmp_path / "m", "6.6.0-x")
    s = Settings(state=StateRoot(tmp_path / "root"), docker_config=tmp_path,
                 extra={"kernel": str(kernel), "kernel-modules": str(modules)})
    choice = find_kernel(s)
    assert (choice.vmlinuz, choice.modules_dir, choice.source) == (kernel, modules, "config")
