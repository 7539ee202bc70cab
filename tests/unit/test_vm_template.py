"""Template VMs' pure parts (vm/template.py): what a template is keyed by, and the sparse RAM copy.
Building and restoring one with real QEMU: tests/integration/test_template_vm.py."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from katadocker.vm.early import machine_spec
from katadocker.vm.template import copy_extents, template_path

MIB = 1 << 20


def test_copy_extents_copies_the_data_and_keeps_the_holes(tmp_path: Path) -> None:
    src = tmp_path / "ram"
    with open(src, "wb") as f:
        f.truncate(64 * MIB)
        f.seek(0)
        f.write(b"a" * 5000)
        f.seek(40 * MIB)
        f.write(os.urandom(3 * MIB))
    fd = os.open(src, os.O_RDONLY)
    dst = os.memfd_create("test-ram")
    try:
        os.ftruncate(dst, 64 * MIB)
        copied = copy_extents(fd, dst)
        assert 3 * MIB + 5000 <= copied <= 3 * MIB + 2 * 4096 + 4096  # data, rounded to pages
        with open(src, "rb") as f:
            assert os.pread(dst, 64 * MIB, 0) == f.read()
        assert os.fstat(dst).st_blocks * 512 < 4 * MIB  # the holes stayed holes
    finally:
        os.close(fd)
        os.close(dst)


def test_an_empty_file_copies_nothing(tmp_path: Path) -> None:
    src = tmp_path / "ram"
    with open(src, "wb") as f:
        f.truncate(8 * MIB)
    fd, dst = os.open(src, os.O_RDONLY), os.memfd_create("test-ram")
    try:
        assert copy_extents(fd, dst) == 0
    finally:
        os.close(fd)
        os.close(dst)


def test_the_template_is_keyed_by_the_machine_and_the_files_it_boots(tmp_path: Path) -> None:
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs-0123.cpio"
    kernel.write_bytes(b"k")
    initramfs.write_bytes(b"i")
    spec = machine_spec(kernel, initramfs, "tcg", restored=True)
    path = template_path(tmp_path, spec)
    assert path.parent == tmp_path and path.name.startswith("template-")
    os.utime(initramfs, (1, 1))  # touched on every run (vm/assets.py): its name is its content's key
    assert template_path(tmp_path, spec) == path
    assert template_path(tmp_path, replace(spec, memory_mib=1024)) != path
    assert template_path(tmp_path, replace(spec, accel="kvm")) != path
    kernel.write_bytes(b"another kernel")
    assert template_path(tmp_path, spec) != path


def test_superseded_templates_go_once_unused_for_an_hour(tmp_path: Path) -> None:
    """vm/assets.py's clean-up: template dirs (and the partial dir of a build killed midway) unused
    for STALE_AFTER_SECONDS go; the current template and its `.failed` file stay, as does a
    template used a moment ago by another process."""
    from katadocker.vm.assets import STALE_AFTER_SECONDS, _remove_stale

    old = time.time() - STALE_AFTER_SECONDS - 60
    current = tmp_path / "template-aaaa"
    paths = {name: tmp_path / name for name in
             ("template-aaaa", "template-aaaa.failed", "template-bbbb", "template-cccc", ".template-dddd.42")}
    for name, path in paths.items():
        if name.endswith(".failed"):
            path.write_text("why\n")
        else:
            path.mkdir()
            (path / "ram").write_bytes(b"r")
        if name != "template-cccc":
            os.utime(path, (old, old))
    for pattern in ("template-*", ".template-*"):
        _remove_stale(tmp_path, pattern, current)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["template-aaaa", "template-aaaa.failed",
                                                          "template-cccc"]
