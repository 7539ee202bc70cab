"""Host memory per idle container: the PSS (proportional set size, /proc/<pid>/smaps_rollup) of the
container's monitor + QEMU + virtiofsd, for one idle `katadocker run -d busybox sleep 1000` and as
the per-container average of 10 (issue 3's target: under 128 MiB each).

    .venv/bin/python -m bench.memory [--containers 10] [--settle S]
    .venv/bin/python -m bench.memory --matrix [--rounds 3] [--settle S]

PSS splits each shared page among the processes mapping it, so summing it over every container's
processes never counts a page twice (the python/QEMU binaries and libraries are shared by all
containers). Guest RAM is counted apart, as the pages its memfd holds (`guest_ram`), whether a
process maps them or not: a VM restored from a template VM (vm/template.py) has the template's RAM
copied into its memfd by `sendfile`, and those pages are in no page table until the guest touches
them, so PSS alone would not see them. Guest RAM the guest never touched costs nothing: the memfd's
pages are allocated on first touch (or copy).

`--matrix` measures the QEMU choices behind those numbers (vm/qemu.py) at the VM layer: the real
agent over a busybox root (bench.coldstart.AgentVM), one VM per variant, booted one after another
(order rotated each round), all measured after `--settle` seconds idle, medians over `--rounds`:
the TCG translation-buffer size (`-accel tcg,tb-size=N`) and the free-page-reporting balloon
(`virtio-balloon-pci,free-page-reporting=on`; the guest needs the virtio_balloon module), against
PSS of QEMU + virtiofsd and boot time (virtiofsd start -> container process started).

Numbers from this machine are TCG emulation on a 2-core host that other work also loads.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.coldstart import AgentVM, busybox_root
from bench.setup import Bench, add_kernel_option, bench_root

MIB = 1024 * 1024
#: How long an idle guest gets before it is measured: the guest's free page reporting runs 2 s
#: after pages are freed, and QEMU then punches the reported pages out of the memfd.
DEFAULT_SETTLE = 12.0
TARGET_MIB = 128


def is_memfd(name: str) -> bool:
    """Whether a mapping's or descriptor's name is a memfd's (guest RAM: vm/qemu.py)."""
    return name.startswith("/memfd:")


