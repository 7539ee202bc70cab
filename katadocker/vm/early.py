"""A VM started before its container exists, so that the guest boots while the CLI creates it.

Under TCG the guest's boot takes about a second, and creating the container (the CLI's start-up,
image lookup, records, the monitor's hand-over, the overlay, virtiofsd, the network) took a fifth
of a second more in front of it. The monitor the CLI pre-starts (engine/monitor_prestart.py)
therefore starts QEMU first thing, before it even execs its own interpreter (vm/early_spawn.py; the
monitor `resume`s it, its child still): the machine the last container of this state root booted
(`remember_machine`): its guest assets, default memory, one vCPU, the hotplug bridge,
none of the container's devices (vm/qemu.py hot-adds those). When the assets have a template VM
(vm/template.py), the early VM is restored from it rather than booted, in a thread that overlaps
the monitor's wait for its container; that thread then connects the agent link (`agent`), so the
guest says HELLO (~40 ms of its time after a restore) while the monitor still prepares the container.

When the container's arguments arrive, `fits` says whether it wants exactly that machine, and
`adopt` moves the VM's sockets and logs to the container's paths and hands the running
`VirtualMachine` over. A container that wants another machine (other assets after a rebuild,
``--memory``, ``--cpus``) gets a VM of its own, and so does one whose early VM was started from a
recipe an older katadocker wrote; `discard` kills the early one. The head start is then wasted,
never wrong. A monitor removes the directories dead monitors' early VMs left (`remove_orphans`).
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

from katadocker.agent.client import AgentClient
from katadocker.errors import VMError
from katadocker.state.containers import pid_alive
from katadocker.state.paths import StateRoot
from katadocker.vm.early_spawn import DIR_PREFIX, LOG_MARK, RECIPE, RESTORE_RAM_FD, RUN_MARK, format_recipe
from katadocker.vm.machine import PARENT_DEATH_SIGNAL, InheritedChild, VirtualMachine
from katadocker.vm.qemu import VMSpec
from katadocker.vm.template import RESTORE_TIMEOUT, restore


def machine_spec(kernel: Path, initramfs: Path, accel: str, run_dir: Path = Path(RUN_MARK),
                 log_dir: Path = Path(LOG_MARK), restored: bool = False) -> VMSpec:
    """The early VM's machine, its sockets in `run_dir` and console in `log_dir` (by default the
    recipe's marks); `restored`: started from a template VM (guest RAM the memfd at
    RESTORE_RAM_FD, QEMU waiting for the template's state)."""
    return VMSpec(kernel=kernel, initramfs=initramfs, accel=accel, agent_socket=run_dir / "agent.sock",
                  qmp_socket=run_dir / "qmp.sock", console_log=log_dir / "console.log", hotplug=True,
                  memory_fd=RESTORE_RAM_FD if restored else None, incoming=restored)


def remember_machine(state: StateRoot, kernel: Path, initramfs: Path, accel: str,
                     template: Path | None) -> None:
    """Record the machine the next early VM of `state` starts: the assets a container VM is about
    to boot, restored from `template` when there is one, as a recipe with QEMU's whole command line
    (vm/early_spawn.py); written only when it changed: this runs on every ``run``."""
    vm = VirtualMachine(machine_spec(kernel, initramfs, accel, restored=template is not None))
    recipe = format_recipe(str(kernel), str(initramfs), accel, str(vm.stderr_log), str(template or ""),
                           [*PARENT_DEATH_SIGNAL, *vm.argv])
    path = state.assets / RECIPE
    with contextlib.suppress(OSError):
        if path.read_bytes() == recipe:
            return
    from katadocker.state.atomic import write_bytes

    write_bytes(path, recipe)


def remove_orphans(run_root: Path, log_root: Path) -> None:
    """Remove the directories (``early-<pid>`` under `run_root` and `log_root`) of early VMs whose
    monitor died before it took them over or discarded them: a monitor killed with -9 takes its
    QEMU along (vm/machine.py `PARENT_DEATH_SIGNAL`), not the directories."""
    for parent in (run_root, log_root):
        for directory in parent.glob(DIR_PREFIX + "*"):
            pid = directory.name.removeprefix(DIR_PREFIX)
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(directory, ignore_errors=True)


