"""A VM started before its container exists, so that the guest boots while the CLI creates it.

Under TCG the guest's boot takes about a second, and creating the container (the CLI's start-up,
image lookup, records, the monitor's hand-over, the overlay, virtiofsd, the network) took a fifth
of a second more in front of it. The monitor the CLI pre-starts (engine/monitor_launch.py)
therefore starts QEMU first thing, before it even execs its own interpreter (`start_described`;
the monitor `resume`s it, its child still), with the guest assets the last container of this state
root used (`remember_assets`, written by vm/assets.py) and the default machine: default memory, one
vCPU, `EARLY_SLOTS` empty hotplug slots, none of the container's devices (vm/qemu.py hot-adds
those).

When the container's arguments arrive, `fits` says whether it wants exactly that machine, and
`adopt` moves the VM's sockets and logs to the container's paths and hands the running
`VirtualMachine` over. A container that wants another machine (other assets after a rebuild,
``--memory``, ``--cpus``, more shares than slots) gets a VM of its own; `discard` kills the early one.
The head start is then wasted, never wrong. A monitor removes the directories dead monitors' early
VMs left (`remove_orphans`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from katadocker.vm.machine import InheritedChild, VirtualMachine
from katadocker.vm.qemu import VMSpec

#: Hotplug slots of an early VM: the container's root share and its NIC, what a container without
#: volumes or binds needs.
EARLY_SLOTS = 2
#: In the assets dir: {"kernel", "initramfs", "accel"} that `ensure_assets` last returned.
LAST_USED = "last-used.json"


def remember_assets(assets_dir: Path, kernel: Path, initramfs: Path, accel: str) -> None:
    """Record the assets a container VM is about to boot, for the next early VM (written only when
    they changed: this runs on every ``run``)."""
    text = json.dumps({"kernel": str(kernel), "initramfs": str(initramfs), "accel": accel})
    path = assets_dir / LAST_USED
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    from katadocker.state.atomic import write_bytes

    write_bytes(path, text.encode())


def remove_orphans(run_root: Path, log_root: Path) -> None:
    """Remove the directories (``early-<pid>`` under `run_root` and `log_root`) of early VMs whose
    monitor died before it took them over or discarded them: a monitor killed with -9 takes its
    QEMU along (vm/machine.py `PARENT_DEATH_SIGNAL`), not the directories."""
    for parent in (run_root, log_root):
        for directory in parent.glob("early-*"):
            pid = directory.name.removeprefix("early-")
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _spec(kernel: Path, initramfs: Path, accel: str, run_dir: Path, log_dir: Path) -> VMSpec:
    return VMSpec(kernel=kernel, initramfs=initramfs, accel=accel, agent_socket=run_dir / "agent.sock",
                  qmp_socket=run_dir / "qmp.sock", console_log=log_dir / "console.log",
                  hotplug_slots=EARLY_SLOTS)


def start_described(assets_dir: Path, run_dir: Path, log_dir: Path) -> str:
    """`EarlyVM.start` for a process about to exec the monitor: JSON for `EarlyVM.resume`, which
    describes the VM, or why there is none. Never raises (the container then gets its VM later)."""
    try:
        early = EarlyVM.start(assets_dir, run_dir, log_dir)
    except Exception as e:  # noqa: BLE001 - only a head start
        return json.dumps({"none": f"no early VM: {e}"})
    if early is None:
        return json.dumps({"none": "no early VM: no container VM was started from these assets yet"})
    spec = early.vm.spec
    return json.dumps({"pid": early.vm.pid, "kernel": str(spec.kernel),
                       "initramfs": str(spec.initramfs), "accel": spec.accel, "run_dir": str(run_dir),
                       "log_dir": str(log_dir)})


class EarlyVM:
    """A running VM of the default machine, not yet anybody's (see the module doc)."""

    def __init__(self, vm: VirtualMachine, run_dir: Path, log_dir: Path) -> None:
        self.vm = vm
        self.run_dir = run_dir
        self.log_dir = log_dir

    @classmethod
    def start(cls, assets_dir: Path, run_dir: Path, log_dir: Path) -> EarlyVM | None:
        """Spawn the early VM (sockets in `run_dir`, console logs in `log_dir`, both made here and
        removed by `adopt`/`discard`), without waiting for it; None when no container VM has been
        started from `assets_dir` yet or its assets are gone."""
        try:
            last = json.loads((assets_dir / LAST_USED).read_text())
            kernel, initramfs = Path(last["kernel"]), Path(last["initramfs"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (kernel.is_file() and initramfs.is_file()):
            return None
        spec = _spec(kernel, initramfs, last["accel"], run_dir, log_dir)
        early = cls(VirtualMachine(spec), run_dir, log_dir)
        try:
            early.vm.spawn()
        except Exception:
            early.discard()
            raise
        return early

    @classmethod
    def resume(cls, description: str) -> tuple[EarlyVM | None, str]:
        """(the early VM `start_described` described, its QEMU a child of this process since the
        exec; or None and why there is none)."""
        found = json.loads(description)
        if "none" in found:
            return None, found["none"]
        run_dir, log_dir = Path(found["run_dir"]), Path(found["log_dir"])
        spec = _spec(Path(found["kernel"]), Path(found["initramfs"]), found["accel"], run_dir, log_dir)
        vm = VirtualMachine(spec)
        vm.proc = InheritedChild(found["pid"], vm.argv)
        return cls(vm, run_dir, log_dir), ""

    def fits(self, spec: VMSpec) -> bool:
        """Whether `spec` (with the container's paths) asks for this very machine, still running."""
        mine = self.vm.spec
        same_paths = replace(spec, agent_socket=mine.agent_socket, qmp_socket=mine.qmp_socket,
                             console_log=mine.console_log, hotplug_slots=mine.hotplug_slots)
        return same_paths == mine and spec.hotplug_slots <= mine.hotplug_slots and self.vm.returncode is None

    def adopt(self, spec: VMSpec) -> VirtualMachine:
        """The VM, its sockets and console logs moved to `spec`'s paths (which `fits`), once QEMU is
        ready (VMError when it failed: `discard` it then)."""
        self.vm.wait_ready()
        mine, stderr_log = self.vm.spec, self.vm.stderr_log
        self.vm.spec = replace(spec, hotplug_slots=mine.hotplug_slots)
        for old, new in ((mine.agent_socket, spec.agent_socket), (mine.qmp_socket, spec.qmp_socket),
                         (mine.console_log, spec.console_log), (stderr_log, self.vm.stderr_log)):
            os.rename(old, new)  # a listening unix socket is reached by its new name alike
        self._remove_dirs()
        return self.vm

    def discard(self) -> None:
        """Kill the VM (if it runs) and remove its directories."""
        self.vm.kill()
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        for directory in (self.run_dir, self.log_dir):
            shutil.rmtree(directory, ignore_errors=True)