def pss_without_guest_ram(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps's Pss fields summed over every mapping but the memfds (bytes)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return out
    skip = False
    for line in text.splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:  # a mapping's header line
            skip = len(head) == 6 and is_memfd(head[5])
        elif not skip and line.startswith("Pss") and line.endswith("kB"):
            key, _, rest = line.partition(":")
            out[key] = out.get(key, 0) + int(rest.split()[0]) * 1024
    return out


def guest_ram(pid: int) -> int:
    """Bytes the memfds open in process `pid` (QEMU: guest RAM) hold, mapped or not."""
    seen, total = set(), 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if is_memfd(str(fd.readlink())):
                st = fd.stat()
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_blocks * 512
        except OSError:
            continue
    return total


def container_bytes(pids: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per process of a container ("monitor", "qemu", "virtiofsd") its Pss fields without guest RAM,
    and "guest RAM": {"Pss": the bytes QEMU's guest RAM memfd holds}."""
    out = {name: pss_without_guest_ram(pid) for name, pid in pids.items()}
    out["guest RAM"] = {"Pss": guest_ram(pids["qemu"])}
    return out


def pid_from_file(path: Path) -> int:
    """katadocker's pid files hold "<pid> <start time>"."""
    return int(path.read_text().split()[0])


def container_pids(bench: Bench, cid: str) -> dict[str, int]:
    """{"monitor": pid, "qemu": pid, "virtiofsd": pid} of a running container."""
    directory = next((bench.root / "containers").glob(cid + "*"))
    pids = {"monitor": pid_from_file(directory / "monitor.pid")}
    for name in ("qemu", "virtiofsd"):
        pids[name] = pid_from_file(directory / "pids" / name)
    return pids


def run_idle(bench: Bench) -> str:
    return bench.run("run", "-d", bench.image, "sleep", "1000").stdout.strip()


def containers(bench: Bench, count: int, settle: float) -> None:
    """One idle container measured per process, then `count` in all measured together."""
    started = [run_idle(bench)]
    time.sleep(settle)
    total = 0
    print("one idle container (busybox sleep 1000), host PSS (guest RAM: its memfd's pages):")
    for name, s in container_bytes(container_pids(bench, started[0])).items():
        total += s.get("Pss", 0)
        detail = ", ".join(f"{k.removeprefix('Pss_').lower()} {s.get(k, 0) / MIB:.1f}"
                           for k in ("Pss_Anon", "Pss_Shmem", "Pss_File") if k in s)
        print(f"  {name:<10} {s.get('Pss', 0) / MIB:7.1f} MiB" + (f"  ({detail})" if detail else ""))
    print(f"  {'total':<10} {total / MIB:7.1f} MiB")
    if count > 1:
        for _ in range(count - 1):
            started.append(run_idle(bench))
        time.sleep(settle)
        total = sum(s.get("Pss", 0) for cid in started
                    for s in container_bytes(container_pids(bench, cid)).values())
        avg = total / len(started) / MIB
        print(f"{len(started)} idle containers: {total / MIB:.1f} MiB in all, {avg:.1f} MiB per container "
              f"(target under {TARGET_MIB} MiB: {'met' if avg < TARGET_MIB else 'NOT met'})")
    bench.run("rm", "-f", *started, check=False)


# ---- the matrix of QEMU choices -----------------------------------------------------------------

BALLOON = "virtio-balloon-pci"


def with_tb_size(argv: list[str], mib: int | None) -> list[str]:
    """argv with the TCG translation buffer set to `mib` (None: QEMU's own default)."""
    out = list(argv)
    i = out.index("-accel") + 1
    opts = [o for o in out[i].split(",") if not o.startswith("tb-size=")]
    out[i] = ",".join(opts + ([f"tb-size={mib}"] if mib is not None else []))
    return out


def with_balloon(argv: list[str], on: bool) -> list[str]:
    """argv with (or without) the free-page-reporting balloon device."""
    out: list[str] = []
    skip = False
    for a in argv:  # drop any balloon the default command has
        if skip:
            skip = False
            if a.startswith(BALLOON):
                out.pop()
                continue
        skip = a == "-device"
        out.append(a)
    return out + (["-device", f"{BALLOON},free-page-reporting=on"] if on else [])


@dataclass(frozen=True)
class Variant:
    name: str
    tb_size: int | None  # MiB; None: QEMU's default
    balloon: bool
    memory_mib: int | None = None  # None: VMSpec's default

    def edit(self, argv: list[str]) -> list[str]:
        return with_balloon(with_tb_size(argv, self.tb_size), self.balloon)


VARIANTS = (
    Variant("tb-size QEMU default (1 GiB), no balloon", None, False),
    Variant("tb-size 64, no balloon", 64, False),
    Variant("tb-size 64, balloon", 64, True),
    Variant("tb-size 32, balloon", 32, True),
    Variant("tb-size 16, balloon", 16, True),
    Variant("tb-size 16, balloon, 256 MiB RAM", 16, True, 256),
)


@dataclass
class Sample:
    boot: list[float] = field(default_factory=list)
    pss: list[int] = field(default_factory=list)
    qemu_anon: list[int] = field(default_factory=list)
    guest_ram: list[int] = field(default_factory=list)


def balloon_initramfs(bench: Bench, out: Path) -> Path:
    """The assets' initramfs plus the virtio_balloon module (when the kernel has it as a module)."""
    from katadocker.vm.assets import ensure_agent
    from katadocker.vm.initramfs import GUEST_MODULES, build_initramfs, resolve_modules
    from katadocker.vm.kernel import find_kernel

    settings = bench.settings()
    agent = ensure_agent(settings.state.assets, None)
    kernel = find_kernel(settings, None)
    names = GUEST_MODULES if "virtio_balloon" in GUEST_MODULES else (*GUEST_MODULES, "virtio_balloon")
    modules = resolve_modules(kernel.modules_dir, names) if kernel.modules_dir else []
    return build_initramfs(agent, modules, out)


def matrix(bench: Bench, rounds: int, settle: float) -> None:
    assets = bench.assets()
    initramfs = balloon_initramfs(bench, bench.work / "balloon.cpio")
    results = {v: Sample() for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        vms: list[tuple[Variant, AgentVM, Path]] = []
        try:
            for i, variant in enumerate(order):
                work = bench.work / f"m{r}-{i}"
                vm = AgentVM(assets, busybox_root(work / "rootfs"), work / "vm",
                             initramfs=initramfs if variant.balloon else assets.initramfs,
                             memory_mib=variant.memory_mib, edit_argv=variant.edit)
                vms.append((variant, vm, work))
                vm.start(["sleep", "1000"])
                results[variant].boot.append(vm.marks[-1][1] - vm.marks[0][1])
            time.sleep(settle)
            for variant, vm, _ in vms:
                q = container_bytes({"qemu": vm.vm.pid, "virtiofsd": vm.fs.pid})
                results[variant].pss.append(sum(s.get("Pss", 0) for s in q.values()))
                results[variant].qemu_anon.append(q["qemu"].get("Pss_Anon", 0))
                results[variant].guest_ram.append(q["guest RAM"]["Pss"])
        finally:
            for _, vm, work in vms:
                vm.stop()
                shutil.rmtree(work, ignore_errors=True)
        print(f"round {r + 1}/{rounds} done", flush=True)
    print(f"QEMU + virtiofsd of one idle VM, {settle:.0f} s after start (median of {rounds}):")
    print(f"  {'variant':<44} {'PSS':>8} {'QEMU anon':>10} {'guest RAM':>10} {'boot':>8}")
    for v, s in results.items():
        med = {k: statistics.median(getattr(s, k)) for k in ("pss", "qemu_anon", "guest_ram", "boot")}
        print(f"  {v.name:<44} {med['pss'] / MIB:6.1f} M {med['qemu_anon'] / MIB:8.1f} M"
              f" {med['guest_ram'] / MIB:8.1f} M {med['boot']:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--settle", type=float, default=DEFAULT_SETTLE)
    parser.add_argument("--matrix", action="store_true", help="measure the QEMU choices instead")
    parser.add_argument("--rounds", type=int, default=3)
    add_kernel_option(parser)
    opts = parser.parse_args()
    with bench_root("kd-bench-memory-", podman=False, kernel=opts.kernel) as bench:
        if opts.matrix:
            matrix(bench, opts.rounds, opts.settle)
        else:
            containers(bench, opts.containers, opts.settle)


if __name__ == "__main__":
    main()
