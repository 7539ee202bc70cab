"""The host side of a running container's mounts: one virtio-fs share per bind or volume.

`GuestMounts.prepare` (the monitor calls it once the overlay root is mounted) turns the record's
MountPoints into agent MOUNT entries and virtiofsd instances: share ``m<i>`` for the i-th mount,
served by its own virtiofsd on ``<run>/m<i>.sock``. Separate daemons keep each share's failure,
cache and sandbox apart, and let one share be read-only in the guest while another is not; a
tmpfs needs no share (the agent makes it). Volumes get docker's copy-up from the image on first use,
``-v`` binds get their missing host directory created. A single-file bind is bind-mounted on the
host into a private staging directory ``<container>/binds/m<i>/file`` that is shared instead, so the
guest sees that file and nothing else of its directory; the agent binds it onto the target.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from katadocker.config import Settings
from katadocker.engine import rootfs
from katadocker.engine.mounts import BIND, TMPFS, VOLUME, MountPoint, points_of, tmpfs_mount_options
from katadocker.errors import KatadockerError
from katadocker.state.containers import ContainerRecord, write_pid_file

log = logging.getLogger("katadocker.monitor")


def staging_dir(record: ContainerRecord) -> Path:
    """Where single-file binds are staged (see the module doc)."""
    return record.dir / "binds"


def inside_root(root: Path, path: str) -> Path | None:
    """`path` (absolute, in the container) under the host directory `root`, or None when any
    component is a symlink: the host must never follow an image's links out of its root."""
    current = root
    for part in Path(path).parts[1:]:
        current = current / part
        if current.is_symlink():
            return None
    return current


class GuestMounts:
    """A container's shares while it runs: `prepare`, `start`, then `stop` (idempotent)."""

    def __init__(self, settings: Settings, record: ContainerRecord) -> None:
        self.settings = settings
        self.record = record
        self.mounts: list = []        # agent.protocol.Mount, in the record's order
        self.shares: list = []        # vm.qemu.Share
        self.daemons: list = []       # vm.virtiofsd.Virtiofsd
        self.staged: list[Path] = []  # host bind mounts of single files

    def prepare(self) -> None:
        """Work out every share and MOUNT entry; copy up volumes and create -v bind sources."""
        from katadocker.agent.protocol import Mount

        for index, mp in enumerate(points_of(self.record.config)):
            if mp.type == TMPFS:
                self.mounts.append(Mount("tmpfs", mp.destination, readonly=not mp.rw,
                                         options=tmpfs_mount_options(mp)))
                continue
            tag = f"m{index}"
            source = self._host_source(mp)
            is_file = not source.is_dir()
            if is_file:
                source = self._stage_file(source, tag)
            self._add_share(tag, source)
            self.mounts.append(Mount(tag, mp.destination, readonly=not mp.rw, file=is_file))

    def _host_source(self, mp: MountPoint) -> Path:
        if mp.type == VOLUME:
            from katadocker.engine.volumes import VolumeStore

            store = VolumeStore(self.settings)
            if mp.copy_data:
                image_dir = inside_root(self.record.rootfs, mp.destination)
                if image_dir is not None:
                    store.populate(mp.name, image_dir)
            return store.data_dir(mp.name)
        assert mp.type == BIND
        source = Path(mp.source)
        if not source.exists():
            if not mp.create_source:
                raise KatadockerError(f"invalid mount config for type \"bind\": bind source path does not "
                                      f"exist: {mp.source}")
            source.mkdir(parents=True, exist_ok=True)  # docker creates a missing -v host path
        return source

    def _stage_file(self, source: Path, tag: str) -> Path:
        """Bind-mount the file `source` to ``binds/<tag>/file`` and return that directory."""
        from katadocker.agent.protocol import MOUNT_FILE_NAME

        stage = staging_dir(self.record) / tag
        stage.mkdir(parents=True, exist_ok=True)
        target = stage / MOUNT_FILE_NAME
        target.touch(exist_ok=True)
        if not rootfs.is_mounted(target):
            rootfs.bind(source, target)
        self.staged.append(target)
        return stage

    def _add_share(self, tag: str, source: Path) -> None:
        from katadocker.vm.qemu import Share
        from katadocker.vm.virtiofsd import Virtiofsd

        sock = self.record.run_dir / f"{tag}.sock"
        self.daemons.append(Virtiofsd(source, sock, self.record.dir / f"virtiofsd-{tag}.log"))
        self.shares.append(Share(tag, sock))

    def start(self) -> None:
        """Start every share's virtiofsd (their pid files let a crash cleanup kill them)."""
        for daemon, share in zip(self.daemons, self.shares, strict=True):
            daemon.start()
            write_pid_file(self.record.pid_dir / f"virtiofsd-{share.tag}", daemon.pid)

    def problem(self) -> str | None:
        """Why the container must end (a share's virtiofsd died), or None."""
        for daemon, share in zip(self.daemons, self.shares, strict=True):
            if daemon.proc is not None and daemon.proc.poll() is not None:
                code = daemon.proc.returncode
                return f"virtiofsd for mount {share.tag} exited unexpectedly with status {code}"
        return None

    def stop(self) -> None:
        """Stop the virtiofsds and undo the file staging; each step runs even if one failed."""
        for daemon, share in zip(self.daemons, self.shares, strict=True):
            try:
                daemon.stop()
            except OSError:
                log.exception("stopping virtiofsd for %s", share.tag)
            (self.record.pid_dir / f"virtiofsd-{share.tag}").unlink(missing_ok=True)
        unmount_staging(self.record)


def unmount_staging(record: ContainerRecord) -> None:
    """Unmount every staged single-file bind of `record` (idempotent; also after a crash)."""
    stage = staging_dir(record)
    if not stage.is_dir():
        return
    for target in sorted(stage.glob("*/*")):
        rootfs.unmount(target)
        if not rootfs.is_mounted(target):
            with contextlib.suppress(OSError):
                target.unlink()
