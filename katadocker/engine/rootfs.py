"""The container's root filesystem on the host: an overlayfs of the image layers (read-only, from the
layer store) under the container's own upper dir, mounted at ``<container>/rootfs``.

The monitor mounts it before starting virtiofsd and unmounts it on the way out; a reconcile after a
crashed monitor unmounts what is left (`unmount` is idempotent). The mounts are mount(2) and
umount2(2) calls through ctypes: running mount(8) cost a process start each (~5 ms here), and an
``--rm`` run waits for the unmount.
"""

from __future__ import annotations

import ctypes
import os
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


_libc = ctypes.CDLL(None, use_errno=True)
MS_BIND = 4096  # <sys/mount.h>
MNT_DETACH = 2


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str | None) -> None:
    """mount(2); OSError on failure."""
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(target))


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
    try:
        _mount("overlay", target, "overlay", 0, overlay_options(lower_dirs, upper, work))
    except OSError as e:
        raise RootfsError(f"mounting the container's root filesystem failed: {e.strerror}") from None


def bind(source: Path, target: Path) -> None:
    """Bind-mount `source` on `target` (which exists); RootfsError on failure."""
    try:
        _mount(str(source), target, None, MS_BIND, None)
    except OSError as e:
        raise RootfsError(f"bind-mounting {source}: {e.strerror}") from None


def unmount(target: Path) -> None:
    """Unmount `target` if mounted (lazily if busy: a dying helper may still hold it)."""
    if not is_mounted(target):
        return
    if _libc.umount2(os.fsencode(target), 0) != 0 and is_mounted(target):
        _libc.umount2(os.fsencode(target), MNT_DETACH)
