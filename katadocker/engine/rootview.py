"""The host side of a container's root filesystem, for verbs that work on files (cp, export).

A running container's overlay is mounted by its monitor; a created or exited one is mounted here for
the duration of the `with` (under the container's lock, so `start` waits) and unmounted after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from katadocker.config import Settings
from katadocker.engine import rootfs
from katadocker.state.containers import ContainerRecord, ContainerStore, reconcile


def lower_dirs(settings: Settings, record: ContainerRecord) -> list[Path]:
    """The image layers under the container's upper dir, top-most first (overlayfs' order)."""
    from katadocker.image.store import LayerStore

    layers = LayerStore(settings.state)
    return [layers.path(d) for d in reversed(record.config["Layers"])]


@contextlib.contextmanager
def container_root(settings: Settings, ref: str) -> Iterator[tuple[ContainerRecord, Path]]:
    """(record, host path of its merged root) for the duration of the `with`."""
    store = ContainerStore(settings.state)
    record = reconcile(store, store.lookup(ref))
    if record.running and rootfs.is_mounted(record.rootfs):
        yield record, record.rootfs
        return
    with store.lock(record.id):
        record = reconcile(store, store.load(record.id))
        mounted_here = not rootfs.is_mounted(record.rootfs)
        if mounted_here:
            record.upper.mkdir(parents=True, exist_ok=True)
            record.work.mkdir(parents=True, exist_ok=True)
            rootfs.mount(lower_dirs(settings, record), record.upper, record.work, record.rootfs)
        try:
            yield record, record.rootfs
        finally:
            if mounted_here:
                rootfs.unmount(record.rootfs)
