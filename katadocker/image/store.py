"""The image store: content-addressed blobs, unpacked layers shared by every image, image records.

On disk (see state.paths)::

    blobs/sha256/<hex>         ContentStore: manifests, configs, compressed layers (immutable)
    blobs/partial/<hex>        partly downloaded blobs, kept so an interrupted pull resumes
    layers/<hex>/fs            LayerStore: one unpacked layer (overlayfs lower dir), keyed by diff ID
    layers/<hex>/layer.json    {"diff_id", "size", "blob_digest", "media_type"}
    images/<hex>.json          ImageStore: one record per image ID (config digest), without its names
    images/repositories.json   {"tags": {full ref: image ID}, "digests": {full ref@digest: image ID}}

Crash safety: every file is written to a temp name and renamed; a layer is unpacked into
``tmp/layer-<hex>-*`` and renamed into ``layers/`` whole. Leftover temp files and dirs are ignored by
every reader and removed by `ImageStore.gc` (and, for a layer, by its next unpack).

Locks (state.lock), always taken in this order, never nested twice in one thread:

1. ``image-ingest`` — held *shared* by anyone adding content not yet referenced by an image record
   (`ImageStore.ingesting()`: pull, load) and *exclusive* by `gc`, so gc never collects a blob or
   layer that a running pull is about to record. gc therefore waits for running pulls.
2. ``layer-<hex>`` / ``blob-<hex>`` — one writer per layer unpack or blob download.
3. ``image-store`` — around every change to image records and repositories.json.

Which layers are in use: those of every image record, plus the diff IDs a container lists under
``"Layers"`` in ``containers/<id>/config.json`` (so a container keeps its layers even when its image
record is gone). gc never removes image records, only unreferenced layers and blobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from katadocker.errors import (
    AmbiguousImageID,
    DigestMismatch,
    InvalidArgument,
    InvalidReference,
    NoSuchImage,
    NotFound,
)
from katadocker.image.reference import Reference, parse_reference
from katadocker.state.atomic import read_json, write_bytes, write_json
from katadocker.state.lock import locked
from katadocker.state.paths import StateRoot

_FULL_ID_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{64})$")
_ID_PREFIX_RE = re.compile(r"^(?:sha256:)?([a-f0-9]+)$")
_HEX_RE = re.compile(r"^[a-f0-9]{64}$")
_LAYER_TMP_PREFIX = "layer-"
_DELETED_TMP_PREFIX = "deleted-"
_INDEX_NAME = "repositories.json"


def _hex(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest; ValueError for anything else."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not _HEX_RE.match(hexpart):
        raise ValueError(f"unsupported digest {digest!r}")
    return hexpart


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _discard_tree(state: StateRoot, path: Path) -> None:
    """Remove a directory so that it vanishes at once (rename into tmp/, then delete)."""
    state.tmp.mkdir(parents=True, exist_ok=True)
    doomed = Path(tempfile.mkdtemp(dir=state.tmp, prefix=_DELETED_TMP_PREFIX))
    os.rename(path, doomed / "x")
    shutil.rmtree(doomed, ignore_errors=True)


class ContentStore:
    """Immutable blobs under ``blobs/sha256/<hex>``; a blob is present only once fully verified."""

    def __init__(self, state: StateRoot) -> None:
        self.state = state

    def path(self, digest: str) -> Path:
        return self.state.blob(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        """The blob's bytes; NotFound when absent."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (temp file + fsync + rename) and return its digest; DigestMismatch if `digest`
        is given and differs."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatch("blob", digest, actual)
        if not self.has(actual):
            write_bytes(self.path(actual), data)
        return actual

    def partial_path(self, digest: str) -> Path:
        """Where a download of `digest` accumulates; kept across interruptions so it can resume."""
        self.state.partial_blobs.mkdir(parents=True, exist_ok=True)
        return self.state.partial_blobs / _hex(digest)

    def commit(self, digest: str, partial: Path) -> Path:
        """Verify that `partial` holds exactly `digest`, then fsync and rename it into the store.

        On mismatch `partial` is deleted and DigestMismatch raised. Returns the blob's path.
        """
        actual = _sha256_file(partial)
        if actual != digest:
            partial.unlink(missing_ok=True)
            raise DigestMismatch(f"blob {digest}", digest, actual)
        fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dest = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, dest)
        return dest

    def digests(self) -> set[str]:
        """Digests of every stored blob (temp files are not blobs)."""
        if not self.state.blobs.is_dir():
            return set()
        return {f"sha256:{p.name}" for p in self.state.blobs.iterdir() if _HEX_RE.match(p.name)}

    def delete(self, digest: str) -> int:
        """Remove a blob; return the bytes freed (0 if it was absent)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def remove_temp_files(self) -> None:
        """Delete temp files left in the blob dir by interrupted writes. Caller excludes writers."""
        if self.state.blobs.is_dir():
            for p in self.state.blobs.iterdir():
                if p.name.startswith("."):
                    p.unlink(missing_ok=True)


@dataclass(frozen=True)
class LayerInfo:
    """Metadata of one unpacked layer: `size` is the sum of its regular files' sizes."""

    diff_id: str
    size: int
    blob_digest: str | None
    media_type: str | None


