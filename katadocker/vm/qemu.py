"""The one QEMU command builder: `VMSpec` in, argv out. Every flag says why it is there.

The VM is a q35 PC booted straight into the kernel + initramfs (no firmware boot menu, no disks):
guest RAM is a shared memfd (virtio-fs maps it from virtiofsd), the agent talks over one
virtio-serial port, the guest console goes to a file (read back when a boot fails) and QMP is a unix
socket for control. Nothing else: no display, no default devices.

The container's own devices (its root and any extra shares as vhost-user-fs devices, its NIC) are
not on the command line: they are hot-added over QMP (`share_commands`, `nic_commands`) into the
free slots of the PCI bridge the VM boots with (`VMSpec.hotplug`). That lets QEMU start
booting before the container exists (vm/early.py): the kernel's boot, seconds under TCG, then
overlaps the CLI creating the container. Added before the guest scans its PCI buses (the usual
case), a device is simply found by that scan; added later, the guest's ACPI PCI hotplug picks it up
and the agent waits for it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katadocker.errors import VMError

#: The agent's virtio-serial port name (agreed with katadocker/guest/agent.c).
AGENT_PORT_NAME = "org.katadocker.agent"
#: The virtio-fs tag of the container's root filesystem (agreed with the agent).
ROOTFS_TAG = "rootfs"
#: Guest RAM when the user gives no --memory. Untouched guest pages cost the host nothing (memfd pages
#: are allocated on first touch), but the guest kernel's page array costs ~1.6% of it up front.
DEFAULT_MEMORY_MIB = 512
#: Smallest guest RAM that boots the kernel, initramfs and a shell comfortably.
MIN_MEMORY_MIB = 128
#: TCG translation cache (MiB). QEMU 7.2 defaults to 1 GiB, which a long-lived guest fills with
#: translations and keeps resident; a full cache is flushed and everything the guest runs next is
#: translated again. Measured here with katadocker's kernel (QMP `info jit`, bench/README.md):
#: booting to the end of `run busybox true` generates 31.5 MB of host code, to a running nginx
#: 39.2 MB. At 16 (the value before) the cache flushed twice before the container process ran,
#: and retranslating cost `run` ~0.2 s; at 48 neither flushes. Memory: QEMU touches only the
#: part it filled, so an idle busybox container costs ~103 MiB of host PSS instead of ~84 (the
#: target is 128), and a busy one at most 48 MiB of translations.
TCG_TB_SIZE_MIB = 48
#: qboot: a minimal firmware that only loads the kernel (Debian: qemu-system-data). Measured here under
#: TCG it reaches the guest agent ~0.15 s sooner than SeaBIOS; SeaBIOS (QEMU's default) when absent.
QBOOT_PATHS = (Path("/usr/share/qemu/qboot.rom"), Path("/usr/share/qboot/bios.bin"))
#: QEMU's id of the PCI bridge whose slots take the hot-added devices (see `qemu_command`).
HOTPLUG_BUS = "hotplug"
#: Hotplug slots of that bridge: a PCI bus's 32 device numbers but the last, where the agent's
#: virtio-serial sits.
HOTPLUG_SLOTS = 31

#: The guest kernel command line; one argument per line, each with its reason.
KERNEL_CMDLINE: tuple[str, ...] = (
    "console=ttyS0",            # kernel messages to the first serial port, i.e. the console log file
    "loglevel=4",               # warnings and worse only: each console byte is a trapped port write under TCG
    "8250.nr_uarts=1",          # register one UART (ttyS0) instead of probing four
    "panic=-1",                 # reboot at once on a panic; with -no-reboot that ends QEMU instead of hanging
    "reboot=t",                 # reboot (panic) by triple fault: needs no ACPI or keyboard controller
    "tsc=reliable",             # trust the TSC: no clocksource watchdog; cheap clock reads, not port I/O
    "no_timer_check",           # skip the IO-APIC timer sanity check (slow and pointless on emulated timers)
    "i8042.noaux",              # no PS/2 mouse probing (the keyboard controller is only used for resets)
    "cryptomgr.notests",        # skip crypto self-tests at boot: seconds of pure computation under TCG
    "init_on_alloc=0",          # don't zero every kernel page/slab allocation (Debian turns it on): pure
                                # memset under TCG; bare boot 3.04 -> 2.83 s, agent VM to process started
                                # 4.97 -> 4.50 s (medians, loaded host); a hardening within the guest,
                                # which is one trust domain with its container (as mitigations=off)
    "rcupdate.rcu_expedited=1", # expedited RCU grace periods: fewer waits during boot and module loading
    "nowatchdog",               # no soft-lockup watchdog: an emulated guest on a busy host is often "stuck"
    "mitigations=off",          # no speculative-execution mitigations: the VM boundary is the isolation,
                                # guest kernel and container share one trust domain
    "pci=lastbus=0",            # no peer host bridges: don't probe buses 1-255 for them (the bus
                                # behind the hotplug bridge is found through the bridge)
    # interfaces created from here on start IPv4 only, as docker's eth0 without --ipv6 (lo, made
    # earlier, keeps ::1): the agent's disable_ipv6 write on eth0 is then a no-op instead of ~5-15 ms
    # of the guest tearing down IPv6 on a live interface, unless the NIC was probed before this applied
    "sysctl.net.ipv6.conf.default.disable_ipv6=1",
)  # fmt: skip


def find_qboot() -> Path | None:
    """The qboot firmware if installed, else None (QEMU then uses SeaBIOS)."""
    return next((p for p in QBOOT_PATHS if p.is_file()), None)


@dataclass(frozen=True)
class Share:
    """A virtio-fs share: the guest mounts it by `tag`; virtiofsd listens on `socket`."""

    tag: str
    socket: Path


@dataclass(frozen=True)
class VMSpec:
    """Everything that shapes one VM. Paths of sockets and logs are created by QEMU (sockets) or the
    caller (directories); the socket paths must fit a unix socket address (< 108 bytes)."""

    kernel: Path
    initramfs: Path
    accel: str  # "kvm" | "tcg"
    agent_socket: Path
    console_log: Path
    qmp_socket: Path
    memory_mib: int = DEFAULT_MEMORY_MIB
    cpus: int = 1
    #: boots with the hotplug bridge: `HOTPLUG_SLOTS` free slots for the devices hot-added later
    #: (`share_commands`, `nic_commands`)
    hotplug: bool = False
    cmdline_extra: tuple[str, ...] = ()
    #: guest RAM is the memfd its starter passes as this descriptor (a template VM: vm/template.py
    #: copies RAM into it); None: QEMU makes its own
    memory_fd: int | None = None
    #: QEMU waits for a saved VM's state (QMP migrate-incoming) instead of booting (vm/template.py)
    incoming: bool = False
    name: str = "katadocker"
    #: firmware image (-bios); None: QEMU's default SeaBIOS
    firmware: Path | None = field(default_factory=find_qboot)


def find_qemu() -> str:
    """Path of qemu-system-x86_64; VMError when it is not installed."""
    found = shutil.which("qemu-system-x86_64")
    if not found:
        raise VMError("qemu-system-x86_64 not found", detail="install QEMU (Debian: qemu-system-x86)")
    return found


def kernel_cmdline(spec: VMSpec) -> str:
    """The guest kernel command line: `KERNEL_CMDLINE` plus the spec's extras."""
    return " ".join((*KERNEL_CMDLINE, *spec.cmdline_extra))


