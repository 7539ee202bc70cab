"""The container's root filesystem on the host: an overlayfs of the image layers (read-only, from the
layer store) under the container's own upper dir, mounted at ``<container>/rootfs``.

The monitor mounts it before starting virtiofsd and unmounts it on the way out; a reconcile after a
crashed monitor unmounts what is left (`unmount` is idempotent).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from katadocker.errors import KatadockerError


class RootfsError(KatadockerError):
    """Mounting or unmounting the container's overlay failed."""


def overlay_options(lower_dirs: list[Path], upper: Path, work: Path) -> str:
    """The overlay mount options; `lower_dirs` are given top-most first (overlayfs' order)."""
    for d in [*lower_dirs, upper, work]:
        if ":" in str(d) or "," in str(d):
            raise RootfsError(f"path not usable in an overlay mount: {d}")
    return f"lowerdir={':'.join(str(d) for d in lower_dirs)},upperdir={upper},workdir={work}"


def is_mounted(target: Path) -> bool:
    """True when something is mounted exactly at `target`."""
    wanted = str(target)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == wanted for line in f)
    except OSError:
        return False


def mount(lower_dirs: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount the overlay at `target` (lower dirs top-most first). A rootfs with a single layer still
    uses overlayfs, so the image layer is never written to.

    An image without layers gets an empty lower dir (overlayfs needs at least one)."""
    if is_mounted(target):
        return
    if not lower_dirs:
        empty = work.parent / "empty-lower"
        empty.mkdir(exist_ok=True)
        lower_dirs = [empty]
    target.mkdir(parents=True, exist_ok=True)
    options = overlay_options(lower_dirs, upper, work)
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RootfsError(f"mounting the container's root filesystem failed: {proc.stderr.strip()}")


def unmount(target: Path) -> None:
    """Unmount `target` if mounted (lazily if busy: a dying helper may still hold it)."""
    if not is_mounted(target):
        return
    proc = subprocess.run(["umount", str(target)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 and is_mounted(target):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
