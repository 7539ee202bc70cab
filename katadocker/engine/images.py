"""Image verbs: pull, list, remove, tag, inspect, history, prune, save, load, login, logout.

Every function takes the invocation's Settings and returns plain data; nothing here prints. Names
are returned the way docker's API returns them, in familiar form (``nginx:latest``,
``nginx@sha256:…``); the store keeps them in full form (``docker.io/library/nginx:latest``).
Semantics follow docker 28's daemon (graphdriver image store), cited per function.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from katadocker.config import Settings
from katadocker.errors import (
    Conflict,
    InvalidArgument,
    InvalidReference,
    KatadockerError,
    NoSuchImage,
    UsageError,
)
from katadocker.image.reference import Reference, parse_reference
from katadocker.image.store import ImageRecord, ImageStore
from katadocker.image.unpack import GZIP_MAGIC, ZSTD_MAGIC
from katadocker.state import clock

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
IMAGE_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"label", "until"})
_CHUNK = 1 << 20


def _store(settings: Settings) -> ImageStore:
    return ImageStore(settings.state)


def _familiar(full: str) -> str:
    """``docker.io/library/nginx:latest`` -> ``nginx:latest``."""
    return parse_reference(full).familiar


def _created_seconds(record: ImageRecord) -> int:
    """The config's creation time in Unix seconds (0 when absent or malformed)."""
    try:
        return max(clock.parse_ns(record.created) // 1_000_000_000, 0)
    except ValueError:
        return 0


# ---- pull, login, logout ------------------------------------------------------------------------


def pull_image(settings: Settings, ref_str: str, platform: str | None, on_event: Callable[[Any], None],
               all_tags: bool = False) -> list[Any]:
    """Pull `ref_str` (``latest`` by default) for `platform` (host's when None); return the PullResults.

    With `all_tags`, every tag of the repository is pulled (a tag or digest in `ref_str` is then
    refused with docker's text). `on_event` receives image.pull's progress events. Raises
    InvalidReference, InvalidArgument (platform) and the registry's errors.
    """
    from katadocker.image.platform import parse_platform
    from katadocker.image.pull import pull

    ref = parse_reference(ref_str)
    plat = parse_platform(platform) if platform else None
    if not all_tags:
        return [pull(settings, ref.with_default_tag(), plat, on_event)]
    if ref.tag or ref.digest:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    # Needs the registry's tag list (GET /v2/<name>/tags/list), which image.registry does not offer yet.
    raise InvalidArgument("pulling all tags (-a) is not supported yet")


def login(settings: Settings, server: str, username: str, password: str) -> str:
    """Check the credentials against `server` ("" = Docker Hub), store them; return docker's message."""
    from katadocker.image import auth

    return auth.login(settings, server, username, password)


def logout(settings: Settings, server: str) -> str:
    """Forget the credentials for `server` ("" = Docker Hub); return docker's message."""
    from katadocker.image import auth

    return auth.logout(settings, server)


# ---- list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSummary:
    """One image as docker's ``GET /images/json`` reports it. `id` is ``sha256:<hex>``; `created` is
    Unix seconds; `size` is the unpacked size in bytes; names are familiar."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    created: int
    size: int
    labels: dict[str, str] = field(default_factory=dict)


def parse_filters(values: list[str], allowed: frozenset[str]) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` -> ``{"dangling": ["true"], "label": ["a"]}``.

    Raises UsageError (docker's client-side text) for a value without ``=`` and InvalidArgument
    (docker's daemon text) for a key not in `allowed`.
    """
    out: dict[str, list[str]] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep:
            raise UsageError(f'invalid argument "{v}" for "-f, --filter" flag: '
                             "bad format of filter (expected name=value)")
        key = key.strip().lower()
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(val.strip())
    return out


def go_path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never match ``/``; ``[...]`` classes with ``^`` negation.

    A malformed pattern matches nothing (docker's filter then shows no images)."""
    regex = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex.append("[^/]*")
        elif c == "?":
            regex.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                return False
            body = pattern[i + 1:end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            regex.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            regex.append(re.escape(c))
        i += 1
    try:
        return re.fullmatch("".join(regex), name) is not None
    except re.error:
        return False


def _reference_matches(patterns: list[str], familiar: str) -> bool:
    """docker's FamiliarMatch against any pattern: the familiar string, then the familiar name."""
    name = parse_reference(familiar).familiar_name
    return any(go_path_match(p, familiar) or go_path_match(p, name) for p in patterns)


def _parse_until(value: str, now: float) -> float:
    """docker's `until`: Unix seconds, an RFC 3339 time, or a Go duration before now (``24h``)."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if m := re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value):
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        total = sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", m.group(1)))
        return now - total
    try:
        return clock.parse_ns(value) / 1e9
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={value}'") from None


def _labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    """Every ``key`` or ``key=value`` in `wanted` holds for `labels`."""
    for w in wanted:
        key, sep, val = w.partition("=")
        if key not in labels or (sep and labels[key] != val):
            return False
    return True


def _summary(record: ImageRecord) -> ImageSummary:
    return ImageSummary(
        id=record.id,
        repo_tags=[_familiar(t) for t in record.repo_tags],
        repo_digests=[_familiar(d) for d in record.repo_digests],
        created=_created_seconds(record),
        size=record.size,
        labels=dict((record.config.get("config") or {}).get("Labels") or {}),
    )


def _dangling_wanted(filters: dict[str, list[str]]) -> bool | None:
    """The `dangling` filter's value (None when absent); InvalidArgument for anything but a boolean."""
    values = filters.get("dangling")
    if not values:
        return None
    wanted = set()
    for v in values:
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"Invalid filter 'dangling={v}'")
        wanted.add(v.lower() in ("true", "1"))
    if len(wanted) > 1:
        raise InvalidArgument("invalid filter 'dangling': conflicting values")
    return wanted.pop()


def _time_bounds(store: ImageStore, filters: dict[str, list[str]]) -> tuple[float, float]:
    """(exclusive lower, exclusive upper) creation-time bounds from since/before/until."""
    lower, upper = float("-inf"), float("inf")
    for ref in filters.get("since", []):
        lower = max(lower, _created_seconds(store.get(ref)))
    for ref in filters.get("before", []):
        upper = min(upper, _created_seconds(store.get(ref)))
    for value in filters.get("until", []):
        upper = min(upper, _parse_until(value, time.time()) + 1e-9)
    return lower, upper


def _filtered(summary: ImageSummary, filters: dict[str, list[str]], dangling: bool | None,
              bounds: tuple[float, float]) -> ImageSummary | None:
    """The summary if it passes the filters (with only the names matching `reference`), else None."""
    if dangling is not None and (not summary.repo_tags) != dangling:
        return None
    if not bounds[0] < summary.created < bounds[1]:
        return None
    if not _labels_match(filters.get("label", []), summary.labels):
        return None
    patterns = filters.get("reference")
    if not patterns:
        return summary
    tags = [t for t in summary.repo_tags if _reference_matches(patterns, t)]
    digests = [d for d in summary.repo_digests if _reference_matches(patterns, d)]
    if not tags and not digests:
        return None
    return ImageSummary(summary.id, tags, digests, summary.created, summary.size, summary.labels)


def list_images(settings: Settings, all: bool = False,
                filters: dict[str, list[str]] | None = None) -> list[ImageSummary]:
    """The images ``docker images`` shows, newest first, after `filters` (see parse_filters).

    As docker 28's graphdriver store: dangling images (no tag) are listed too; `all` would add
    intermediate build images, which katadocker does not create. `reference` keeps only the names
    that match (Go glob on the familiar string or name); `before`/`since` name an image.
    """
    del all  # no intermediate images exist; the flag is accepted for compatibility
    filters = filters or {}
    store = _store(settings)
    dangling = _dangling_wanted(filters)
    bounds = _time_bounds(store, filters)
    out = [s for r in store.list() if (s := _filtered(_summary(r), filters, dangling, bounds)) is not None]
    out.sort(key=lambda s: (s.created, s.id), reverse=True)
    return out


# ---- remove, tag, prune -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteItem:
    """One line of docker's image delete report: exactly one of `untagged` (a familiar name) or
    `deleted` (an image ID or a layer's chain ID) is set."""

    untagged: str = ""
    deleted: str = ""


def containers_by_image(settings: Settings) -> dict[str, list[tuple[str, bool]]]:
    """Image ID -> (container ID, running) of every container created from it."""
    from katadocker.state.containers import ContainerStore

    out: dict[str, list[tuple[str, bool]]] = {}
    for r in ContainerStore(settings.state).all():
        out.setdefault(r.config.get("Image", ""), []).append((r.id, r.running))
    return out


def image_users(settings: Settings, image_id: str) -> list[tuple[str, bool]]:
    """(container ID, running) for every container created from `image_id`."""
    return containers_by_image(settings).get(image_id, [])


def _refs(record: ImageRecord) -> list[Reference]:
    """Every name of the image, sorted as docker's reference store returns them."""
    refs = [parse_reference(n) for n in (*record.repo_tags, *record.repo_digests)]
    return sorted(refs, key=lambda r: r.familiar)


def _is_id_prefix(image_id: str, s: str) -> bool:
    return image_id.startswith(s) or image_id.removeprefix("sha256:").startswith(s)


def _single_reference(refs: list[Reference]) -> bool:
    """docker's isSingleReference: at most one tag, and every digest ref in that tag's repository."""
    tags = [r for r in refs if not r.digest]
    if len(tags) > 1 or not refs:
        return False
    names = {r.name for r in refs if r.digest}
    single = tags[0] if tags else refs[0]
    return not names or names == {single.name}


def _delete_conflict(record: ImageRecord, message: str, *, hard: bool) -> Conflict:
    how = "cannot be forced" if hard else "must be forced"
    return Conflict(f"conflict: unable to delete {record.short_id} ({how}) - {message}")


def _check_conflicts(settings: Settings, record: ImageRecord, *, soft: bool, references: bool) -> None:
    """docker's checkImageDeleteConflict: a running container always conflicts; with `soft`, names
    (when `references`) and stopped containers do too."""
    users = image_users(settings, record.id)
    running = [cid for cid, up in users if up]
    if running:
        raise _delete_conflict(record, f"image is being used by running container {running[0][:12]}",
                               hard=True)
    if soft and references and (record.repo_tags or record.repo_digests):
        raise _delete_conflict(record, "image is referenced in multiple repositories", hard=False)
    if soft and users:
        raise _delete_conflict(record, f"image is being used by stopped container {users[0][0][:12]}",
                               hard=False)


def _chain_ids(diff_ids: list[str]) -> list[str]:
    """The layers' chain IDs (bottom first), as docker names layers in its delete reports."""
    chain: list[str] = []
    for d in diff_ids:
        chain.append(d if not chain else "sha256:" + hashlib.sha256(f"{chain[-1]} {d}".encode()).hexdigest())
    return chain


def _delete_record(settings: Settings, store: ImageStore,
                   record: ImageRecord) -> tuple[list[DeleteItem], int]:
    """Drop every name and the record, collect its now unused layers; return the report and the
    bytes of unpacked layers freed."""
    items = [DeleteItem(untagged=r.familiar) for r in _refs(record)]
    sizes = {d: store.layers.info(d).size for d in record.layers if store.layers.has(d)}
    store.remove(record.id)
    items.append(DeleteItem(deleted=record.id))
    removed = set(store.gc().layers)
    pairs = zip(record.layers, _chain_ids(record.layers), strict=True)
    freed = [(d, chain) for d, chain in pairs if d in removed]
    items += [DeleteItem(deleted=chain) for _, chain in reversed(freed)]
    return items, sum(sizes.get(d, 0) for d, _ in freed)


def _untag(store: ImageStore, record: ImageRecord, ref: Reference) -> tuple[list[DeleteItem], ImageRecord]:
    """Remove `ref`; if it was the repository's last tag, its digest refs go too (as docker)."""
    store.untag(ref)
    items = [DeleteItem(untagged=ref.familiar)]
    record = store.get(record.id)
    remaining = _refs(record)
    if not ref.digest and not any(not r.digest and r.name == ref.name for r in remaining):
        for r in remaining:
            if r.digest and r.name == ref.name:
                store.untag(r)
                items.append(DeleteItem(untagged=r.familiar))
        record = store.get(record.id)
    return items, record


def _remove_by_name(settings: Settings, store: ImageStore, record: ImageRecord, name: str,
                    force: bool) -> list[DeleteItem]:
    ref = parse_reference(name)
    ref = ref if ref.digest else ref.with_default_tag()
    if not force and _single_reference(_refs(record)) and (users := image_users(settings, record.id)):
        raise Conflict(f'conflict: unable to remove repository reference "{ref.familiar}" (must force) - '
                       f"container {users[0][0][:12]} is using its referenced image {record.short_id}")
    items, record = _untag(store, record, ref)
    users = image_users(settings, record.id)
    if _refs(record) or any(up for _, up in users) or (users and not force):
        return items  # still named, or kept (dangling) for the container using it, as docker does
    return items + _delete_record(settings, store, record)[0]


def _remove_by_id(settings: Settings, store: ImageStore, record: ImageRecord,
                  force: bool) -> list[DeleteItem]:
    items: list[DeleteItem] = []
    if _single_reference(_refs(record)):
        _check_conflicts(settings, record, soft=not force, references=False)
        for ref in _refs(record):
            store.untag(ref)
            items.append(DeleteItem(untagged=ref.familiar))
        record = store.get(record.id)
    _check_conflicts(settings, record, soft=not force, references=True)
    return items + _delete_record(settings, store, record)[0]


def remove_image(settings: Settings, name: str, force: bool = False) -> list[DeleteItem]:
    """``docker rmi NAME`` for one argument (docker's ImageDelete).

    By name: untag it; the image itself is deleted once its last name is gone (unless a container
    uses it). Refused without `force` when the image has no other tag and a container uses it.
    By ID (or ID prefix): delete the image and its names if it has at most one tag (its
    digest refs aside), else refused without `force` ("referenced in multiple repositories"); a
    running container always refuses. Raises NoSuchImage, AmbiguousImageID, Conflict.
    """
    store = _store(settings)
    record = store.get(name)
    if _is_id_prefix(record.id, name):
        return _remove_by_id(settings, store, record, force)
    return _remove_by_name(settings, store, record, name, force)


def tag_image(settings: Settings, source: str, target: str) -> None:
    """``docker tag SOURCE TARGET``: name the image `source` also `target` (``latest`` by default)."""
    store = _store(settings)
    record = store.get(source)
    ref = parse_reference(target)
    if ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    store.tag(record.id, ref.with_default_tag())


def prune_images(settings: Settings, all: bool = False,
                 filters: dict[str, list[str]] | None = None) -> tuple[list[DeleteItem], int]:
    """``docker image prune``: delete dangling images (every image with `all`) that no container
    uses and that pass `label`/`until` filters; return the report and the unpacked bytes freed."""
    filters = filters or {}
    store = _store(settings)
    upper = min((_parse_until(v, time.time()) for v in filters.get("until", [])), default=float("inf"))
    used = containers_by_image(settings)
    items: list[DeleteItem] = []
    freed = 0
    for record in store.list():
        summary = _summary(record)
        if record.id in used or (summary.repo_tags and not all) or summary.created >= upper:
            continue
        if not _labels_match(filters.get("label", []), summary.labels):
            continue
        deleted, size = _delete_record(settings, store, record)
        items += deleted
        freed += size
    return items, freed


# ---- inspect, history ---------------------------------------------------------------------------

# docker 28's image Config (container.Config): keys always present, in the daemon's order.
_CONFIG_KEYS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False), ("AttachStdout", False),
    ("AttachStderr", False), ("ExposedPorts", None), ("Tty", False), ("OpenStdin", False),
    ("StdinOnce", False), ("Env", None), ("Cmd", None), ("Healthcheck", None), ("ArgsEscaped", None),
    ("Image", ""), ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None), ("OnBuild", None),
    ("Labels", None), ("StopSignal", None), ("Shell", None),
)
# Keys Go's encoder omits when empty (`omitempty`).
_OMIT_EMPTY = frozenset({"ExposedPorts", "Healthcheck", "ArgsEscaped", "StopSignal", "Shell"})


