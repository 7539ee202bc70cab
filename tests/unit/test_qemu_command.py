"""The QEMU command builder and the accelerator rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from katadocker.errors import InvalidArgument, VMError
from katadocker.vm.accel import choose_accelerator
from katadocker.vm.qemu import (
    HOTPLUG_SLOTS,
    KERNEL_CMDLINE,
    TCG_TB_SIZE_MIB,
    Share,
    VMSpec,
    check_hotplug_devices,
    nic_commands,
    qemu_command,
    share_commands,
    slot_address,
)


def spec(**kw: object) -> VMSpec:
    base: dict[str, object] = dict(
        kernel=Path("/k/vmlinuz"), initramfs=Path("/k/initrd.cpio"), accel="tcg",
        agent_socket=Path("/run/x/agent.sock"), console_log=Path("/run/x/console.log"),
        qmp_socket=Path("/run/x/qmp.sock"), firmware=None,
    )
    base.update(kw)
    return VMSpec(**base)  # type: ignore[arg-type]


def value(argv: list[str], flag: str) -> list[str]:
    """Every value given to `flag` in argv."""
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_basic_tcg_command() -> None:
    argv = qemu_command(spec(memory_mib=256), qemu="qemu")
    assert argv[0] == "qemu"
    for flag in ("-nodefaults", "-no-user-config", "-nographic", "-no-reboot"):
        assert flag in argv
    assert value(argv, "-machine")[0].startswith("q35,memory-backend=mem")
    assert value(argv, "-accel") == [f"tcg,thread=single,tb-size={TCG_TB_SIZE_MIB}"]
    assert value(argv, "-m") == ["256M"]
    assert "memory-backend-memfd,id=mem,size=256M,share=on" in value(argv, "-object")
    assert value(argv, "-kernel") == ["/k/vmlinuz"]
    assert value(argv, "-initrd") == ["/k/initrd.cpio"]
    assert value(argv, "-append") == [" ".join(KERNEL_CMDLINE)]
    assert "file,id=console,path=/run/x/console.log" in value(argv, "-chardev")
    assert value(argv, "-serial") == ["chardev:console"]
    assert value(argv, "-qmp") == ["unix:/run/x/qmp.sock,server=on,wait=off"]
    assert "-netdev" not in argv and "-bios" not in argv


def test_agent_port_is_the_agreed_virtio_serial_port() -> None:
    argv = qemu_command(spec(), qemu="qemu")
    assert "virtio-serial-pci,id=vser0" in value(argv, "-device")
    assert "socket,id=agent,path=/run/x/agent.sock,server=on,wait=off" in value(argv, "-chardev")
    assert "virtserialport,bus=vser0.0,chardev=agent,name=org.katadocker.agent" in value(argv, "-device")


def test_hotplug_slots_are_a_pci_bridge_that_also_holds_the_agent_link() -> None:
    devices = value(qemu_command(spec(), qemu="qemu"), "-device")
    assert not [d for d in devices if "bridge" in d]
    assert "virtio-serial-pci,id=vser0" in devices
    devices = value(qemu_command(spec(hotplug=True), qemu="qemu"), "-device")
    # the bridge comes first: the agent's virtio-serial sits in its last slot, so that the guest
    # gives the bridge memory windows at boot, where a device hot-added later finds room
    assert devices.index("pcie-pci-bridge,id=hotplug") < devices.index(
        "virtio-serial-pci,id=vser0,bus=hotplug,addr=0x1f,disable-legacy=on")
    assert "vhost-user-fs" not in " ".join(devices)
    assert slot_address(0) == {"bus": "hotplug", "addr": "0x0"}
    assert slot_address(HOTPLUG_SLOTS - 1) == {"bus": "hotplug", "addr": "0x1e"}


def test_more_devices_than_the_bridge_has_slots_for_is_an_error() -> None:
    check_hotplug_devices(HOTPLUG_SLOTS)
    with pytest.raises(VMError, match=r"at most 31 hot-added devices, not 32 \(a container's root"):
        check_hotplug_devices(HOTPLUG_SLOTS + 1)


def test_a_share_is_hot_added_as_a_vhost_user_fs_device_into_its_slot() -> None:
    (chardev, args), (device, dev) = share_commands(Share("vol1", Path("/r/fs1.sock")), 1)
    assert chardev == "chardev-add" and args["id"] == "fs1"
    assert args["backend"] == {"type": "socket", "data": {
        "addr": {"type": "unix", "data": {"path": "/r/fs1.sock"}}, "server": False}}
    assert device == "device_add"
    assert dev == {"driver": "vhost-user-fs-pci", "id": "fsdev1", "bus": "hotplug", "addr": "0x1",
                   "chardev": "fs1", "tag": "vol1", "queue-size": 1024}


def test_a_nic_is_hot_added_on_a_passed_tap_descriptor() -> None:
    (netdev, args), (device, dev) = nic_commands("tap0", "02:42:ac:11:00:02", 2)
    assert (netdev, args) == ("netdev_add", {"type": "tap", "id": "net0", "fd": "tap0"})
    assert (device, dev) == ("device_add", {"driver": "virtio-net-pci", "id": "nic0", "netdev": "net0",
                                            "mac": "02:42:ac:11:00:02", "bus": "hotplug",
                                            "addr": "0x2", "disable-legacy": "on", "romfile": ""})


def test_cpus_and_kvm() -> None:
    argv = qemu_command(spec(cpus=2, accel="kvm", cmdline_extra=("katadocker.debug=1",),
                             firmware=Path("/fw/qboot.rom")), qemu="qemu")
    assert value(argv, "-smp") == ["2"]
    assert value(argv, "-accel") == ["kvm"] and value(argv, "-cpu") == ["host"]
    assert value(argv, "-bios") == ["/fw/qboot.rom"]
    assert value(argv, "-append")[0].endswith(" katadocker.debug=1")
    multi = qemu_command(spec(cpus=2), qemu="qemu")
    assert value(multi, "-accel") == [f"tcg,thread=multi,tb-size={TCG_TB_SIZE_MIB}"]


def test_rejects_too_little_memory_and_unknown_accel() -> None:
    with pytest.raises(VMError, match="minimum"):
        qemu_command(spec(memory_mib=64), qemu="qemu")
    with pytest.raises(VMError, match="accelerator"):
        qemu_command(spec(accel="hvf"), qemu="qemu")


def test_kernel_cmdline_essentials() -> None:
    assert "console=ttyS0" in KERNEL_CMDLINE
    assert "panic=-1" in KERNEL_CMDLINE  # with -no-reboot, a panic ends QEMU instead of hanging


# ---- accelerator rule ---------------------------------------------------------------------------


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    p = tmp_path / "cpuinfo"
    p.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu {flags}\n")
    return p


def test_kvm_needs_vmx_or_svm_and_an_openable_device(tmp_path: Path) -> None:
    dev = tmp_path / "kvm"
    dev.write_text("")
    assert choose_accelerator({}, cpuinfo(tmp_path, "vmx"), dev).name == "kvm"
    assert choose_accelerator({}, cpuinfo(tmp_path, "svm"), dev).name == "kvm"
    no_flags = choose_accelerator({}, cpuinfo(tmp_path, "hypervisor"), dev)
    assert no_flags.name == "tcg" and no_flags.fallback
    assert no_flags.notice and "\n" not in no_flags.notice and "TCG" in no_flags.notice
    no_dev = choose_accelerator({}, cpuinfo(tmp_path, "vmx"), tmp_path / "missing")
    assert no_dev.name == "tcg" and "missing" in no_dev.reason


def test_env_forces_the_accelerator(tmp_path: Path) -> None:
    forced = choose_accelerator({"KATADOCKER_ACCEL": "kvm"}, cpuinfo(tmp_path, ""), tmp_path / "missing")
    assert forced.name == "kvm" and forced.notice is None
    assert choose_accelerator({"KATADOCKER_ACCEL": "TCG"}, cpuinfo(tmp_path, "vmx"), tmp_path).name == "tcg"
    with pytest.raises(InvalidArgument):
        choose_accelerator({"KATADOCKER_ACCEL": "hvf"})


def test_this_host_picks_tcg_without_vmx() -> None:
    words = Path("/proc/cpuinfo").read_text().split()
    if "vmx" in words or "svm" in words:
        pytest.skip("this host has hardware virtualization")
    assert choose_accelerator({}).name == "tcg"
