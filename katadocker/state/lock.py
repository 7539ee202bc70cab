"""Advisory file locks (``flock``) under ``<root>/locks``.

Locks are per object (``container-<id>``, ``image-store``, ``layer-<hex>`` ...). They are held by
open file descriptors, so a crashed process never leaves a lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(lock_dir: Path, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock `name` (exclusive unless `shared`) for the duration of the block; blocks until free."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
