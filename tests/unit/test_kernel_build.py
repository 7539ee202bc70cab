"""The pure parts of building katadocker's guest kernel: the config fragment and its check, the
cache key, finding the source. (The build itself runs in scripts/test, and every VM test boots it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from katadocker.errors import VMError
from katadocker.vm.kernel_build import (
    KERNEL_CONFIG,
    KernelSource,
    build_key,
    find_source,
    parse_config,
    unmet_options,
)


def test_parse_config_reads_set_and_unset_options() -> None:
    text = "# comment\nCONFIG_A=y\nCONFIG_B=\"x y\"\n# CONFIG_C is not set\nCONFIG_D=64\n\n"
    assert parse_config(text) == {"CONFIG_A": "y", "CONFIG_B": '"x y"', "CONFIG_C": "n", "CONFIG_D": "64"}


def test_unmet_options_names_what_kconfig_dropped() -> None:
    wanted = {"CONFIG_A": "y", "CONFIG_B": "y", "CONFIG_N": "64", "CONFIG_OFF": "n"}
    resolved = {"CONFIG_A": "y", "CONFIG_N": "8"}
    assert unmet_options(wanted, resolved) == ["CONFIG_B=y (got n)", "CONFIG_N=64 (got 8)"]


def test_the_fragment_builds_in_what_a_container_vm_needs() -> None:
    options = parse_config(KERNEL_CONFIG.read_text())
    for needed in ("CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_FS", "CONFIG_VIRTIO_CONSOLE", "CONFIG_VIRTIO_NET",
                   "CONFIG_VIRTIO_BALLOON", "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_DEVTMPFS",
                   "CONFIG_UNIX98_PTYS", "CONFIG_PID_NS", "CONFIG_BINFMT_SCRIPT"):
        assert options.get(needed) == "y", needed
    assert "CONFIG_MODULES" not in options  # allnoconfig: no modules, everything built in


def test_build_key_follows_the_source_and_the_config(tmp_path: Path) -> None:
    tarball = tmp_path / "linux-source-6.1.tar.xz"
    tarball.write_bytes(b"x" * 10)
    source = KernelSource(tarball, "6.1")
    key = build_key(source, "CONFIG_A=y\n")
    assert key == build_key(source, "CONFIG_A=y\n")
    assert key != build_key(source, "CONFIG_A=y\nCONFIG_B=y\n")
    tarball.write_bytes(b"x" * 11)  # a new source package
    assert key != build_key(source, "CONFIG_A=y\n")


def test_find_source_takes_the_newest_and_names_the_packages_when_none(tmp_path: Path) -> None:
    for version in ("6.1", "6.10", "6.9"):
        (tmp_path / f"linux-source-{version}.tar.xz").touch()
    assert find_source(str(tmp_path / "linux-source-*.tar.xz")).version == "6.10"
    with pytest.raises(VMError) as info:
        find_source(str(tmp_path / "nothing-*.tar.xz"))
    assert info.value.detail and "linux-source" in info.value.detail
