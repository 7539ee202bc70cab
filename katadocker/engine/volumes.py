"""Named and anonymous volumes of the ``local`` driver: ``<state>/volumes/<name>/``.

Each volume is a directory holding ``_data`` (what containers mount) and ``volume.json`` (docker's
metadata: Name, Driver, CreatedAt, Labels, Options, Scope). Anonymous volumes have 64-hex names and
the label ``com.docker.volume.anonymous``, as docker 23+ gives them. A volume is in use while any
container (running or not) records a mount of it; `remove` refuses it then, `prune` skips it.
Mutations hold the volume's lock (``locks/volume-<name>.lock``). Nothing here prints.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from katadocker.config import Settings
from katadocker.engine import events
from katadocker.errors import Conflict, InvalidArgument, KatadockerError, NotFound
from katadocker.state import clock
from katadocker.state.atomic import read_json, write_json
from katadocker.state.lock import locked

DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
#: docker's RestrictedNamePattern: at least two characters
NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
#: The local driver's options; katadocker records them but mounts nothing from them (see `create`).
LOCAL_OPTIONS = ("type", "device", "o", "size")


class NoSuchVolume(NotFound):
    """docker's ``get NAME: no such volume``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")


def validate_name(name: str) -> None:
    """Raise docker's error for a name the local driver refuses (the text hints at host paths)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path")


def is_anonymous(volume: dict[str, Any]) -> bool:
    return ANONYMOUS_LABEL in (volume.get("Labels") or {})


class VolumeStore:
    """The volumes of one state root."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root: Path = settings.state.volumes

    def _dir(self, name: str) -> Path:
        return self.root / name

    def data_dir(self, name: str) -> Path:
        """The directory containers mount (docker's Mountpoint)."""
        return self._dir(name) / "_data"

    def _lock(self, name: str) -> Any:
        return locked(self.settings.state.locks, f"volume-{name}")

    def _view(self, meta: dict[str, Any]) -> dict[str, Any]:
        """docker's Volume object, keys in docker's order."""
        return {"CreatedAt": meta["CreatedAt"], "Driver": meta["Driver"], "Labels": meta["Labels"],
                "Mountpoint": str(self.data_dir(meta["Name"])), "Name": meta["Name"],
                "Options": meta["Options"], "Scope": "local"}

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "volume.json").is_file()

    def get(self, name: str) -> dict[str, Any]:
        """The volume called `name`; NoSuchVolume when there is none."""
        if not NAME_PATTERN.fullmatch(name) or not self.exists(name):
            raise NoSuchVolume(name)
        try:
            return self._view(read_json(self._dir(name) / "volume.json"))
        except (OSError, ValueError):
            raise NoSuchVolume(name) from None

    def all(self) -> list[dict[str, Any]]:
        """Every volume, sorted by name."""
        if not self.root.is_dir():
            return []
        out = []
        for d in sorted(self.root.iterdir()):
            try:
                out.append(self.get(d.name))
            except NoSuchVolume:
                continue
        return out

    def create(self, name: str | None = None, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, driver: str = DRIVER) -> dict[str, Any]:
        """Create a volume (an anonymous one when `name` is None) and return it. Creating an existing
        name returns the existing volume, as docker does. `labels`/`options` None are stored as null
        (docker's implicit volumes); ``volume create`` passes dicts."""
        if driver != DRIVER:
            raise NotFound(f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        for key in options or {}:
            if key not in LOCAL_OPTIONS:
                raise InvalidArgument(f"invalid option: \"{key}\"")
        if name is None:
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
        validate_name(name)
        with self._lock(name):
            if self.exists(name):
                return self.get(name)
            self.data_dir(name).mkdir(parents=True, exist_ok=True)
            # docker's _data is 0755 root-owned whatever the umask
            self.data_dir(name).chmod(0o755)
            created = clock.format_ns(clock.now_ns() // 10**9 * 10**9)  # docker: whole seconds
            meta = {"Name": name, "Driver": driver, "CreatedAt": created, "Labels": labels,
                    "Options": options}
            write_json(self._dir(name) / "volume.json", meta)
            events.volume(self.settings.state, "create", name, driver)
        return self.get(name)

    def users(self, name: str) -> list[str]:
        """IDs of the containers that mount the volume (any state)."""
        from katadocker.engine.mounts import VOLUME, points_of
        from katadocker.state.containers import ContainerStore

        records = ContainerStore(self.settings.state).all()
        return [r.id for r in records
                if any(mp.type == VOLUME and mp.name == name for mp in points_of(r.config))]

    def remove(self, name: str, force: bool = False) -> None:
        """docker volume rm: refused while a container uses it; with `force` a missing volume is
        no error."""
        if not self.exists(name):
            if force:
                return
            raise NoSuchVolume(name)
        with self._lock(name):
            in_use = self.users(name)
            if in_use:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(in_use)}]")
            (self._dir(name) / "volume.json").unlink(missing_ok=True)
            shutil.rmtree(self._dir(name), ignore_errors=True)
            events.volume(self.settings.state, "destroy", name)

    def prune(self, all_volumes: bool = False, labels: list[str] | None = None) -> tuple[list[str], int]:
        """Remove unused volumes: anonymous ones only unless `all_volumes` (docker 23+); `labels`
        filters (``key``, ``key=value``, ``label!=…``) must all match. (names removed, bytes freed)."""
        removed, reclaimed = [], 0
        for volume in self.all():
            if not all_volumes and not is_anonymous(volume):
                continue
            if not all(label_filter(volume, spec) for spec in labels or []):
                continue
            size = dir_size(self.data_dir(volume["Name"]))
            try:
                self.remove(volume["Name"])
            except (Conflict, NotFound):
                continue
            removed.append(volume["Name"])
            reclaimed += size
        return removed, reclaimed

    def populate(self, name: str, source: Path) -> None:
        """docker's copy-up: on a volume's first use, an empty volume gets the image's content at
        the mount point (`source`, a directory of the container's root), owner and mode included."""
        data = self.data_dir(name)
        if not source.is_dir() or source.is_symlink() or any(data.iterdir()):
            return
        proc = subprocess.run(["cp", "-a", "--", f"{source}/.", str(data)], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise KatadockerError(f"copying the image's {source.name} into volume {name}: "
                                  f"{proc.stderr.strip()}")


def label_filter(volume: dict[str, Any], spec: str) -> bool:
    """docker's label filter: ``key`` (present), ``key=value``; a leading ``!`` on the key for
    ``label!=`` negation is handled by the caller."""
    key, sep, value = spec.partition("=")
    labels = volume.get("Labels") or {}
    return key in labels and (not sep or labels[key] == value)


def dir_size(path: Path) -> int:
    """Bytes used by the regular files under `path` (hard links counted once)."""
    seen, total = set(), 0
    for p in path.rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def remove_anonymous(settings: Settings, record_config: dict[str, Any]) -> None:
    """``rm -v`` and ``run --rm``: remove the (deleted) container's anonymous volumes; one still used
    by another container (``--volumes-from``) stays, as in docker."""
    from katadocker.engine.mounts import VOLUME, points_of

    store = VolumeStore(settings)
    for mp in points_of(record_config):
        if mp.type == VOLUME and mp.anonymous:
            try:
                store.remove(mp.name)
            except KatadockerError:
                continue
