"""Choosing QEMU's accelerator: KVM where the CPU can virtualize, TCG emulation elsewhere.

The rule (brief, decision 5): KVM only when ``/proc/cpuinfo`` lists ``vmx`` (Intel VT-x) or ``svm``
(AMD-V) *and* ``/dev/kvm`` opens read-write. A ``/dev/kvm`` without those flags exists on some nested
or paravirtual hosts (``kvm_pvm``) and cannot run a stock guest kernel, so the flag test comes first.
``KATADOCKER_ACCEL=kvm|tcg`` overrides the rule (no checks: the user asked for it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from katadocker.errors import InvalidArgument

ACCEL_ENV = "KATADOCKER_ACCEL"
AccelName = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class Accel:
    """The accelerator QEMU runs with, and why it was chosen (shown by ``katadocker info``)."""

    name: AccelName
    reason: str
    #: True when TCG was picked because KVM is unusable (not because the user asked for it).
    fallback: bool = False

    @property
    def notice(self) -> str | None:
        """One line to show the user when katadocker fell back to emulation, else None."""
        if not self.fallback:
            return None
        return f"katadocker: {self.reason}; running VMs under TCG emulation (slower)"


def cpu_virt_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The hardware-virtualization flags (``vmx``, ``svm``) the host CPU advertises."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags & {"vmx", "svm"}


def kvm_usable(device: Path = Path("/dev/kvm")) -> str | None:
    """None when `device` opens read-write, else why it does not (for the reason text)."""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"{device}: {e.strerror}"
    os.close(fd)
    return None


def choose_accelerator(
    env: Mapping[str, str] = os.environ,
    cpuinfo: Path = Path("/proc/cpuinfo"),
    kvm_device: Path = Path("/dev/kvm"),
) -> Accel:
    """Apply the accelerator rule; raises InvalidArgument for a bad ``KATADOCKER_ACCEL``."""
    forced = env.get(ACCEL_ENV, "").strip().lower()
    if forced:
        if forced not in ("kvm", "tcg"):
            raise InvalidArgument(f"invalid {ACCEL_ENV}={forced!r}: expected 'kvm' or 'tcg'")
        return Accel(forced, f"{ACCEL_ENV}={forced}")  # type: ignore[arg-type]
    flags = cpu_virt_flags(cpuinfo)
    if not flags:
        return Accel("tcg", "no hardware virtualization (vmx/svm) in /proc/cpuinfo", fallback=True)
    problem = kvm_usable(kvm_device)
    if problem:
        return Accel("tcg", f"KVM unavailable ({problem})", fallback=True)
    return Accel("kvm", f"CPU has {'/'.join(sorted(flags))} and {kvm_device} is usable")
