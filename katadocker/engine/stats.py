"""docker stats: CPU, memory, network, block I/O and PIDs of a container, as seen in its guest.

One sample is one exec of a tiny shell script in the container (the image's ``sh`` and ``cat``)
printing /proc/stat, /proc/meminfo, /proc/net/dev, /proc/diskstats and the number of processes.
CPU % is docker's formula over two samples: busy-time delta / total-time delta x online CPUs x 100.
Memory is MemTotal - MemAvailable of the guest, the limit its MemTotal (the VM's RAM, which is what
``--memory`` sizes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from katadocker.config import Settings
from katadocker.engine.exec import check_runnable, run_collect
from katadocker.errors import KatadockerError
from katadocker.state.containers import ContainerRecord

SCRIPT = ("cat /proc/stat /proc/meminfo /proc/net/dev /proc/diskstats; "
          "set -- /proc/[0-9]*; echo PIDS $(($# - 1))")  # minus this script's own sh


@dataclass(frozen=True)
class Sample:
    """One reading of the guest's counters."""

    cpu_busy: int
    cpu_total: int
    cpus: int
    mem_used: int
    mem_limit: int
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int


def parse_sample(text: str) -> Sample:
    """The counters in the script's output (see `SCRIPT`)."""
    busy = total = cpus = pids = 0
    mem: dict[str, int] = {}
    rx = tx = rd = wr = 0
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "cpu":
            ticks = [int(x) for x in f[1:9]]
            total, busy = sum(ticks), sum(ticks) - ticks[3] - ticks[4]
        elif f[0].startswith("cpu") and f[0][3:].isdigit():
            cpus += 1
        elif f[0].endswith(":") and len(f) == 3 and f[2] == "kB":
            mem[f[0][:-1]] = int(f[1]) * 1024
        elif ":" in f[0] and len(f) >= 16 and f[0].rstrip(":") != "lo":
            cells = line.split(":", 1)[1].split()
            rx, tx = rx + int(cells[0]), tx + int(cells[8])
        elif len(f) >= 10 and f[0].isdigit() and f[1].isdigit() and not f[2][-1].isdigit():
            rd, wr = rd + int(f[5]) * 512, wr + int(f[9]) * 512  # whole disks only
        elif f[0] == "PIDS":
            pids = int(f[1])
    limit = mem.get("MemTotal", 0)
    used = limit - mem.get("MemAvailable", limit)
    return Sample(busy, total, max(cpus, 1), used, limit, rx, tx, rd, wr, pids)


def sample(settings: Settings, record: ContainerRecord) -> Sample:
    """Read the counters once (the container must be running)."""
    check_runnable(record)
    code, out, err = run_collect(settings, record, ["sh", "-c", SCRIPT])
    if code != 0:
        raise KatadockerError(f"reading the container's statistics failed: {err.decode(errors='replace')}")
    return parse_sample(out.decode(errors="replace"))


def cpu_percent(before: Sample, after: Sample) -> float:
    """docker's CPU %: the busy share of the interval times the online CPUs."""
    total = after.cpu_total - before.cpu_total
    if total <= 0:
        return 0.0
    return (after.cpu_busy - before.cpu_busy) / total * after.cpus * 100.0


def measure(settings: Settings, record: ContainerRecord, interval: float = 1.0) -> tuple[Sample, float]:
    """(a fresh sample, CPU % over `interval` seconds before it)."""
    first = sample(settings, record)
    time.sleep(interval)
    second = sample(settings, record)
    return second, cpu_percent(first, second)
