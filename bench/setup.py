"""The set-up every VM benchmark shares: a registry on loopback serving a test image
(tests/support/images.py), a scratch state root with the image pulled and tagged, optionally the
guest assets built and the image loaded into a private podman storage, and the clean-up of every
container, network, mount and podman container left when the benchmark ends (also on SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: The code of the ``katadocker`` script pip installs, run with ``python -c`` so that the code base
#: in the working directory is the one timed (as with ``-m``) without runpy's ~8 ms, which a user's
#: ``katadocker`` does not pay.
ENTRY_POINT = "import sys; from katadocker.cli.entry import main; sys.exit(main())"

#: Every wait on a VM or a CLI call is bounded (a TCG guest on two busy cores can hang for minutes).
RUN_TIMEOUT = 180.0


@dataclass
class Bench:
    """A state root with the benchmark's image pulled (and tagged `image`)."""

    work: Path
    root: Path
    image: str = "busybox:latest"
    podman: list[str] | None = None  # podman argv prefix with a private storage, when installed
    env: dict[str, str] = field(default_factory=dict)

    def katadocker(self, *args: str) -> list[str]:
        return [sys.executable, "-c", ENTRY_POINT, "--root", str(self.root), *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A katadocker command with its output captured (bounded by RUN_TIMEOUT)."""
        return subprocess.run(self.katadocker(*args), env=self.env, capture_output=True, text=True,
                              check=check, timeout=RUN_TIMEOUT)

    def settings(self):  # noqa: ANN201 - katadocker.config.Settings, imported lazily
        from katadocker.config import load_settings

        return load_settings(str(self.root))

    def assets(self):  # noqa: ANN201 - katadocker.vm.assets.GuestAssets
        from katadocker.vm.assets import ensure_assets

        return ensure_assets(self.settings())


@contextlib.contextmanager
def served_image(work: Path, image: str) -> Iterator[str]:
    """A registry on loopback (data under `work`) serving the test image `image` ("busybox" or
    "nginx"); yields its reference there and stops the registry on exit."""
    from tests.support import images
    from tests.support.registry import start_registry

    layouts = {"busybox": images.busybox_layout, "nginx": images.nginx_layout}
    registry = start_registry(work / "registry")
    try:
        layouts[image](work / "layout")
        ref = f"{registry.host}/library/{image}:latest"
        images.push(work / "layout", ref)
        yield ref
    finally:
        registry.stop()


#: The guest kernels a benchmark can run on (`--kernel`): katadocker's own (`system build-kernel`,
#: a copy of the machine's cached build, compiled first if there is none), or Debian's cloud kernel.
KERNELS = ("katadocker", "debian")


def add_kernel_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", choices=KERNELS, default=KERNELS[0],
                        help="guest kernel: katadocker's own build (default) or Debian's cloud kernel")


@contextlib.contextmanager
def bench_root(prefix: str, image: str = "busybox", *, podman: bool = True, warm: bool = True,
               podman_timeout: float = RUN_TIMEOUT, kernel: str = KERNELS[0]) -> Iterator[Bench]:
    """A fresh state root (temp dir named `prefix`…) holding the test image `image` as
    ``<image>:latest`` and the guest `kernel` (one of KERNELS); with `warm`, one ``run --rm`` has
    built the other guest assets and warmed the page cache; with `podman` (and podman + runc
    installed), the image is also in a private podman storage. Everything is cleaned up and removed
    on exit."""
    # a `timeout`/SIGTERM unwinds like Ctrl-C, so every VM and container below is cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        work = Path(tmp)
        bench = Bench(work, work / "root", f"{image}:latest",
                      env={**os.environ, "KATADOCKER_CONFIG": "/nonexistent"})
        try:
            with served_image(work, image) as ref:
                bench.run("pull", "-q", ref)
            bench.run("tag", ref, bench.image)
            if kernel == "katadocker":
                bench.run("system", "build-kernel")
            if warm:
                print("building guest assets (once) ...", file=sys.stderr, flush=True)
                bench.run("run", "--rm", bench.image, "true")  # builds assets, warms the page cache
            if podman and shutil.which("podman") and Path("/usr/sbin/runc").exists():
                bench.podman = ["podman", "--root", str(work / "podman/root"), "--runroot",
                                str(work / "podman/run"), "--runtime", "/usr/sbin/runc",
                                "--cgroup-manager", "cgroupfs"]
                bench.run("save", "-o", str(work / f"{image}.tar"), bench.image)
                subprocess.run([*bench.podman, "load", "-q", "-i", str(work / f"{image}.tar")], check=True,
                               capture_output=True, timeout=podman_timeout)
            yield bench
        finally:
            cleanup(bench)


def cleanup(bench: Bench) -> None:
    """Remove every katadocker container (and podman container) left in the bench's roots, tear down
    its networks, and unmount anything still mounted under the work dir, so the temp dir can be
    deleted."""
    from katadocker.network.networks import teardown_all

    ids = bench.run("ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        bench.run("rm", "-f", *ids, check=False)
    if bench.root.exists():
        teardown_all(bench.settings())
    if bench.podman:
        subprocess.run([*bench.podman, "rm", "-af"], capture_output=True, timeout=RUN_TIMEOUT)
        subprocess.run([*bench.podman, "system", "reset", "-f"], capture_output=True, timeout=RUN_TIMEOUT)
    for line in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        target = line.split()[1].replace("\\040", " ")
        if target.startswith(str(bench.work) + "/"):
            subprocess.run(["umount", "-l", target], capture_output=True)
