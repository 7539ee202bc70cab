"""Parse a container's mounts as docker does: ``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from`` and
the image's ``VOLUME``s, with docker's error texts.

`parse_volume`, `parse_mount` and `parse_tmpfs` turn one flag value into a `MountPoint` (or raise
`InvalidArgument`/`UsageError` with docker's message); `plan` combines all of a container's mounts,
checks for duplicate destinations and creates the volumes they name. The result is stored in the
container record as ``MountPoints`` (see `MountPoint.to_record`) and shown by ``inspect`` as
``Mounts`` (`inspect_view`). Host-side preparation at start is in engine/guest_mounts.py.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from katadocker.config import Settings
from katadocker.errors import InvalidArgument, UsageError

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"
RW_MODES = {"rw", "ro"}
LABEL_MODES = {"z", "Z"}
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
COPY_MODES = {"nocopy"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
DEFAULT_PROPAGATION = "rprivate"
#: docker's mount options for every tmpfs (``--tmpfs`` and ``--mount type=tmpfs``); the user's follow
TMPFS_DEFAULTS = "noexec,nosuid,nodev"


@dataclass(frozen=True)
class MountPoint:
    """One mount of a container, as docker's MountPoint: `source` is the host path of a bind, the
    volume's name in `name` for a volume; `tmpfs_options` the mount data of a tmpfs."""

    type: str
    destination: str
    source: str = ""
    name: str = ""
    rw: bool = True
    mode: str = ""
    propagation: str = ""
    copy_data: bool = True
    tmpfs_options: str = ""
    volume_labels: dict[str, str] | None = None
    volume_options: dict[str, str] | None = None
    create_source: bool = False  # a -v bind whose missing host path is created at start
    anonymous: bool = False
    listed: bool = True          # shown in inspect's Mounts (docker lists no --tmpfs there)

    def to_record(self) -> dict[str, Any]:
        """The JSON form kept in the container record."""
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> MountPoint:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class MountRequest:
    """The mount flags of ``run``/``create`` as typed."""

    volumes: list[str] = field(default_factory=list)       # -v
    mounts: list[str] = field(default_factory=list)        # --mount
    tmpfs: list[str] = field(default_factory=list)         # --tmpfs
    volumes_from: list[str] = field(default_factory=list)  # --volumes-from
    read_only: bool = False                                # --read-only


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _config_error(kind: str, message: str) -> str:
    return f'invalid mount config for type "{kind}": {message}'


def _absolute_error(path: str) -> str:
    return f"invalid mount path: '{path}' mount path must be absolute"


def _check_target(kind: str, target: str) -> str | None:
    """docker's target checks: the error text, or None when `target` is fine."""
    if not target:
        return _config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target) == "/" and target.startswith("/"):
        return _config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        return _config_error(kind, _absolute_error(target))
    return None


def valid_mode(mode: str) -> bool:
    """docker's linuxValidMountMode: known words, at most one of each kind."""
    if not mode:
        return True
    counts: dict[str, int] = {}
    for word in mode.split(","):
        for kind, words in (("rw", RW_MODES), ("label", LABEL_MODES), ("prop", PROPAGATIONS),
                            ("copy", COPY_MODES), ("cons", CONSISTENCY_MODES)):
            if word in words:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _absolutize(source: str) -> str:
    """docker 23+'s CLI: a source starting with "." is relative to the working directory."""
    if source == "." or source.startswith("./") or source.startswith("../") or source == "..":
        return os.path.abspath(source)
    return source