def _docker_config(oci: dict[str, Any]) -> dict[str, Any]:
    """The image config's ``config`` object in docker's inspect shape."""
    out = {}
    for key, default in _CONFIG_KEYS:
        value = oci.get(key, default)
        if key in _OMIT_EMPTY and not value:
            continue
        out[key] = value
    return out


def _graph_driver(store: ImageStore, record: ImageRecord) -> dict[str, Any]:
    """overlay2-like GraphDriver data: the top layer as UpperDir, the others (top first) as LowerDir."""
    paths = [str(store.layers.path(d)) for d in reversed(record.layers)]
    data: dict[str, str] = {}
    if len(paths) > 1:
        data["LowerDir"] = ":".join(paths[1:])
    if paths:
        data["UpperDir"] = paths[0]
    return {"Data": data, "Name": "overlay2"}


def inspect_image(settings: Settings, ref: str) -> dict[str, Any]:
    """``docker image inspect REF``: docker 28's JSON object for the image (keys in its order)."""
    store = _store(settings)
    record = store.get(ref)
    cfg = record.config
    out: dict[str, Any] = {
        "Id": record.id,
        "RepoTags": [_familiar(t) for t in record.repo_tags],
        "RepoDigests": [_familiar(d) for d in record.repo_digests],
        "Parent": "",
        "Comment": cfg.get("comment", ""),
        "Created": cfg.get("created") or clock.ZERO_TIME,
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _docker_config(cfg.get("config") or {}),
        "Architecture": record.architecture,
    }
    if record.variant:
        out["Variant"] = record.variant
    out.update({
        "Os": record.os,
        "Size": record.size,
        "GraphDriver": _graph_driver(store, record),
        "RootFS": {"Type": "layers", "Layers": list(record.layers)},
        "Metadata": {"LastTagTime": clock.ZERO_TIME},
    })
    return out


