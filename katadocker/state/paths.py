"""The layout of the state root (``/var/lib/katadocker`` unless ``--root``/``KATADOCKER_ROOT``).

::

    <root>/blobs/sha256/<hex>          content store: manifests, configs, compressed layers
    <root>/blobs/partial/<hex>         partly downloaded blobs, kept to resume a pull
    <root>/layers/<hex>/fs             one unpacked layer, keyed by its diff ID (uncompressed digest)
    <root>/images/<hex>.json           image records, keyed by image ID (config digest)
    <root>/containers/<id>/            config.json, state.json, ctr.log, upper/, work/, rootfs/, sockets
    <root>/networks/<name>.json        networks
    <root>/volumes/<name>/             named volumes
    <root>/assets/                     guest kernel, initramfs, agent built for this host
    <root>/locks/                      lock files (one per object, see state.lock)
    <root>/events.jsonl[.1]            the events journal, one JSON event per line (engine.events)
    <root>/tmp/                        scratch on the same filesystem, for atomic renames

Every path is derived from the root here and nowhere else (from state/layout.py's strings where a
light caller needs them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from katadocker.state import layout

DEFAULT_ROOT = Path(layout.DEFAULT_ROOT)
#: Where each container's sockets live while its monitor runs (see ContainerRecord.run_dir), and an
#: early VM's before a monitor takes it over (vm/early.py): short paths, for unix socket addresses.
RUN_ROOT = Path(layout.RUN_ROOT)


def default_root() -> Path:
    """The state root chosen by the environment: ``KATADOCKER_ROOT`` or the default."""
    return Path(layout.root_dir(None))


@dataclass(frozen=True)
class StateRoot:
    """Paths inside one state root. Creating the object touches nothing; `ensure()` makes the dirs."""

    root: Path

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def partial_blobs(self) -> Path:
        return self.root / "blobs" / "partial"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def networks(self) -> Path:
        return self.root / "networks"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def assets(self) -> Path:
        return self.root / layout.ASSETS

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def tmp(self) -> Path:
        return self.root / layout.TMP

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    def blob(self, digest: str) -> Path:
        """Path of the blob with the given ``sha256:<hex>`` digest."""
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise ValueError(f"unsupported digest {digest!r}")
        return self.blobs / hexpart

    def container_dir(self, container_id: str) -> Path:
        return self.containers / container_id

    def ensure(self) -> StateRoot:
        """Create the directory skeleton (idempotent) and return self."""
        for d in (self.blobs, self.partial_blobs, self.layers, self.images, self.containers,
                  self.networks, self.volumes, self.assets, self.locks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        return self