def _running_argv(pid: int) -> list[str]:
    """The command line process `pid` runs, without the parent-death wrapper ([] when gone)."""
    try:
        argv = [os.fsdecode(a) for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    except OSError:
        return []
    wrapper = list(PARENT_DEATH_SIGNAL)
    return argv[len(wrapper):] if argv[:len(wrapper)] == wrapper else argv


class EarlyVM:
    """A running VM of the default machine, not yet anybody's (see the module doc)."""

    def __init__(self, vm: VirtualMachine, run_dir: Path, log_dir: Path, current: bool,
                 template: Path | None = None, ram_fd: int = -1) -> None:
        self.vm = vm
        self.run_dir = run_dir
        self.log_dir = log_dir
        #: QEMU runs the command line this katadocker builds for the machine (not an old recipe's)
        self.current = current
        #: the template VM it is restored from (in a thread from here on, `_restore`), or None: it boots
        self.template = template
        #: the agent link, connected once the restore is done (None: the caller connects it)
        self.agent: AgentClient | None = None
        self._restore_error: VMError | None = None
        self._restoring: threading.Thread | None = None
        if template is not None:
            self._restoring = threading.Thread(target=self._restore, args=(template, ram_fd), name="restore",
                                               daemon=True)
            self._restoring.start()

    def _restore(self, template: Path, ram_fd: int) -> None:
        """The restore thread: the VM restored from `template` into the memfd `ram_fd`, then the agent
        link connected; a failure is kept for `adopt`."""
        try:
            restore(self.vm, template, ram_fd)
            self.agent = AgentClient.connect(str(self.vm.spec.agent_socket), RESTORE_TIMEOUT)
        except VMError as e:
            self._restore_error = e
        except OSError as e:
            self._restore_error = self.vm.error(f"cannot restore the template VM {template.name}: {e}")

    def _restored(self) -> None:
        """Wait until the restore (if any) has ended, however it ended."""
        if self._restoring is not None:
            self._restoring.join()

    @classmethod
    def resume(cls, description: str) -> tuple[EarlyVM | None, str]:
        """(the early VM vm/early_spawn.py `spawn` described (its description as a Python literal),
        its QEMU a child of this process since the exec; or None and why there is none)."""
        found = ast.literal_eval(description)
        if "none" in found:
            return None, found["none"]
        run_dir, log_dir = Path(found["run_dir"]), Path(found["log_dir"])
        template = Path(found["template"]) if found["template"] else None
        spec = machine_spec(Path(found["kernel"]), Path(found["initramfs"]), found["accel"], run_dir, log_dir,
                            restored=template is not None)
        vm = VirtualMachine(spec)
        vm.proc = InheritedChild(found["pid"], vm.argv)
        current = _running_argv(found["pid"]) == vm.argv
        return cls(vm, run_dir, log_dir, current, template, found["ram_fd"]), ""

    def fits(self, spec: VMSpec) -> bool:
        """Whether `spec` (with the container's paths) asks for this very machine (whether it came
        up is for `adopt` to find)."""
        mine = self.vm.spec
        same_paths = replace(spec, agent_socket=mine.agent_socket, qmp_socket=mine.qmp_socket,
                             console_log=mine.console_log, memory_fd=mine.memory_fd, incoming=mine.incoming)
        return same_paths == mine and self.current

    def adopt(self, spec: VMSpec) -> VirtualMachine:
        """The VM, its sockets and console logs moved to `spec`'s paths (which `fits`), once QEMU is
        ready (restored, if from a template; VMError when it failed: `discard` it then)."""
        self._restored()
        if self._restore_error is not None:
            raise self._restore_error
        self.vm.wait_ready()
        mine, stderr_log = self.vm.spec, self.vm.stderr_log
        self.vm.spec = spec
        for old, new in ((mine.agent_socket, spec.agent_socket), (mine.qmp_socket, spec.qmp_socket),
                         (mine.console_log, spec.console_log), (stderr_log, self.vm.stderr_log)):
            os.rename(old, new)  # a listening unix socket is reached by its new name alike
        self._remove_dirs()
        return self.vm

    def discard(self) -> None:
        """Kill the VM (if it runs) and remove its directories, once a restore under way has ended
        (a tenth of a second: the restore thread may reap QEMU, and only one thread may)."""
        self._restored()
        if self.agent is not None:
            self.agent.close()
        self.vm.kill()
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        for directory in (self.run_dir, self.log_dir):
            shutil.rmtree(directory, ignore_errors=True)