@dataclass(frozen=True)
class HistoryItem:
    """One row of ``docker history`` (newest first): `id` is the image ID on the top row and
    ``<missing>`` below it; `created` is Unix seconds; `size` the layer's unpacked bytes (0 for
    entries that made no layer)."""

    id: str
    created: int
    created_by: str
    size: int
    comment: str
    tags: list[str] = field(default_factory=list)


def _history_seconds(entry: dict[str, Any]) -> int:
    try:
        return max(clock.parse_ns(entry.get("created", "")) // 1_000_000_000, 0)
    except ValueError:
        return 0


def image_history(settings: Settings, ref: str) -> list[HistoryItem]:
    """``docker history REF`` from the config's history: each entry without ``empty_layer`` owns the
    next layer (bottom first) and gets its size. Raises InvalidArgument when the history names
    more layers than the image has, as docker does."""
    store = _store(settings)
    record = store.get(ref)
    layers = iter(record.layers)
    rows: list[HistoryItem] = []
    for entry in record.config.get("history") or []:
        size = 0
        if not entry.get("empty_layer"):
            diff_id = next(layers, None)
            if diff_id is None:
                raise InvalidArgument("too many non-empty layers in History section")
            size = store.layers.info(diff_id).size if store.layers.has(diff_id) else 0
        rows.append(HistoryItem("<missing>", _history_seconds(entry), entry.get("created_by", ""), size,
                                entry.get("comment", "")))
    rows.reverse()
    if rows:
        tags = [_familiar(t) for t in record.repo_tags]
        top = rows[0]
        rows[0] = HistoryItem(record.id, top.created, top.created_by, top.size, top.comment, tags)
    return rows


# ---- save ---------------------------------------------------------------------------------------


def _open_uncompressed(path: Path) -> IO[bytes]:
    """`path` opened for reading its uncompressed bytes (gzip or zstd by magic, else as is)."""
    raw = open(path, "rb")  # noqa: SIM115  returned to the caller, who closes it
    head = raw.read(4)
    raw.seek(0)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    return raw


def _uncompressed_copy(src: Path, dest: Path) -> str:
    """Write `src`'s uncompressed bytes to `dest`; return their digest (the layer's diff ID)."""
    h = hashlib.sha256()
    with _open_uncompressed(src) as f, open(dest, "wb") as out:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            out.write(chunk)
    return "sha256:" + h.hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, _BytesReader(data))