class LayerStore:
    """Unpacked layers under ``layers/<diff-id hex>/fs``, each shared by every image that has it."""

    def __init__(self, state: StateRoot) -> None:
        self.state = state

    def _dir(self, diff_id: str) -> Path:
        return self.state.layers / _hex(diff_id)

    def path(self, diff_id: str) -> Path:
        """The unpacked tree, usable directly as an overlayfs lower dir."""
        return self._dir(diff_id) / "fs"

    def has(self, diff_id: str) -> bool:
        return (self._dir(diff_id) / "layer.json").is_file()

    def info(self, diff_id: str) -> LayerInfo:
        """The layer's metadata; NotFound when the layer is not unpacked."""
        try:
            return LayerInfo(**read_json(self._dir(diff_id) / "layer.json"))
        except FileNotFoundError:
            raise NotFound(f"layer {diff_id} not found in the layer store") from None

    def unpack(self, blob_path: Path, media_type: str | None, expected_diff_id: str,
               blob_digest: str | None = None, on_progress: Callable[[int], None] | None = None) -> Path:
        """Unpack `blob_path` as the layer `expected_diff_id` unless already present; return `path()`.

        `on_progress(n)`: bytes of `blob_path` consumed so far (see unpack.unpack_layer).
        Idempotent and safe under concurrency (per-layer lock; the second caller finds it done).
        Unpacks into ``tmp/layer-<hex>-*`` and renames the whole dir into place after the diff ID is
        verified, so a crash or error leaves no layer behind. Raises DigestMismatch, UnsafeLayer,
        BadLayer.
        """
        # imported here: tarfile and the decompressors are not needed by the container monitor
        from katadocker.image.unpack import check_layer_media_type, unpack_layer

        check_layer_media_type(media_type)
        hexpart = _hex(expected_diff_id)
        with locked(self.state.locks, f"layer-{hexpart}"):
            if self.has(expected_diff_id):
                return self.path(expected_diff_id)
            self._remove_stale_tmp(hexpart)
            self.state.tmp.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(dir=self.state.tmp, prefix=f"{_LAYER_TMP_PREFIX}{hexpart}-"))
            try:
                (work / "fs").mkdir()
                result = unpack_layer(blob_path, work / "fs", expected_diff_id, on_progress)
                info = LayerInfo(expected_diff_id, result.size, blob_digest, media_type)
                write_json(work / "layer.json", asdict(info))
                os.chmod(work, 0o755)
                self.state.layers.mkdir(parents=True, exist_ok=True)
                os.rename(work, self._dir(expected_diff_id))
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
        return self.path(expected_diff_id)

    def _remove_stale_tmp(self, hexpart: str) -> None:
        """Remove unpack dirs of this layer left by a crash (the caller holds the layer's lock)."""
        for p in self.state.tmp.glob(f"{_LAYER_TMP_PREFIX}{hexpart}-*"):
            shutil.rmtree(p, ignore_errors=True)

    def diff_ids(self) -> set[str]:
        """Diff IDs of every complete layer."""
        if not self.state.layers.is_dir():
            return set()
        return {f"sha256:{p.name}" for p in self.state.layers.iterdir()
                if _HEX_RE.match(p.name) and (p / "layer.json").is_file()}

    def delete(self, diff_id: str) -> int:
        """Remove a layer (it vanishes atomically); return its recorded size (0 if absent)."""
        hexpart = _hex(diff_id)
        with locked(self.state.locks, f"layer-{hexpart}"):
            if not self._dir(diff_id).exists():
                return 0
            size = self.info(diff_id).size if self.has(diff_id) else 0
            _discard_tree(self.state, self._dir(diff_id))
        return size


