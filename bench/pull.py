"""Pull the nginx test image (a real Debian nginx-light root, ~140 MB unpacked, one 45 MB gzip layer)
from a registry on loopback with katadocker, with `skopeo copy docker://… dir:…` and with
`podman pull` (overlay storage), alternately, each into an empty target every round (cold caches on
the client side for all; the registry's page cache is warm for all). Prints the medians and the
ratios katadocker/skopeo and katadocker/podman (goal: <= 1.0).

skopeo's `dir:` only stores the compressed blobs; podman, like katadocker, also decompresses and
unpacks the layer into a directory tree, so katadocker/podman is the like-for-like ratio and
katadocker/skopeo an upper bound on the transfer overhead. Without podman that baseline is skipped.

    .venv/bin/python -m bench.pull [--rounds N] [--no-podman]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.setup import served_image
from bench.timing import compare_all, time_command


def podman_pull(work: Path, ref: str, n: int) -> float:
    """`podman pull` of `ref` into a private, empty overlay storage, initialized untimed first (podman
    probes the overlay driver's features when it creates a storage: not pull work); removed after."""
    root, runroot = work / f"podman-{n}", Path(f"/run/kdb-{os.getpid()}-{n}")  # runroot: short path
    prefix = ["podman", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "overlay"]
    try:
        subprocess.run([*prefix, "images", "-q"], check=True, capture_output=True, timeout=120)
        return time_command([*prefix, "pull", "--tls-verify=false", "-q", f"docker://{ref}"])
    finally:
        subprocess.run([*prefix, "system", "reset", "-f"], capture_output=True, timeout=120)
        for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
            target = line.split()[1]
            if target.startswith((f"{root}/", f"{runroot}/")):
                subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-podman", action="store_true", help="skip the podman baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kd-bench-pull-") as tmp:
        work = Path(tmp)
        with served_image(work, "nginx") as ref:
            counter = iter(range(10 * args.rounds))

            def katadocker() -> float:
                root = work / f"kd-{next(counter)}"
                env = {**os.environ, "KATADOCKER_ROOT": str(root), "KATADOCKER_CONFIG": "/nonexistent"}
                try:
                    return time_command([sys.executable, "-m", "katadocker", "pull", "-q", ref], env=env)
                finally:
                    shutil.rmtree(root, ignore_errors=True)

            def skopeo() -> float:
                dest = work / f"skopeo-{next(counter)}"
                try:
                    return time_command(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                         f"docker://{ref}", f"dir:{dest}"])
                finally:
                    shutil.rmtree(dest, ignore_errors=True)

            baselines: dict[str, Callable[[], float]] = {"skopeo copy": skopeo}
            if args.no_podman:
                pass
            elif shutil.which("podman"):
                baselines["podman pull"] = lambda: podman_pull(work, ref, next(counter))
            else:
                print("podman is not installed: the podman baseline is skipped", file=sys.stderr)
            compare_all("pull nginx", katadocker, baselines, args.rounds)


if __name__ == "__main__":
    main()