def parse_volume(raw: str) -> MountPoint:
    """One ``-v`` value: ``/host:/ctr[:mode]`` (bind, host path created if missing), ``name:/ctr[:mode]``
    (named volume), ``/ctr`` (anonymous volume)."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise InvalidArgument(_invalid_spec(raw))
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise InvalidArgument(_invalid_spec(raw))
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidArgument(_invalid_spec(raw))
    if not valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    source = _absolutize(source)
    kind = BIND if source.startswith("/") else VOLUME
    problem = _check_target(kind, target)
    if problem:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {problem}")
    words = mode.split(",") if mode else []
    rw = "ro" not in words
    destination = posixpath.normpath(target)
    if kind == BIND:
        propagation = next((w for w in words if w in PROPAGATIONS), DEFAULT_PROPAGATION)
        return MountPoint(BIND, destination, source=posixpath.normpath(source), rw=rw, mode=mode,
                          propagation=propagation, create_source=True)
    if not source:
        return MountPoint(VOLUME, destination, rw=rw, mode=mode, anonymous=True)
    # docker shows "z" for a -v volume without a mode (its default SELinux relabel mode)
    return MountPoint(VOLUME, destination, name=source, rw=rw, mode=mode or "z",
                      copy_data="nocopy" not in words)


def _flag_error(value: str, message: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "--mount" flag: {message}')


def _parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool, None when invalid."""
    low = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
           "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
    return low.get(value)


def parse_size(value: str) -> int | None:
    """docker's RAMInBytes (``64m``, ``1g``, ``512``; binary units), None when invalid."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", value.strip().lower())
    if not m:
        return None
    return int(float(m.group(1)) * 1024 ** "bkmgtp".index(m.group(2) or "b"))


def tmpfs_size_option(size: int) -> str:
    """docker's ConvertTmpfsOptions size: the largest unit that divides it evenly."""
    for suffix, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % div == 0:
            return f"size={size // div}{suffix}"
    return f"size={size}"