class _BytesReader:
    """A minimal readable over bytes (tarfile.addfile needs only read())."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = bytes(self._data[self._pos:end])
        self._pos += len(chunk)
        return chunk


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


@dataclass
class _SaveEntry:
    record: ImageRecord
    tags: list[Reference] = field(default_factory=list)


def _save_entries(store: ImageStore, refs: list[str]) -> list[_SaveEntry]:
    """One entry per distinct image, in argument order, with the tags named on the command line."""
    entries: dict[str, _SaveEntry] = {}
    for name in refs:
        record = store.get(name)
        entry = entries.setdefault(record.id, _SaveEntry(record))
        if _is_id_prefix(record.id, name):
            continue
        ref = parse_reference(name)
        if not ref.digest:
            ref = ref.with_default_tag()
            if ref not in entry.tags:
                entry.tags.append(ref)
    return list(entries.values())


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _save_layers(tar: tarfile.TarFile, store: ImageStore, record: ImageRecord, written: set[str],
                 scratch: Path) -> list[dict[str, Any]]:
    """Add each layer uncompressed as ``blobs/sha256/<diff id>``; return their OCI descriptors."""
    descriptors = []
    for diff_id, blob in zip(record.layers, record.layer_digests, strict=True):
        dest = scratch / diff_id.removeprefix("sha256:")
        if diff_id not in written:
            actual = _uncompressed_copy(store.content.path(blob), dest)
            if actual != diff_id:
                raise KatadockerError(f"layer {blob} does not match its diff ID {diff_id} (got {actual})")
            tar.add(dest, arcname=_blob_name(diff_id), recursive=False)
            written.add(diff_id)
        descriptors.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": dest.stat().st_size})
    return descriptors


def _save_one(tar: tarfile.TarFile, store: ImageStore, entry: _SaveEntry, written: set[str],
              scratch: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write one image's blobs; return its manifest.json entry and its index.json descriptors."""
    record = entry.record
    layers = _save_layers(tar, store, record, written, scratch)
    config = store.content.read(record.id)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": record.id, "size": len(config)},
                           "layers": layers}, separators=(",", ":")).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    for digest, data in ((record.id, config), (manifest_digest, manifest)):
        if digest not in written:
            _add_bytes(tar, _blob_name(digest), data)
            written.add(digest)
    descriptor = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
    index = [{**descriptor, "annotations": {IMAGE_NAME_ANNOTATION: str(t), REF_NAME_ANNOTATION: t.tag}}
             for t in entry.tags] or [descriptor]
    legacy = {"Config": _blob_name(record.id), "RepoTags": [t.familiar for t in entry.tags] or None,
              "Layers": [_blob_name(d) for d in record.layers]}
    return legacy, index


