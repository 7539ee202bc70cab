"""Finding the guest kernel, in the brief's order (decision 6):

1. explicit configuration: ``KATADOCKER_KERNEL`` or ``"kernel"`` in katadocker's config file (a bzImage
   path; modules from ``KATADOCKER_KERNEL_MODULES`` / ``"kernel-modules"``, else the host's
   ``/lib/modules/<version>`` if it exists, else none: virtio must then be built in);
2. a kernel katadocker built for itself: ``<state>/assets/kernel/vmlinuz`` (+ optional
   ``<state>/assets/kernel/lib/modules/<version>/``);
3. Debian's ``linux-image-cloud-amd64``, fetched once with ``apt-get download`` and unpacked into
   ``<state>/assets/debian-kernel/<version>/{vmlinuz,lib/modules/<version>/}``;
4. the host's own kernel: ``/boot/vmlinuz-<version>`` with ``/lib/modules/<version>``.

Kernel versions are read from the bzImage header, so a file name never has to be trusted.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from katadocker.config import Settings
from katadocker.errors import VMError

KERNEL_ENV = "KATADOCKER_KERNEL"
KERNEL_MODULES_ENV = "KATADOCKER_KERNEL_MODULES"
#: Debian's metapackage that always depends on the current cloud kernel package.
DEBIAN_METAPACKAGE = "linux-image-cloud-amd64"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KernelChoice:
    """The guest kernel: its image, its modules directory (``.../lib/modules/<version>``, None when
    virtio is built in), its version, where it came from (config|katadocker|debian|host) and why."""

    vmlinuz: Path
    modules_dir: Path | None
    version: str
    source: str
    reason: str


def bzimage_version(path: Path) -> str:
    """The version string (``uname -r``) embedded in an x86 bzImage's setup header.

    Raises VMError when `path` is not a bzImage (boot protocol >= 2.00).
    """
    try:
        with path.open("rb") as f:
            header = f.read(0x210)
            if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
                raise VMError(f"{path} is not a Linux x86 kernel image (bzImage)")
            pointer = int.from_bytes(header[0x20E:0x210], "little")
            f.seek(pointer + 0x200)
            text = f.read(256)
    except OSError as e:
        raise VMError(f"cannot read kernel {path}: {e.strerror}") from None
    version = text.split(b"\0", 1)[0].split(b" ", 1)[0].decode(errors="replace")
    if not version:
        raise VMError(f"{path} has no version string in its header")
    return version


def _modules_for(version: str, *candidates: Path) -> Path | None:
    """The first ``<candidate>/lib/modules/<version>`` directory holding a modules.dep."""
    for base in candidates:
        d = base / "lib" / "modules" / version
        if (d / "modules.dep").is_file():
            return d
    return None


def configured_kernel(settings: Settings) -> KernelChoice | None:
    """Step 1: the kernel named by ``KATADOCKER_KERNEL`` or the config file, if any."""
    env = os.environ.get(KERNEL_ENV)
    path = env or settings.extra.get("kernel")
    if not path:
        return None
    where = f"{KERNEL_ENV}" if env else "config file 'kernel'"
    vmlinuz = Path(path)
    version = bzimage_version(vmlinuz)
    modules = os.environ.get(KERNEL_MODULES_ENV) or settings.extra.get("kernel-modules")
    modules_dir = Path(modules) if modules else _modules_for(version, Path("/"))
    return KernelChoice(vmlinuz, modules_dir, version, "config", f"set by {where}")


def built_kernel(settings: Settings) -> KernelChoice | None:
    """Step 2: a kernel katadocker built for itself under ``<state>/assets/kernel/``."""
    base = settings.state.assets / "kernel"
    vmlinuz = base / "vmlinuz"
    if not vmlinuz.is_file():
        return None
    version = bzimage_version(vmlinuz)
    return KernelChoice(vmlinuz, _modules_for(version, base), version, "katadocker",
                        f"built by katadocker ({base})")


def version_key(version: str) -> list[tuple[int, int | str]]:
    """Sort key ordering ``6.1.0-56`` after ``6.1.0-9`` (numbers compare as numbers)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+~]", version)]


def cached_debian_kernel(settings: Settings) -> KernelChoice | None:
    """A Debian cloud kernel unpacked by an earlier `fetch_debian_kernel` (the newest, if several)."""
    base = settings.state.assets / "debian-kernel"
    versions = [d.name for d in base.glob("*") if (d / "vmlinuz").is_file()] if base.is_dir() else []
    if not versions:
        return None
    version = max(versions, key=version_key)
    d = base / version
    return KernelChoice(d / "vmlinuz", _modules_for(version, d), version, "debian",
                        f"Debian {DEBIAN_METAPACKAGE} package, unpacked in {d}")