def _accel_args(spec: VMSpec) -> list[str]:
    if spec.accel == "kvm":
        return [
            "-accel", "kvm",    # hardware virtualization
            "-cpu", "host",     # pass the host CPU's features through: fastest, and the guest is ours
        ]  # fmt: skip
    if spec.accel != "tcg":
        raise VMError(f"unknown accelerator {spec.accel!r}")
    threads = "multi" if spec.cpus > 1 else "single"
    return [
        # one host thread per vCPU only when there are several vCPUs (MTTCG); tb-size caps the
        # translation cache (see TCG_TB_SIZE_MIB)
        "-accel", f"tcg,thread={threads},tb-size={TCG_TB_SIZE_MIB}",
        "-cpu", "max",          # every feature TCG emulates (cmpxchg16b, sse4, rdrand: the kernel wants them)
    ]  # fmt: skip


def qemu_command(spec: VMSpec, qemu: str | None = None) -> list[str]:
    """The full QEMU argv for `spec` (`qemu` defaults to the installed qemu-system-x86_64)."""
    if spec.memory_mib < MIN_MEMORY_MIB:
        raise VMError(f"guest memory {spec.memory_mib} MiB is below the minimum of {MIN_MEMORY_MIB} MiB")
    argv = [
        qemu or find_qemu(),
        "-name", spec.name,                     # shows in QMP and in error messages
        "-no-user-config",                      # ignore any host-wide qemu config file: same VM everywhere
        "-nodefaults",                          # no default NIC, VGA, floppy, CD-ROM, serial or monitor
        "-nographic",                           # no display window
        "-no-reboot",                           # a guest reboot (panic, triple fault) ends QEMU
        # q35: PCIe machine that vhost-user-fs-pci works on (microvm + the mmio variant hung here);
        # RAM from the memfd below; drop the legacy devices the guest never uses
        "-machine", "q35,memory-backend=mem,vmport=off,smbus=off,sata=off,usb=off,hpet=off",
        *_accel_args(spec),
        *(["-bios", str(spec.firmware)] if spec.firmware else []),  # see QBOOT_PATHS
        "-smp", str(spec.cpus),
        "-m", f"{spec.memory_mib}M",
        # guest RAM as a shared memfd: virtiofsd maps guest memory to serve virtio-fs requests; the
        # starter's own memfd when it is to fill it (share=on either way)
        "-object", f"memory-backend-memfd,id=mem,size={spec.memory_mib}M,share=on" if spec.memory_fd is None
        else f"memory-backend-file,id=mem,size={spec.memory_mib}M,share=on,"
             f"mem-path=/proc/self/fd/{spec.memory_fd}",
        "-kernel", str(spec.kernel),            # direct kernel boot: no bootloader, no disk
        "-initrd", str(spec.initramfs),         # the agent and its modules
        "-append", kernel_cmdline(spec),
        # guest console (ttyS0) into a file: read back for the error when a boot fails
        "-chardev", f"file,id=console,path={spec.console_log}",
        "-serial", "chardev:console",
        # QMP control socket (quit, powerdown); QEMU listens, and doesn't wait for a client
        "-qmp", f"unix:{spec.qmp_socket},server=on,wait=off",
        # the hotplug slots: a PCIe-to-PCI bridge, whose slots QEMU's ACPI hotplug serves (q35's root
        # bus itself takes no hotplug). One bridge for all of a container's devices has room for its
        # mounts too, so an early VM (vm/early.py) fits a container with volumes; the PCIe root
        # port per device used before gave it two. The guest boots as fast either way (bench/README.md)
        *(["-device", f"pcie-pci-bridge,id={HOTPLUG_BUS}"] if spec.hotplug else []),
        # the agent link: one virtio-serial port; QEMU listens so the host can connect any time. With
        # hotplug slots it sits in the bridge's last slot: the guest sizes a bridge's memory windows
        # at boot for the devices behind it and gives an empty bridge none, so a device hot-added
        # after the guest's boot would find no room for its BARs (and no driver). There, as every
        # virtio device on the bridge, it is modern (virtio 1.x) only, as on a PCIe bus: on the
        # bridge's conventional PCI bus it would also offer the legacy interface, an I/O BAR the
        # guest's driver never uses
        "-device", "virtio-serial-pci,id=vser0" + (
            f",bus={HOTPLUG_BUS},addr={HOTPLUG_SLOTS:#x},disable-legacy=on" if spec.hotplug else ""),
        "-chardev", f"socket,id=agent,path={spec.agent_socket},server=on,wait=off",
        "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT_NAME}",
        # free page reporting: the guest (virtio_balloon module) hands free 2 MiB blocks back and QEMU
        # punches them out of the memfd, so RAM the guest touched once (kernel decompression, the
        # unpacked initramfs) stops costing the host: an idle busybox VM's guest RAM 113 -> 92 MiB
        "-device", "virtio-balloon-pci,free-page-reporting=on",
        # a VM restored from a template: set up the machine, then wait (paused) for its saved state
        *(["-incoming", "defer"] if spec.incoming else []),
    ]  # fmt: skip
    return argv