def save_images(settings: Settings, refs: list[str], out: IO[bytes]) -> None:
    """``docker save``: write a tar to `out` in docker 25+'s combined format, readable both as a
    docker archive (``manifest.json``, ``repositories``) and as an OCI image layout (``oci-layout``,
    ``index.json``); layers are stored uncompressed under their diff IDs. Raises NoSuchImage
    before writing anything if any name is unknown."""
    store = _store(settings)
    entries = _save_entries(store, refs)
    settings.state.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.state.tmp, prefix="save-") as tmp, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            _add_dir(tar, d)
        written: set[str] = set()
        legacy, index = [], []
        repositories: dict[str, dict[str, str]] = {}
        for entry in entries:
            item, descriptors = _save_one(tar, store, entry, written, Path(tmp))
            legacy.append(item)
            index += descriptors
            for t in entry.tags:
                top = entry.record.layers[-1].removeprefix("sha256:") if entry.record.layers else ""
                repositories.setdefault(t.familiar_name, {})[t.tag] = top
        _add_bytes(tar, "index.json", json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
        _add_bytes(tar, "manifest.json", json.dumps(legacy).encode())
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode())


# ---- load ---------------------------------------------------------------------------------------


def _safe_member_path(root: Path, name: str) -> Path | None:
    """Where archive member `name` lands under `root`, or None if it would climb out."""
    norm = posixpath.normpath("/" + name).lstrip("/")
    if not norm or norm == ".":
        return None
    return root / norm


