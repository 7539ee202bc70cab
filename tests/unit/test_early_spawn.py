"""The early VM's recipe (vm/early_spawn.py) and its check on the monitor's side (vm/early.py), with
real processes standing in for QEMU: `sleep`, whose command line is not the machine's."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from katadocker.state import layout
from katadocker.state.paths import StateRoot, default_root
from katadocker.vm import boot_priority, early_spawn
from katadocker.vm.early import EarlyVM, machine_spec, remember_machine, remove_orphans


@pytest.fixture
def assets(tmp_path: Path) -> tuple[Path, Path]:
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs.cpio"
    kernel.write_bytes(b"k")
    initramfs.write_bytes(b"i")
    return kernel, initramfs


def write_recipe(path: Path, kernel: Path, initramfs: Path, argv: list[str], template: str = "") -> None:
    path.write_bytes(early_spawn.format_recipe(str(kernel), str(initramfs), "tcg",
                                              early_spawn.LOG_MARK + "/console.log.qemu", template, argv))


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_spawn_fills_in_the_dirs_and_describes_the_vm(tmp_path: Path, assets: tuple[Path, Path]) -> None:
    kernel, initramfs = assets
    recipe = tmp_path / "early-vm"
    write_recipe(recipe, kernel, initramfs,
                 ["sh", "-c", f"echo {early_spawn.RUN_MARK}/qmp.sock >&2; exec sleep 30"])
    run_dir, log_dir = tmp_path / "run" / "early-1", tmp_path / "tmp" / "early-1"
    found = early_spawn.spawn(str(recipe), str(run_dir), str(log_dir))
    try:
        assert found == {"pid": found["pid"], "kernel": str(kernel), "initramfs": str(initramfs),
                         "accel": "tcg", "run_dir": str(run_dir), "log_dir": str(log_dir),
                         "template": "", "ram_fd": -1}
        assert run_dir.is_dir()
        log = log_dir / "console.log.qemu"
        deadline = time.monotonic() + 10
        while not log.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.read_text() == f"{run_dir}/qmp.sock\n"  # the argv's marks, filled in
        assert os.getsid(found["pid"]) == found["pid"]  # its own session: no Ctrl-C from a terminal
        assert os.getpriority(os.PRIO_PROCESS, found["pid"]) == boot_priority.BOOT_NICE  # it boots first
    finally:
        stop(found["pid"])


@pytest.mark.parametrize("content, why", [
    (None, "no container VM was started from these assets yet"),
    (b"katadocker-early-vm-1\0a\0b\0tcg\0log\0qemu", "is not a recipe this katadocker can read"),
    (b"katadocker-early-vm-2\0/gone/vmlinuz\0/gone/initramfs\0tcg\0log\0\0qemu",
     "the guest assets it names are gone"),
])
def test_no_early_vm_without_a_usable_recipe(tmp_path: Path, content: bytes | None, why: str) -> None:
    recipe = tmp_path / "early-vm"
    if content is not None:
        recipe.write_bytes(content)
    found = early_spawn.spawn(str(recipe), str(tmp_path / "run"), str(tmp_path / "log"))
    assert set(found) == {"none"} and why in str(found["none"])
    assert not (tmp_path / "run").exists()


def test_a_template_that_is_gone_means_no_early_vm(tmp_path: Path, assets: tuple[Path, Path]) -> None:
    recipe = tmp_path / "early-vm"
    write_recipe(recipe, *assets, ["sleep", "30"], template=str(tmp_path / "template-gone"))
    found = early_spawn.spawn(str(recipe), str(tmp_path / "run"), str(tmp_path / "log"))
    assert "its template VM is gone" in str(found["none"])
    assert not (tmp_path / "run").exists()


def test_a_program_that_cannot_start_means_no_early_vm(tmp_path: Path, assets: tuple[Path, Path]) -> None:
    recipe = tmp_path / "early-vm"
    write_recipe(recipe, *assets, ["/nonexistent/qemu"])
    found = early_spawn.spawn(str(recipe), str(tmp_path / "run"), str(tmp_path / "log"))
    assert "cannot start QEMU" in str(found["none"])


def test_a_vm_from_another_recipe_never_fits(tmp_path: Path, assets: tuple[Path, Path]) -> None:
    """A process started from an older recipe runs another command line than this katadocker
    builds for the machine: the monitor starts a VM of its own instead of taking it over."""
    kernel, initramfs = assets
    recipe = tmp_path / "early-vm"
    write_recipe(recipe, kernel, initramfs, ["sleep", "30"])
    found = early_spawn.spawn(str(recipe), str(tmp_path / "run"), str(tmp_path / "log"))
    early, why = EarlyVM.resume(repr(found))
    assert early is not None and why == ""
    try:
        assert not early.current
        same_machine = machine_spec(kernel, initramfs, "tcg", tmp_path / "run", tmp_path / "log")
        assert early.vm.spec == same_machine and not early.fits(same_machine)
    finally:
        early.discard()
    assert not (tmp_path / "run").exists() and not (tmp_path / "log").exists()


def test_resume_says_why_there_is_none() -> None:
    assert EarlyVM.resume(repr({"none": "no early VM: because"})) == (None, "no early VM: because")


def test_remember_machine_writes_a_recipe_for_any_dirs(tmp_path: Path, assets: tuple[Path, Path]) -> None:
    kernel, initramfs = assets
    state = StateRoot(tmp_path / "root").ensure()
    remember_machine(state, kernel, initramfs, "tcg", None)
    fields = (state.assets / early_spawn.RECIPE).read_bytes().split(b"\0")
    assert fields[:4] == [early_spawn.FORMAT.encode(), str(kernel).encode(), str(initramfs).encode(), b"tcg"]
    assert fields[5] == b""  # no template: the early VM boots
    argv = b"\0".join(fields[6:]).decode()
    assert early_spawn.RUN_MARK + "/qmp.sock" in argv and early_spawn.LOG_MARK + "/console.log" in argv
    assert str(tmp_path) not in argv.replace(str(kernel), "").replace(str(initramfs), "")
    assert "-incoming" not in argv and "memory-backend-memfd" in argv
    before = (state.assets / early_spawn.RECIPE).stat().st_mtime_ns
    remember_machine(state, kernel, initramfs, "tcg", None)  # unchanged: not rewritten
    assert (state.assets / early_spawn.RECIPE).stat().st_mtime_ns == before
    template = state.assets / "template-0123"
    remember_machine(state, kernel, initramfs, "tcg", template)
    fields = (state.assets / early_spawn.RECIPE).read_bytes().split(b"\0")
    assert fields[5] == str(template).encode()
    argv = b"\0".join(fields[6:]).decode()
    assert "\0-incoming\0defer" in argv
    assert f"mem-path=/proc/self/fd/{early_spawn.RESTORE_RAM_FD}" in argv


def test_spawn_hands_qemu_a_memfd_the_size_of_the_templates_ram(tmp_path: Path,
                                                                 assets: tuple[Path, Path]) -> None:
    """For a template the VM's guest RAM is a memfd made here: QEMU gets it as RESTORE_RAM_FD, the
    monitor (this process after its exec) keeps one to copy the template's RAM into."""
    template = tmp_path / "template-0123"
    template.mkdir()
    with open(template / early_spawn.TEMPLATE_RAM, "wb") as ram:
        ram.truncate(64 << 20)  # sparse, like a real template's
    recipe = tmp_path / "early-vm"
    fd = early_spawn.RESTORE_RAM_FD
    write_recipe(recipe, *assets, ["sh", "-c", f"readlink /proc/self/fd/{fd} >&2; stat -L -c %s "
                                   f"/proc/self/fd/{fd} >&2; exec sleep 30"], template=str(template))
    found = early_spawn.spawn(str(recipe), str(tmp_path / "run"), str(tmp_path / "log"))
    try:
        assert found["template"] == str(template)
        ram_fd = found["ram_fd"]
        assert os.get_inheritable(ram_fd)  # it survives the monitor's exec
        assert os.readlink(f"/proc/self/fd/{ram_fd}").startswith("/memfd:")
        assert os.fstat(ram_fd).st_size == 64 << 20
        log = tmp_path / "log" / "console.log.qemu"
        deadline = time.monotonic() + 10
        while log.read_text().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        link, size = log.read_text().splitlines()
        assert link == os.readlink(f"/proc/self/fd/{ram_fd}") and size == str(64 << 20)
    finally:
        stop(found["pid"])
        os.close(found["ram_fd"])


def test_orphaned_dirs_of_dead_monitors_are_removed(tmp_path: Path) -> None:
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    for parent in ("run", "log"):
        (tmp_path / parent / f"early-{dead}").mkdir(parents=True)
        (tmp_path / parent / f"early-{os.getpid()}").mkdir(parents=True)
    remove_orphans(tmp_path / "run", tmp_path / "log")
    for parent in ("run", "log"):
        assert sorted(p.name for p in (tmp_path / parent).iterdir()) == [f"early-{os.getpid()}"]


def test_the_layout_strings_name_the_state_roots_dirs(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.delenv("KATADOCKER_ROOT", raising=False)
    assert layout.root_dir(None) == str(default_root()) == layout.DEFAULT_ROOT
    monkeypatch.setenv("KATADOCKER_ROOT", str(tmp_path))
    assert layout.root_dir(None) == str(default_root()) == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert layout.root_dir("rel") == str(tmp_path / "rel")
    state = StateRoot(tmp_path)
    assert (state.assets, state.tmp) == (tmp_path / layout.ASSETS, tmp_path / layout.TMP)
