"""docker diff: what a container changed in its root, read from its overlay upper dir.

Each entry of the upper dir is ``A`` (added: nothing at that path in the image layers), ``C``
(changed: the path exists below) or ``D`` (deleted: an overlay whiteout, a 0/0 character device).
Like docker, paths that the runtime itself provides (docker's init layer: /dev, /proc, /sys,
/etc/hostname, /etc/hosts, /etc/resolv.conf, …) are not reported, and a directory that exists in
the image is reported only when something below it is.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from katadocker.config import Settings

#: Paths that belong to the runtime, not the container (docker's init layer).
RUNTIME_PATHS = frozenset({"/dev", "/proc", "/sys", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
                           "/etc/mtab", "/.dockerenv"})
KINDS = {"C": 0, "A": 1, "D": 2}


@dataclass(frozen=True)
class Change:
    """One line of ``docker diff``: `kind` is 0 (C), 1 (A) or 2 (D), as the Engine API's Kind."""

    path: str
    kind: int

    def __str__(self) -> str:
        return f"{'CAD'[self.kind]} {self.path}"


def is_whiteout(path: Path) -> bool:
    """An overlayfs whiteout: a character device with device number 0/0."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def in_lowers(lowers: list[Path], rel: str) -> bool:
    """Whether `rel` exists in the image: the top-most layer holding it (or a whiteout) decides."""
    for layer in lowers:
        path = layer / rel
        if os.path.lexists(path):
            return not is_whiteout(path)
    return False


def changes(upper: Path, lowers: list[Path]) -> list[Change]:
    """The container's changes, sorted by path (`lowers` top-most first)."""
    found: list[Change] = []
    _walk(upper, "", lowers, found)
    return sorted(found, key=lambda c: c.path)


def _walk(upper: Path, rel: str, lowers: list[Path], found: list[Change]) -> bool:
    """Record the changes under upper/rel; whether any was recorded."""
    any_found = False
    try:
        names = sorted(os.listdir(upper / rel) if rel else os.listdir(upper))
    except OSError:
        return False
    for name in names:
        child = f"{rel}/{name}" if rel else name
        path = "/" + child
        if path in RUNTIME_PATHS:
            continue
        full = upper / child
        if is_whiteout(full):
            found.append(Change(path, KINDS["D"]))
            any_found = True
            continue
        existed = in_lowers(lowers, child)
        is_dir = full.is_dir() and not full.is_symlink()
        below = _walk(upper, child, lowers, found) if is_dir else False
        if not existed or not is_dir or below:
            found.append(Change(path, KINDS["C" if existed else "A"]))
            any_found = True
    return any_found


def container_changes(settings: Settings, ref: str) -> list[Change]:
    """docker diff for container `ref` (any state: the upper dir is on disk)."""
    from katadocker.engine.rootview import lower_dirs
    from katadocker.state.containers import ContainerStore

    record = ContainerStore(settings.state).lookup(ref)
    return changes(record.upper, lower_dirs(settings, record))
