"""Spawning an early VM (vm/early.py) from a recorded recipe, with nothing but `os`.

This runs in the fork the CLI makes for its monitor-to-be (engine/monitor_prestart.py), on the path
from the CLI's start to QEMU's start: every module imported there delays the guest's boot, and
building QEMU's command line (vm/qemu.py, vm/machine.py and what they import) cost ~12 ms of it. So
a process that has those modules anyway records the whole command line (`format_recipe`, called by
vm/early.py `remember_machine` on each container start whose machine changed), and `spawn` only
fills in the early VM's directories.

The recipe (``<state root>/assets/early-vm``) is NUL-separated: FORMAT, the kernel, the initramfs,
the accelerator, QEMU's stderr log, the template VM it restores (vm/template.py; empty: it boots),
then its argv (the parent-death wrapper included). The log and argv name the VM's directories as
RUN_MARK and LOG_MARK. For a template, `spawn` gives QEMU a memfd of the template's RAM size as
descriptor RESTORE_RAM_FD and keeps one for the monitor, which restores the VM into it. QEMU's
priority is raised while its guest boots (vm/boot_priority.py).
"""

from __future__ import annotations

import os

from katadocker.vm import boot_priority

#: First field of a recipe; another value is not one this code can read.
FORMAT = "katadocker-early-vm-2"
#: The recipe's file name in the state root's assets dir.
RECIPE = "early-vm"
#: Directory name prefix of an early VM's run and log dirs (``early-<pid of its monitor>``).
DIR_PREFIX = "early-"
#: Stand-ins for the run dir (sockets) and the log dir (console logs) in a recipe: absolute paths
#: that no real path starts with.
RUN_MARK = "/@early-run-dir@"
LOG_MARK = "/@early-log-dir@"
#: The descriptor of guest RAM in a QEMU restored from a template (`VMSpec.memory_fd`).
RESTORE_RAM_FD = 3
#: A template's guest RAM file (vm/template.py's RAM), whose size the memfd gets.
TEMPLATE_RAM = "ram"


def format_recipe(kernel: str, initramfs: str, accel: str, stderr_log: str, template: str,
                  argv: list[str]) -> bytes:
    """A recipe's bytes; `stderr_log` and `argv` name the dirs as RUN_MARK and LOG_MARK; `template`
    is the template VM's directory or ""."""
    return "\0".join((FORMAT, kernel, initramfs, accel, stderr_log, template, *argv)).encode()


def template_ram_memfd(template: str) -> int:
    """A memfd the size of the guest RAM of the template VM in directory `template` (sparse: nothing
    allocated yet), inheritable (a QEMU started from this process, and this process after an exec,
    keep it), for a VM restored from that template. OSError when the template is gone."""
    size = os.stat(os.path.join(template, TEMPLATE_RAM)).st_size
    fd = os.memfd_create("katadocker-guest-ram", 0)  # no MFD_CLOEXEC
    os.ftruncate(fd, size)
    return fd


def spawn(recipe: str, run_dir: str, log_dir: str) -> dict[str, object]:
    """Start QEMU as the recipe at path `recipe` says, with its sockets in `run_dir` and its logs in
    `log_dir` (both created here), without waiting for it. Returns the VM's description for
    vm/early.py `EarlyVM.resume`: {"pid", "kernel", "initramfs", "accel", "run_dir", "log_dir",
    "template", "ram_fd"} ("template" is "" and "ram_fd" -1 for a VM that boots; else "ram_fd" is
    this process's descriptor of the guest RAM memfd, inherited across exec), or {"none": why there
    is no early VM}. Never raises: an early VM is only a head start."""
    try:
        with open(recipe, "rb") as f:
            fields = os.fsdecode(f.read()).split("\0")
    except OSError:
        return {"none": "no early VM: no container VM was started from these assets yet"}
    if fields[0] != FORMAT or len(fields) < 7:
        return {"none": f"no early VM: {recipe} is not a recipe this katadocker can read"}
    fields = [f.replace(RUN_MARK, run_dir).replace(LOG_MARK, log_dir) for f in fields]
    _, kernel, initramfs, accel, stderr_log, template, *argv = fields
    if not (os.path.isfile(kernel) and os.path.isfile(initramfs)):
        return {"none": "no early VM: the guest assets it names are gone"}
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stderr_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    ram_fd = -1
    if template:
        try:
            ram_fd = template_ram_memfd(template)
        except OSError as e:
            return {"none": f"no early VM: its template VM is gone: {e}"}
        actions.append((os.POSIX_SPAWN_DUP2, ram_fd, RESTORE_RAM_FD))
    try:
        for directory in (run_dir, log_dir):
            os.makedirs(directory, exist_ok=True)
        pid = os.posix_spawnp(argv[0], argv, os.environ, setsid=True, file_actions=actions)
    except OSError as e:
        if ram_fd >= 0:
            os.close(ram_fd)
        return {"none": f"no early VM: cannot start QEMU: {e}"}
    boot_priority.boost(pid)
    return {"pid": pid, "kernel": kernel, "initramfs": initramfs, "accel": accel, "run_dir": run_dir,
            "log_dir": log_dir, "template": template, "ram_fd": ram_fd}
