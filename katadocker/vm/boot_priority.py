"""QEMU's CPU priority while its guest boots: raised from its spawn until the container's process
runs, then back to normal.

While a container starts, three parties are busy at once: the CLI (creating the container), the
monitor (the overlay, virtiofsd, the network, the hot-adds) and QEMU (initialising the machine,
then the guest's boot). Only QEMU is on the critical path; the other two finish long before the
guest asks for its process (under TCG: ~0.35 s against ~1 s). But the kernel shares the CPU fairly
between sessions (autogroups: the CLI's, the monitor's and QEMU's own setsid sessions get one equal
share each), so on a 2-core host QEMU's threads spent 140-220 ms of each `run --rm true` waiting
on the run queue, most of it before the guest even started (a bare QEMU boot: ~20 ms). Raised, the
main thread waited 35-40 ms and the vCPU 14-17 ms, and the start took 110-170 ms less in two A/Bs
(bench/README.md).

`boost` raises both the nice value of QEMU's session (its autogroup: what counts where autogroups
apply) and that of its threads (what counts where they do not, e.g. inside a cpu cgroup); `settle`
puts both back to 0 once the container's process runs, so that a running container competes with
the host's other work like any other process, as docker's containers do. Both are best effort:
without the privilege (or autogroups) the VM only starts as fast as it did before.

Imports nothing but `os`: `boost` runs in the fork that starts the early VM (vm/early_spawn.py).
"""

from __future__ import annotations

import os

#: QEMU's nice value while its guest boots: weight 9548 against a nice-0 session's 1024, so the
#: CLI's and the monitor's sessions get the rest of a core. -5 (3121) left QEMU ~20 ms more run-queue
#: wait per start, -20 none less. The cost: while many containers start at once on few cores, the
#: host's other sessions get that much less CPU until the processes run (about a second each under
#: TCG).
BOOT_NICE = -10


def boost(pid: int) -> None:
    """Raise the priority of the just-spawned QEMU `pid` (a session leader) to BOOT_NICE. Threads
    it creates later inherit the raised nice value from its main thread."""
    _set_nice(pid, BOOT_NICE, [pid])


def settle(pid: int) -> None:
    """Put QEMU `pid` (its session and every thread of it) back to nice 0."""
    try:
        threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return  # it has ended
    _set_nice(pid, 0, threads)


def _set_nice(pid: int, nice: int, threads: list[int]) -> None:
    # plain try/except rather than contextlib.suppress: see the module doc on imports
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError:
        pass  # no autogroups in this kernel, no privilege, or QEMU has ended
    for tid in threads:
        try:  # noqa: SIM105
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            pass