@dataclass
class ImageRecord:
    """One image. `id` is ``sha256:<config digest hex>``; `layers` are diff IDs (bottom first) with
    the matching compressed blob digests and media types; `size` sums the unpacked layer sizes.

    `repo_tags` (``docker.io/library/nginx:latest``) and `repo_digests`
    (``docker.io/library/nginx@sha256:…``) are stored in full form; show them with
    ``parse_reference(s).familiar``. `manifest_digest` is the platform manifest the image came from.
    """

    id: str
    config: dict[str, Any]
    layers: list[str]
    layer_digests: list[str]
    layer_media_types: list[str]
    manifest_digest: str
    manifest_media_type: str
    size: int
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        """The 12 hex characters docker shows."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def created(self) -> str:
        """The config's RFC 3339 creation time ("" when absent)."""
        return self.config.get("created", "")

    @property
    def os(self) -> str:
        return self.config.get("os", "")

    @property
    def architecture(self) -> str:
        return self.config.get("architecture", "")

    @property
    def variant(self) -> str:
        return self.config.get("variant", "")

    def to_json(self) -> dict[str, Any]:
        """The record file's content: everything but the names, which live in repositories.json."""
        data = asdict(self)
        del data["repo_tags"], data["repo_digests"]
        return data


@dataclass
class GcResult:
    """What `ImageStore.gc` removed and how many bytes that freed."""

    layers: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    reclaimed: int = 0


def _name_key(ref: Reference) -> tuple[str, str]:
    """(map, key) naming `ref` in repositories.json: a digest ref wins over its tag, as in docker."""
    if ref.digest:
        return "digests", f"{ref.name}@{ref.digest}"
    return "tags", str(ref.with_default_tag())