def check_hotplug_devices(count: int) -> None:
    """VMError unless `count` devices fit the hotplug bridge's slots (`HOTPLUG_SLOTS`)."""
    if count > HOTPLUG_SLOTS:
        raise VMError(f"a VM takes at most {HOTPLUG_SLOTS} hot-added devices, not {count} (a container's "
                      "root, its network interface, one per volume or bind mount)")


def slot_address(slot: int) -> dict[str, str]:
    """QEMU's device_add placement of hotplug slot number `slot`: the bridge and a device number."""
    return {"bus": HOTPLUG_BUS, "addr": f"{slot:#x}"}


#: One QMP command: (name, arguments).
QMPCommand = tuple[str, dict[str, Any]]


def share_commands(share: Share, slot: int) -> list[QMPCommand]:
    """The QMP commands that hot-add `share` as a virtio-fs device into hotplug slot `slot`."""
    chardev = f"fs{slot}"
    return [
        # virtiofsd's vhost-user socket (virtiofsd listens, QEMU connects)
        ("chardev-add", {"id": chardev, "backend": {"type": "socket", "data": {
            "addr": {"type": "unix", "data": {"path": str(share.socket)}}, "server": False}}}),
        # queue-size=1024: more requests in flight than the default 128 (parallel file I/O)
        ("device_add", {"driver": "vhost-user-fs-pci", "id": f"fsdev{slot}", **slot_address(slot),
                        "chardev": chardev, "tag": share.tag, "queue-size": 1024}),
    ]


def nic_commands(fd_name: str, mac: str, slot: int) -> list[QMPCommand]:
    """The QMP commands that hot-add a virtio NIC with `mac` into hotplug slot `slot`, backed by the
    TAP whose open descriptor was handed to QEMU as `fd_name` (QMP ``getfd``): the TAP lives in the
    network's namespace, which QEMU need not enter."""
    return [
        ("netdev_add", {"type": "tap", "id": "net0", "fd": fd_name}),
        # romfile="": no option ROM (iPXE network boot): the kernel is booted directly;
        # disable-legacy: modern only (see the agent link in qemu_command)
        ("device_add", {"driver": "virtio-net-pci", "id": "nic0", "netdev": "net0", "mac": mac,
                        **slot_address(slot), "disable-legacy": "on", "romfile": ""}),
    ]