def tool(name: str) -> str:
    """Path of a system tool, also looking in the sbin dirs a non-root PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        raise VMError(f"{name} not found (needed to fetch or build a guest kernel)")
    return found


def run_tool(argv: list[str], cwd: Path | None = None, timeout: float = 300,
             env: dict[str, str] | None = None) -> str:
    """Run a helper, returning stdout; VMError with the last line of its stderr (the last 40 lines
    in the detail) when it fails."""
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise VMError(f"{argv[0]} timed out after {timeout:.0f}s", detail=" ".join(argv)) from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise VMError(f"{Path(argv[0]).name} failed: {lines[-1]}",
                      detail="\n".join([" ".join(argv), *lines[-40:]]))
    return proc.stdout


def debian_package_name() -> str:
    """The concrete kernel package the cloud metapackage depends on (``linux-image-<ver>-cloud-amd64``)."""
    out = run_tool([tool("apt-cache"), "depends", DEBIAN_METAPACKAGE])
    for line in out.splitlines():
        key, _, value = line.strip().lstrip("|").partition(":")
        if key == "Depends" and value.strip().startswith("linux-image-"):
            return value.strip()
    raise VMError(f"apt-cache knows no kernel package behind {DEBIAN_METAPACKAGE}",
                  detail="run `apt-get update`, or set KATADOCKER_KERNEL")


def fetch_debian_kernel(settings: Settings, progress: Progress | None = None) -> KernelChoice:
    """Step 3: download Debian's cloud kernel with ``apt-get download``, unpack vmlinuz and modules into
    ``<state>/assets/debian-kernel/<version>/`` (atomically: built aside, then renamed) and run depmod
    there (the .deb ships no modules.dep)."""
    package = debian_package_name()
    if progress:
        progress(f"Downloading guest kernel {package}")
    settings.state.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.state.tmp, prefix="debian-kernel.") as tmp_name:
        tmp = Path(tmp_name)
        # APT::Sandbox::User=root: apt's download user (_apt) cannot write into our private temp dir.
        run_tool([tool("apt-get"), "download", "-q", "-o", "APT::Sandbox::User=root", package], cwd=tmp)
        debs = sorted(tmp.glob("*.deb"))
        if not debs:
            raise VMError(f"apt-get download {package} produced no .deb")
        if progress:
            progress(f"Unpacking {debs[0].name}")
        unpacked = tmp / "unpacked"
        run_tool([tool("dpkg-deb"), "-x", str(debs[0]), str(unpacked)])
        images = sorted((unpacked / "boot").glob("vmlinuz-*"))
        if not images:
            raise VMError(f"{debs[0].name} holds no /boot/vmlinuz-*")
        version = bzimage_version(images[0])
        staged = tmp / "staged"
        (staged / "lib" / "modules").mkdir(parents=True)
        images[0].rename(staged / "vmlinuz")
        (unpacked / "lib" / "modules" / version).rename(staged / "lib" / "modules" / version)
        run_tool([tool("depmod"), "-b", str(staged), version])
        dest = settings.state.assets / "debian-kernel" / version
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():  # a concurrent fetch may have won; both are identical
            staged.rename(dest)
    choice = cached_debian_kernel(settings)
    assert choice is not None
    return choice


def host_kernel() -> KernelChoice | None:
    """Step 4: the running host's kernel from /boot (or /usr/lib/modules/<ver>/vmlinuz), if readable."""
    version = platform.release()
    for vmlinuz in (Path("/boot") / f"vmlinuz-{version}", Path("/usr/lib/modules") / version / "vmlinuz"):
        if vmlinuz.is_file() and os.access(vmlinuz, os.R_OK):
            return KernelChoice(vmlinuz, _modules_for(version, Path("/")), version, "host",
                                f"the host's own kernel ({vmlinuz})")
    return None


def find_kernel(settings: Settings, progress: Progress | None = None) -> KernelChoice:
    """The guest kernel by the brief's order; downloads the Debian kernel only when none is cached.

    Raises VMError listing why each step failed when no kernel is found.
    """
    for step in (configured_kernel, built_kernel, cached_debian_kernel):
        choice = step(settings)
        if choice:
            return choice
    try:
        return fetch_debian_kernel(settings, progress)
    except VMError as e:
        debian_failure = e.message
    choice = host_kernel()
    if choice:
        return KernelChoice(choice.vmlinuz, choice.modules_dir, choice.version, choice.source,
                            f"{choice.reason}; Debian kernel unavailable: {debian_failure}")
    raise VMError(
        "no guest kernel found",
        detail=f"no {KERNEL_ENV}, no katadocker-built kernel, Debian kernel: {debian_failure}, "
        f"no readable /boot/vmlinuz-{platform.release()}",
    )