def _extract_archive(stream: IO[bytes], root: Path) -> None:
    """Extract the (possibly compressed) archive's regular files and directories under `root`;
    symlinks (legacy archives link repeated layers) become copies when their target is inside."""
    links: list[tuple[Path, str]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                dest = _safe_member_path(root, member.name)
                if dest is None:
                    continue
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                elif member.isreg():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    assert src is not None  # a regular file always has data
                    with open(dest, "wb") as f:
                        shutil.copyfileobj(src, f, _CHUNK)
                elif member.issym() or member.islnk():
                    base = posixpath.dirname(member.name) if member.issym() else ""
                    links.append((dest, posixpath.join(base, member.linkname)))
    except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as e:
        raise InvalidArgument(f"failed to read the image archive: {e}") from None
    for dest, target in links:
        src = _safe_member_path(root, target)
        if src is not None and src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


@dataclass
class _LoadImage:
    """An image found in an archive: its config bytes, layer files with media types, and names."""

    config: bytes
    layers: list[tuple[Path, str | None]]
    names: list[Reference]


def _archive_file(root: Path, name: str) -> Path:
    path = _safe_member_path(root, name)
    if path is None or not path.is_file():
        raise InvalidArgument(f"invalid image archive: {name} is missing")
    return path


def _names(values: list[str]) -> list[Reference]:
    out = []
    for v in values:
        try:
            out.append(parse_reference(v).with_default_tag())
        except InvalidReference:
            raise InvalidArgument(f"invalid tag {v!r} in the image archive") from None
    return out


def _docker_images(root: Path) -> list[_LoadImage]:
    """Images listed by a docker archive's manifest.json (legacy ``<id>/layer.tar`` or blobs/)."""
    entries = json.loads(_archive_file(root, "manifest.json").read_text())
    return [_LoadImage(config=_archive_file(root, e["Config"]).read_bytes(),
                       layers=[(_archive_file(root, p), None) for p in e.get("Layers") or []],
                       names=_names(e.get("RepoTags") or []))
            for e in entries]


def _oci_blob(root: Path, digest: str) -> Path:
    return _archive_file(root, _blob_name(digest))


def _oci_manifests(root: Path, index: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(descriptor, manifest) for each image manifest in `index`; nested indexes resolve to the
    host's platform."""
    from katadocker.image.platform import host_platform, select_manifest

    for desc in index.get("manifests") or []:
        doc = json.loads(_oci_blob(root, desc["digest"]).read_text())
        if desc.get("mediaType") in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in doc:
            chosen = select_manifest(doc["manifests"], host_platform())
            doc = json.loads(_oci_blob(root, chosen["digest"]).read_text())
        yield desc, doc


def _oci_name(annotations: dict[str, str]) -> list[Reference]:
    """The image's name from docker's/containerd's annotation, else a full ref.name annotation."""
    for value in (annotations.get(IMAGE_NAME_ANNOTATION), annotations.get(REF_NAME_ANNOTATION)):
        if not value:
            continue
        try:
            ref = parse_reference(value)
        except InvalidReference:
            continue  # a bare tag ("latest"): no repository to name
        if "/" in value or ":" in value:
            return [ref.with_default_tag()]
    return []


def _oci_images(root: Path) -> list[_LoadImage]:
    """Images of an OCI image layout (index.json); descriptors of one manifest merge their names."""
    index = json.loads(_archive_file(root, "index.json").read_text())
    found: dict[str, _LoadImage] = {}
    for desc, manifest in _oci_manifests(root, index):
        config_digest = manifest["config"]["digest"]
        image = found.setdefault(config_digest, _LoadImage(
            config=_oci_blob(root, config_digest).read_bytes(),
            layers=[(_oci_blob(root, d["digest"]), d.get("mediaType")) for d in manifest.get("layers") or []],
            names=[]))
        image.names += [n for n in _oci_name(desc.get("annotations") or {}) if n not in image.names]
    return list(found.values())


def _import_layer(store: ImageStore, path: Path, media_type: str | None, diff_id: str,
                  scratch: Path) -> tuple[str, str]:
    """Put one layer file into the content store and unpack it; return (blob digest, media type).

    Compressed files are kept as they are; an uncompressed tar is stored under its diff ID."""
    with open(path, "rb") as f:
        head = f.read(4)
    if media_type is None:
        suffix = "+gzip" if head.startswith(GZIP_MAGIC) else "+zstd" if head == ZSTD_MAGIC else ""
        media_type = OCI_LAYER + suffix
    actual = _uncompressed_copy(path, scratch / "check")
    if actual != diff_id:
        raise InvalidArgument(f"invalid diffID for layer {path.name}: expected {diff_id!r}, got {actual!r}")
    blob = _sha256_file(path) if media_type != OCI_LAYER else diff_id
    if not store.content.has(blob):
        partial = store.content.partial_path(blob)
        shutil.move(scratch / "check" if blob == diff_id else path, partial)
        store.content.commit(blob, partial)
    store.layers.unpack(store.content.path(blob), media_type, diff_id, blob)
    return blob, media_type


def _import_image(store: ImageStore, image: _LoadImage, scratch: Path) -> tuple[ImageRecord, list[str]]:
    """Store one archive image and name it; return the record and docker's notices of names that
    moved from another image."""
    config = json.loads(image.config)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(image.layers):
        raise InvalidArgument(
            f"invalid image archive: {len(image.layers)} layers for {len(diff_ids)} diff IDs")
    image_id = store.content.put(image.config)
    pairs = zip(image.layers, diff_ids, strict=True)
    blobs = [_import_layer(store, path, mt, d, scratch) for (path, mt), d in pairs]
    layers = [{"mediaType": mt, "digest": b, "size": store.content.path(b).stat().st_size} for b, mt in blobs]
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(image.config)},
                           "layers": layers}).encode()
    notices = []
    for name in image.names:
        try:
            old = store.get(str(name))
        except NoSuchImage:
            continue
        if old.id != image_id:
            notices.append(f"The image {name.familiar} already exists, renaming the old one with ID "
                           f"{old.id} to empty string")
    record = ImageRecord(
        id=image_id, config=config, layers=diff_ids, layer_digests=[b for b, _ in blobs],
        layer_media_types=[mt for _, mt in blobs], manifest_digest=store.content.put(manifest),
        manifest_media_type=OCI_MANIFEST, size=sum(store.layers.info(d).size for d in diff_ids),
        repo_tags=[str(n) for n in image.names])
    return store.add(record), notices


def load_images(settings: Settings, stream: IO[bytes]) -> list[str]:
    """``docker load``: import every image of a docker archive (manifest.json; legacy or docker 25+
    layout, as podman and docker write them) or an OCI image layout (index.json), possibly
    compressed. Returns docker's lines: ``Loaded image: NAME`` per name, ``Loaded image ID: ID`` for
    an unnamed image, preceded by a notice for each name taken from another image."""
    store = _store(settings)
    settings.state.tmp.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(dir=settings.state.tmp, prefix="load-") as tmp, store.ingesting():
        root = Path(tmp) / "archive"
        scratch = Path(tmp) / "scratch"
        root.mkdir()
        scratch.mkdir()
        _extract_archive(stream, root)
        if (root / "manifest.json").is_file():
            images = _docker_images(root)
        elif (root / "index.json").is_file():
            images = _oci_images(root)
        else:
            raise InvalidArgument("invalid image archive: it holds neither manifest.json nor index.json")
        for image in images:
            record, notices = _import_image(store, image, scratch)
            lines += notices
            names = [n.familiar for n in image.names]
            lines += [f"Loaded image: {n}" for n in names] or [f"Loaded image ID: {record.id}"]
    return lines