class ImageStore:
    """Image records and their names, plus the content and layer stores they reference.

    Readers take no lock (every file is replaced atomically); mutations hold ``image-store``.
    """

    def __init__(self, state: StateRoot) -> None:
        self.state = state
        self.content = ContentStore(state)
        self.layers = LayerStore(state)

    # -- locks ---------------------------------------------------------------------------------

    @contextmanager
    def ingesting(self) -> Iterator[None]:
        """Hold while adding blobs/layers not yet referenced by a record, so `gc` leaves them alone."""
        with locked(self.state.locks, "image-ingest", shared=True):
            yield

    @contextmanager
    def _mutating(self) -> Iterator[dict[str, dict[str, str]]]:
        """Hold the image-store lock and yield repositories.json's maps; written back on success."""
        with locked(self.state.locks, "image-store"):
            index = self._index()
            before = json.dumps(index, sort_keys=True)
            yield index
            if json.dumps(index, sort_keys=True) != before:
                write_json(self.state.images / _INDEX_NAME, index)

    # -- reading -------------------------------------------------------------------------------

    def _index(self) -> dict[str, dict[str, str]]:
        try:
            index = read_json(self.state.images / _INDEX_NAME)
        except FileNotFoundError:
            index = {}
        return {"tags": index.get("tags", {}), "digests": index.get("digests", {})}

    def _record_path(self, image_id: str) -> Path:
        return self.state.images / f"{_hex(image_id)}.json"

    def _ids(self) -> list[str]:
        if not self.state.images.is_dir():
            return []
        return sorted(f"sha256:{p.stem}" for p in self.state.images.glob("*.json") if _HEX_RE.match(p.stem))

    def _load(self, image_id: str, index: dict[str, dict[str, str]]) -> ImageRecord:
        try:
            data = read_json(self._record_path(image_id))
        except FileNotFoundError:
            raise NoSuchImage(image_id) from None
        return ImageRecord(
            **data,
            repo_tags=sorted(k for k, v in index["tags"].items() if v == image_id),
            repo_digests=sorted(k for k, v in index["digests"].items() if v == image_id),
        )

    def list(self) -> list[ImageRecord]:
        """Every image (tagged or dangling), ordered by ID."""
        index = self._index()
        return [self._load(i, index) for i in self._ids()]

    def exists(self, image_id: str) -> bool:
        return self._record_path(image_id).is_file()

    def get(self, ref_or_id: str) -> ImageRecord:
        """Resolve as docker does: a full ID (with or without ``sha256:``), then a name (``name:tag``,
        ``latest`` by default; ``name@digest``), then a unique ID prefix.

        Raises NoSuchImage, AmbiguousImageID (prefix matches several), or InvalidReference when the
        string is neither a reference nor an ID prefix.
        """
        index = self._index()
        return self._load(self._resolve(ref_or_id, index), index)

    def _resolve(self, s: str, index: dict[str, dict[str, str]]) -> str:
        if m := _FULL_ID_RE.match(s):
            image_id = f"sha256:{m.group(1)}"
            if self.exists(image_id):
                return image_id
            raise NoSuchImage(s)
        try:
            ref: Reference | None = parse_reference(s)
        except InvalidReference:
            if not _ID_PREFIX_RE.match(s):
                raise
            ref = None
        if ref is not None:
            kind, key = _name_key(ref)
            if key in index[kind]:
                return index[kind][key]
        if found := self._by_prefix(s):
            return found
        raise NoSuchImage(ref.with_default_tag().familiar if ref else s)

    def _by_prefix(self, s: str) -> str | None:
        """The one image whose ID starts with hex string `s` (``sha256:`` optional), None if none or
        `s` is not hex; AmbiguousImageID when several match."""
        m = _ID_PREFIX_RE.match(s)
        if not m:
            return None
        matches = [i for i in self._ids() if i.removeprefix("sha256:").startswith(m.group(1))]
        if len(matches) > 1:
            raise AmbiguousImageID(m.group(1))
        return matches[0] if matches else None

    # -- mutations -----------------------------------------------------------------------------

    def add(self, record: ImageRecord) -> ImageRecord:
        """Write the record (replacing one with the same ID) and point its repo tags and digests at
        it, moving them from any other image (which stays, possibly dangling). Returns the stored
        record with all its names."""
        with self._mutating() as index:
            write_json(self._record_path(record.id), record.to_json())
            for tag in record.repo_tags:
                index["tags"][tag] = record.id
            for digest_ref in record.repo_digests:
                index["digests"][digest_ref] = record.id
        return self._load(record.id, self._index())

    def tag(self, image_id: str, ref: Reference) -> None:
        """Point the tag `ref` (``latest`` when it has none) at `image_id`, moving it from any other
        image. NoSuchImage if `image_id` is not stored; InvalidArgument for a digest reference."""
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        kind, key = _name_key(ref)
        with self._mutating() as index:
            if not self.exists(image_id):
                raise NoSuchImage(image_id)
            index[kind][key] = image_id

    def untag(self, ref: Reference) -> str:
        """Remove the name `ref`; return the ID it pointed at. NoSuchImage if it names nothing."""
        kind, key = _name_key(ref)
        with self._mutating() as index:
            try:
                return index[kind].pop(key)
            except KeyError:
                raise NoSuchImage(ref.with_default_tag().familiar) from None

    def remove(self, image_id: str) -> None:
        """Delete the record and every name pointing at it (layers and blobs go at the next `gc`)."""
        with self._mutating() as index:
            for kind in ("tags", "digests"):
                for key in [k for k, v in index[kind].items() if v == image_id]:
                    del index[kind][key]
            try:
                self._record_path(image_id).unlink()
            except FileNotFoundError:
                raise NoSuchImage(image_id) from None

    # -- garbage collection --------------------------------------------------------------------

    def gc(self) -> GcResult:
        """Remove layers and blobs no image record or container references, and leftover temp files.

        Waits for running ingests (pulls) to finish. Must not be called while holding the
        image-store lock. Partial downloads are kept (a later pull resumes them).
        """
        result = GcResult()
        with locked(self.state.locks, "image-ingest"), locked(self.state.locks, "image-store"):
            records = self.list()
            keep_layers = {d for r in records for d in r.layers} | self._container_layers()
            keep_blobs = self._referenced_blobs(records)
            for diff_id in sorted(self.layers.diff_ids() - keep_layers):
                result.reclaimed += self.layers.delete(diff_id)
                result.layers.append(diff_id)
            for digest in sorted(self.content.digests() - keep_blobs):
                result.reclaimed += self.content.delete(digest)
                result.blobs.append(digest)
            self._remove_temp_files()
        return result

    @staticmethod
    def _referenced_blobs(records: list[ImageRecord]) -> set[str]:
        """Config, platform manifest, layer blobs, and the manifests/indexes named by repo digests."""
        keep: set[str] = set()
        for r in records:
            keep |= {r.id, r.manifest_digest, *r.layer_digests}
            keep |= {d.rpartition("@")[2] for d in r.repo_digests}
        return keep

    def _container_layers(self) -> set[str]:
        """Diff IDs listed under "Layers" in any ``containers/<id>/config.json``."""
        found: set[str] = set()
        for cfg in self.state.containers.glob("*/config.json"):
            try:
                layers = read_json(cfg).get("Layers") or []
            except (OSError, ValueError):
                continue  # a container being created or deleted: its image record still holds them
            found.update(d for d in layers if isinstance(d, str))
        return found

    def _remove_temp_files(self) -> None:
        """Temp files and dirs left by crashed writers (the caller holds both store locks)."""
        self.content.remove_temp_files()
        if self.state.images.is_dir():
            for p in self.state.images.iterdir():
                if p.name.startswith("."):
                    p.unlink(missing_ok=True)
        if self.state.tmp.is_dir():
            for p in self.state.tmp.iterdir():
                if p.name.startswith((_LAYER_TMP_PREFIX, _DELETED_TMP_PREFIX)):
                    shutil.rmtree(p, ignore_errors=True)