def parse_mount(value: str) -> MountPoint:  # noqa: C901 - one branch per docker key, kept flat
    """One ``--mount`` value (CSV of key=value): the CLI's flag errors (UsageError), then the daemon's
    config checks (InvalidArgument), including a bind source that does not exist."""
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise _flag_error(value, "parse error") from None
    kind, source, target, readonly = VOLUME, "", "", False
    nocopy, labels, vopts, size, fmode = False, {}, {}, 0, 0
    propagation, groups = "", set()
    for f in fields:
        key, sep, val = f.partition("=")
        if not sep:
            if key in ("readonly", "ro"):
                readonly = True
            elif key == "volume-nocopy":
                nocopy, groups = True, groups | {"volume"}
            elif key == "bind-nonrecursive":
                groups.add("bind")
            else:
                raise _flag_error(value, f"invalid field '{f}' must be a key=value pair")
            continue
        if key == "type":
            kind = val.lower()
        elif key in ("source", "src"):
            source = _absolutize(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            parsed = _parse_bool(val)
            if parsed is None:
                raise _flag_error(value, f"invalid value for {key}: {val}")
            if key in ("readonly", "ro"):
                readonly = parsed
            else:
                groups.add("volume" if key == "volume-nocopy" else "bind")
                nocopy = parsed if key == "volume-nocopy" else nocopy
        elif key == "consistency":
            continue
        elif key == "bind-propagation":
            propagation, groups = val.lower(), groups | {"bind"}
        elif key in ("volume-label", "volume-opt"):
            k, _, v = val.partition("=")
            if k:
                (labels if key == "volume-label" else vopts)[k] = v
            groups.add("volume")
        elif key == "volume-driver":
            groups.add("volume")
        elif key == "tmpfs-size":
            parsed_size = parse_size(val)
            if parsed_size is None:
                raise _flag_error(value, f"invalid value for {key}: {val}")
            size, groups = parsed_size, groups | {"tmpfs"}
        elif key == "tmpfs-mode":
            try:
                fmode = int(val, 8)
            except ValueError:
                raise _flag_error(value, f"invalid value for {key}: {val}") from None
            groups.add("tmpfs")
        else:
            raise _flag_error(value, f"unexpected key '{key}' in '{f}'")
    if not target:
        raise _flag_error(value, "target is required")
    for group in sorted(groups):
        if group != kind:
            raise _flag_error(value, f"cannot mix '{group}-*' options with mount type '{kind}'")
    problem = _check_target(kind, target) if kind in (BIND, VOLUME, TMPFS) else None
    if problem:
        raise InvalidArgument(problem)
    destination = posixpath.normpath(target)
    if kind == BIND:
        if not source:
            raise InvalidArgument(_config_error(BIND, "field Source must not be empty"))
        if not source.startswith("/"):
            raise InvalidArgument(_config_error(BIND, _absolute_error(source)))
        if propagation and propagation not in PROPAGATIONS:
            raise InvalidArgument(_config_error(BIND, f"invalid propagation mode: {propagation}"))
        if not os.path.exists(source):
            raise InvalidArgument(_config_error(BIND, f"bind source path does not exist: {source}"))
        return MountPoint(BIND, destination, source=posixpath.normpath(source), rw=not readonly,
                          propagation=propagation or DEFAULT_PROPAGATION)
    if kind == VOLUME:
        if readonly and not source:
            raise InvalidArgument(_config_error(
                VOLUME, "must not set ReadOnly mode when using anonymous volumes"))
        return MountPoint(VOLUME, destination, name=source, rw=not readonly, copy_data=not nocopy,
                          volume_labels=labels or None, volume_options=vopts or None, anonymous=not source)
    if kind == TMPFS:
        if source:
            raise InvalidArgument(_config_error(TMPFS, "field Source must not be specified"))
        words = (["ro"] if readonly else []) + ([f"mode={fmode:o}"] if fmode else []) + \
            ([tmpfs_size_option(size)] if size else [])
        return MountPoint(TMPFS, destination, rw=not readonly, tmpfs_options=",".join(words))
    raise InvalidArgument(_config_error(kind, "mount type unknown"))


def parse_tmpfs(value: str) -> MountPoint:
    """One ``--tmpfs /path[:options]`` (options as mount(8): ``size=64m,mode=1777,exec``)."""
    target, _, options = value.partition(":")
    if posixpath.normpath(target) == "/" and target.startswith("/"):
        raise InvalidArgument("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise InvalidArgument(_absolute_error(target))
    return MountPoint(TMPFS, posixpath.normpath(target), rw="ro" not in options.split(","),
                      tmpfs_options=options, listed=False)


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """``container[:mode]`` of ``--volumes-from``: (container, mode); mode "rw" unless given."""
    if not spec:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    words = mode.split(",")
    if not valid_mode(mode) or any(w in PROPAGATIONS or w in COPY_MODES for w in words):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ref, mode


def inherited(points: Iterable[MountPoint], mode: str) -> list[MountPoint]:
    """The binds and volumes another container's `points` give through ``--volumes-from``: an
    explicit ro/rw in `mode` overrides each one's own."""
    words = mode.split(",")
    out = []
    for mp in points:
        if mp.type == TMPFS:
            continue
        rw = mp.rw if not ({"ro", "rw"} & set(words)) else "ro" not in words
        out.append(replace(mp, rw=rw, copy_data=False, create_source=False))
    return out


def tmpfs_mount_options(mp: MountPoint) -> str:
    """The options the guest mounts a tmpfs with: docker's defaults, then the user's."""
    return ",".join(x for x in (TMPFS_DEFAULTS, mp.tmpfs_options) if x)


def combine(explicit: list[MountPoint], from_others: list[MountPoint],
            image_volumes: Iterable[str]) -> list[MountPoint]:
    """All mounts of a container: the explicit ones (a duplicate destination is docker's error),
    then ``--volumes-from`` and the image's VOLUMEs where no explicit mount covers them."""
    seen: set[str] = set()
    for mp in explicit:
        if mp.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {mp.destination}")
        seen.add(mp.destination)
    out = list(explicit)
    for mp in from_others:
        if mp.destination not in seen:
            seen.add(mp.destination)
            out.append(mp)
    for dest in image_volumes:
        dest = posixpath.normpath(dest)
        if dest not in seen:
            seen.add(dest)
            out.append(MountPoint(VOLUME, dest, anonymous=True))
    return out


def inspect_view(mp: MountPoint, volume_path: str) -> dict[str, Any]:
    """docker's ``Mounts`` entry (`volume_path`: the volume's Mountpoint, for volumes)."""
    if mp.type == VOLUME:
        return {"Type": VOLUME, "Name": mp.name, "Source": volume_path, "Destination": mp.destination,
                "Driver": "local", "Mode": mp.mode, "RW": mp.rw, "Propagation": ""}
    return {"Type": mp.type, "Source": mp.source, "Destination": mp.destination, "Mode": mp.mode,
            "RW": mp.rw, "Propagation": mp.propagation}


@dataclass
class MountPlan:
    """A container's validated mounts, before its volumes exist (`apply` creates them)."""

    request: MountRequest
    points: list[MountPoint]

    def apply(self, settings: Settings, record: dict[str, Any]) -> None:
        """Create the named and anonymous volumes and record everything as docker does:
        ``HostConfig.{Binds,Mounts,Tmpfs,ReadonlyRootfs,VolumesFrom}``, ``Config.Volumes`` (anonymous
        ``-v`` and image volumes) and the resolved ``MountPoints``."""
        from katadocker.engine.volumes import VolumeStore

        store = VolumeStore(settings)
        resolved = []
        for mp in self.points:
            if mp.type == VOLUME:
                volume = store.create(mp.name or None, mp.volume_labels, mp.volume_options)
                mp = replace(mp, name=volume["Name"])
            resolved.append(mp)
        req = self.request
        binds = [_absolutize_bind(v) for v in req.volumes if ":" in v]
        host = record["HostConfig"]
        host["Binds"] = binds or None
        if req.mounts:
            first = len(req.volumes)  # `points` begin with the -v, then the --mount entries
            host["Mounts"] = [_api_mount(mp) for mp in self.points[first:first + len(req.mounts)]]
        if req.tmpfs:
            host["Tmpfs"] = {mp.destination: mp.tmpfs_options for mp in resolved if not mp.listed}
        host["ReadonlyRootfs"] = req.read_only
        host["VolumesFrom"] = req.volumes_from or None
        anonymous = {mp.destination: {} for mp in resolved if mp.anonymous}
        record["Config"]["Volumes"] = {**(record["Config"].get("Volumes") or {}), **anonymous} or None
        record["MountPoints"] = [mp.to_record() for mp in resolved]


def _absolutize_bind(raw: str) -> str:
    source, _, rest = raw.partition(":")
    return f"{_absolutize(source)}:{rest}"


def _api_mount(mp: MountPoint) -> dict[str, Any]:
    """A ``--mount`` as docker's HostConfig.Mounts entry (the API's mount.Mount)."""
    out: dict[str, Any] = {"Type": mp.type, "Source": mp.name if mp.type == VOLUME else mp.source,
                           "Target": mp.destination}
    if not mp.rw:
        out["ReadOnly"] = True
    return out


def plan(settings: Settings, req: MountRequest, image_volumes: Iterable[str]) -> MountPlan:
    """Parse and check every mount flag (docker's errors), resolve ``--volumes-from`` containers
    and add the image's VOLUMEs; nothing is created yet."""
    explicit = ([parse_volume(v) for v in req.volumes] + [parse_mount(m) for m in req.mounts]
                + [parse_tmpfs(t) for t in req.tmpfs])
    others: list[MountPoint] = []
    if req.volumes_from:
        from katadocker.engine.containers import get

        for spec in req.volumes_from:
            ref, mode = parse_volumes_from(spec)
            points = [MountPoint.from_record(d) for d in get(settings, ref).config.get("MountPoints") or []]
            others += inherited(points, mode)
    return MountPlan(req, combine(explicit, others, image_volumes))


def points_of(record_config: dict[str, Any]) -> list[MountPoint]:
    """The MountPoints a container record holds (none for records made before volumes existed)."""
    return [MountPoint.from_record(d) for d in record_config.get("MountPoints") or []]


def inspect_mounts(volumes_dir: Any, record_config: dict[str, Any]) -> list[dict[str, Any]]:
    """docker's ``Mounts`` of a container (inspect, ps), sorted by destination; `volumes_dir` is
    the state root's volumes directory (a volume's Source)."""
    listed = sorted((mp for mp in points_of(record_config) if mp.listed), key=lambda mp: mp.destination)
    return [inspect_view(mp, str(volumes_dir / mp.name / "_data")) for mp in listed]
