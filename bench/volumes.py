"""Bind-mount I/O: sequential write and read throughput and small-file metadata operations (create,
stat, unlink N files) inside a container VM on a ``-v`` bind mount (virtio-fs), against the same
workload on the host directly, in one invocation; ratios and the virtiofsd cache mode are printed.

    .venv/bin/python -m bench.volumes [--size-mib 64] [--files 10000]

The workload is one busybox shell script (bench/volumes.py's WORKLOAD) run by the SAME static busybox
on both sides (the image's /bin/busybox), timing each phase with /proc/uptime. It also runs in the VM
on a guest tmpfs: VM-bind / VM-tmpfs isolates what virtio-fs costs from what emulating the guest CPU
costs (under TCG the shell loops themselves are emulated). Reads come from the host page cache on
both sides (the guest drops its own cache first), so the read ratio is the virtio-fs path itself.

Numbers from this machine are TCG emulation on a 2-core host that other work also loads: compare
ratios from one invocation, not absolute times across invocations.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.setup import RUN_TIMEOUT, bench_root

#: One phase per line on stdout: "<phase> <seconds>". $1 = directory, $2 = MiB, $3 = file count.
WORKLOAD = r"""
set -e
now() { read up _ < /proc/uptime; echo "$up"; }
lap() { end=$(now); echo "$1 $(awk "BEGIN{print $end - $start}")"; start=$(now); }
d=$1; mib=$2; n=$3
start=$(now)
dd if=/dev/zero of="$d/big" bs=1048576 count="$mib" 2>/dev/null; sync
lap write
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
start=$(now)
dd if="$d/big" of=/dev/null bs=1048576 2>/dev/null
lap read
rm -f "$d/big"; mkdir "$d/m"; start=$(now)
i=0; while [ $i -lt "$n" ]; do : > "$d/m/f$i"; i=$((i+1)); done
lap create
ls -l "$d/m" > /dev/null
lap stat
rm -r "$d/m"
lap unlink
"""


def parse_phases(out: str) -> dict[str, float]:
    """``{"write": s, ...}`` from the workload's output."""
    return {name: float(value) for name, value in (line.split() for line in out.splitlines() if line.strip())}


def cache_mode() -> str:
    """The ``cache=`` option katadocker gives virtiofsd (vm/virtiofsd.py)."""
    from katadocker.vm.virtiofsd import Virtiofsd

    argv = Virtiofsd(Path("/"), Path("/x.sock"), Path("/x.log"), binary=Path("virtiofsd")).command(3)
    return next(a.split("=", 1)[1] for a in argv if a.startswith("cache="))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=64, help="sequential file size (MiB)")
    parser.add_argument("--files", type=int, default=10000, help="small files to create/stat/unlink")
    args = parser.parse_args(argv)
    params = [str(args.size_mib), str(args.files)]
    with bench_root("kd-bench-vol-", podman=False) as bench, tempfile.TemporaryDirectory(
            prefix="kd-bench-bind-") as host_dir:
        script = Path(host_dir) / "workload.sh"
        script.write_text(WORKLOAD)
        data = Path(host_dir) / "data"
        data.mkdir()
        run = ["run", "--rm", "--network", "none", "-v", f"{host_dir}:/b"]
        vm_bind = bench.run(*run, bench.image, "sh", "/b/workload.sh", "/b/data", *params)
        vm_tmpfs = bench.run(*run, "--tmpfs", "/t:size=1g", bench.image, "sh", "/b/workload.sh", "/t",
                             *params)
        busybox = _image_busybox(bench)
        host = subprocess.run([busybox, "sh", str(script), str(data), *params], capture_output=True,
                              text=True, check=True, timeout=RUN_TIMEOUT)
    results = {k: parse_phases(p.stdout) for k, p in
               (("vm-bind", vm_bind), ("vm-tmpfs", vm_tmpfs), ("host", host))}
    print(f"virtiofsd cache mode: {cache_mode()}; {args.size_mib} MiB sequential, {args.files} files")
    for phase in ("write", "read", "create", "stat", "unlink"):
        b, t, h = (results[k][phase] for k in ("vm-bind", "vm-tmpfs", "host"))
        rate = f" ({args.size_mib / b:.0f} MiB/s in the VM, {args.size_mib / max(h, 0.01):.0f} on the host)" \
            if phase in ("write", "read") else ""
        print(f"{phase}: vm bind {b:.2f} s, vm tmpfs {t:.2f} s, host {h:.2f} s; "
              f"vm-bind/host {b / max(h, 0.01):.1f}, vm-bind/vm-tmpfs {b / max(t, 0.01):.1f}{rate}")
    return 0


def _image_busybox(bench) -> str:  # noqa: ANN001 - bench.setup.Bench
    """The image's static busybox, copied out of the image's layer store (the host's may differ)."""
    for layer in (bench.root / "layers").glob("*/fs/bin/busybox"):
        if os.access(layer, os.X_OK):
            return str(layer)
    sys.exit("busybox not found in the bench image's layers")


if __name__ == "__main__":
    sys.exit(main())
