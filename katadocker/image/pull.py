"""Pulling an image from a registry into the store, with docker's progress events.

`pull(settings, ref, platform, on_event)`:

1. resolve the reference's manifest; an index / manifest list picks the entry for `platform` (the
   host's when None) through `platform.select_manifest`;
2. fetch the config (its digest is the image ID), then the layers, `PARALLEL_LAYERS` at a time: each
   blob downloads into the content store's partial file (kept when interrupted, so the next pull
   resumes with an HTTP Range request), is verified and committed, then unpacked; a layer whose diff
   ID is already unpacked is not fetched at all ("Already exists");
3. record the image (repo tag unless pulled by digest, and the repo digest) — only after every blob
   and layer verified, so a failed or interrupted pull records nothing.

The whole pull holds the store's ingest lock (gc waits for it); each blob download holds
``blob-<hex>`` so two pulls of one image never write the same partial file.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from katadocker.config import Settings
from katadocker.errors import NoSuchImage, PlatformMismatch, RegistryError
from katadocker.image.platform import Platform, host_platform, select_manifest
from katadocker.image.reference import Reference
from katadocker.image.registry import (
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    Repository,
    open_repository,
)
from katadocker.image.store import ImageRecord, ImageStore
from katadocker.image.unpack import check_layer_media_type
from katadocker.state.lock import locked

#: Layers downloaded (and unpacked) at once, as docker's default max-concurrent-downloads is 3.
PARALLEL_LAYERS = 3
_INDEX_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST})
_MANIFEST_TYPES = frozenset({MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST})
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class PullEvent:
    """One line of docker's pull progress.

    `id` is the layer's short ID (first 12 hex digits of its blob digest), the tag or digest for
    the "Pulling from" line, None for summary lines (``Digest: …``, ``Status: …``). Statuses:
    "Pulling from <path>", "Already exists", "Pulling fs layer", "Waiting", "Downloading",
    "Verifying Checksum", "Download complete", "Extracting", "Pull complete". "Downloading" and
    "Extracting" carry `current`/`total` bytes; docker shows those only on a terminal.
    """

    id: str | None
    status: str
    current: int | None = None
    total: int | None = None

    def line(self) -> str:
        """The plain line docker prints for this event when its output is not a terminal."""
        return f"{self.id}: {self.status}" if self.id else self.status


@dataclass(frozen=True)
class PullResult:
    """`manifest_digest` is the digest the reference resolved to (an index's, when it was one), as
    docker prints it in ``Digest:``; `reference` is the full form docker prints last."""

    image_id: str
    manifest_digest: str
    status_line: str
    reference: str


class PullCancelled(Exception):
    """Raised inside workers to stop them once another layer failed (never escapes `pull`)."""


@dataclass(frozen=True)
class _Layer:
    digest: str
    media_type: str
    size: int | None
    diff_id: str

    @property
    def short_id(self) -> str:
        return self.digest.partition(":")[2][:12]


class _Puller:
    """State of one pull: the repository, the store, and a serialized event sink."""

    def __init__(self, repo: Repository, store: ImageStore, on_event: Callable[[PullEvent], None]) -> None:
        self.repo = repo
        self.store = store
        self._on_event = on_event
        self._event_lock = threading.Lock()
        self.stop = threading.Event()

    def emit(self, layer_id: str | None, status: str, current: int | None = None,
             total: int | None = None) -> None:
        """Send one event; calls to `on_event` never overlap even though workers emit them."""
        with self._event_lock:
            self._on_event(PullEvent(layer_id, status, current, total))

    def fetch_blob(self, digest: str, on_progress: Callable[[int, int | None], None] | None = None) -> None:
        """Make blob `digest` present in the content store (download via its partial file, verify,
        commit), unless it already is."""
        content = self.store.content
        with locked(self.store.state.locks, f"blob-{digest.partition(':')[2]}"):
            if content.has(digest):
                return
            partial = content.partial_path(digest)
            self.repo.fetch_blob(digest, partial, on_progress)
            content.commit(digest, partial)

    def fetch_layer(self, layer: _Layer) -> None:
        """Download, verify and unpack one layer, emitting docker's statuses for it."""
        def downloading(done: int, total: int | None) -> None:
            self._check_stop()
            self.emit(layer.short_id, "Downloading", done, total or layer.size)

        def extracting(done: int) -> None:
            self._check_stop()
            self.emit(layer.short_id, "Extracting", done, layer.size)

        self._check_stop()
        self.fetch_blob(layer.digest, downloading)
        self.emit(layer.short_id, "Verifying Checksum")
        self.emit(layer.short_id, "Download complete")
        self.store.layers.unpack(self.store.content.path(layer.digest), layer.media_type, layer.diff_id,
                                 layer.digest, extracting)
        self.emit(layer.short_id, "Pull complete")

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise PullCancelled

    def fetch_layers(self, layers: list[_Layer]) -> None:
        """Fetch the layers not yet unpacked, `PARALLEL_LAYERS` at a time; on the first failure the
        others stop at their next chunk and that failure is raised."""
        todo = []
        for layer in layers:
            if self.store.layers.has(layer.diff_id):
                self.emit(layer.short_id, "Already exists")
            elif layer not in todo:
                self.emit(layer.short_id, "Pulling fs layer")
                todo.append(layer)
        for layer in todo[PARALLEL_LAYERS:]:
            self.emit(layer.short_id, "Waiting")
        with ThreadPoolExecutor(PARALLEL_LAYERS, thread_name_prefix="pull") as pool:
            futures = [pool.submit(self.fetch_layer, layer) for layer in todo]
            try:
                _raise_first_failure(futures)
            finally:
                self.stop.set()  # no-op when all are done; otherwise cancels the stragglers


def _raise_first_failure(futures: list[Future[None]]) -> None:
    """Wait until all of `futures` succeeded or one failed; raise the first real failure (a
    PullCancelled is only the echo of another one)."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    failures = [e for f in futures if f in done and (e := f.exception()) is not None]
    real = [e for e in failures if not isinstance(e, PullCancelled)]
    if real:
        raise real[0]


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise RegistryError(f"invalid {what}: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"invalid {what}: not a JSON object")
    return doc


def _platform_manifest(repo: Repository, raw: bytes, media_type: str, digest: str,
                       platform: Platform | None) -> tuple[bytes, str, str]:
    """The image manifest (raw, media type, digest) for `platform`: `raw` itself unless it is an
    index, in which case the selected entry is fetched by digest."""
    if media_type in _INDEX_TYPES:
        entry = select_manifest(_load_json(raw, "manifest list").get("manifests", []),
                                platform or host_platform())
        raw, media_type, digest = repo.get_manifest(entry["digest"])
    if media_type not in _MANIFEST_TYPES:
        raise RegistryError(f"unsupported manifest media type {media_type} for {digest}")
    return raw, media_type, digest


def _check_platform(ref: Reference, config: dict[str, Any], want: Platform) -> None:
    """PlatformMismatch unless the image config's os/architecture (and variant, when `want` names
    one) match `want`, compared in containerd's normalized form."""
    have = Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))
    h, w = have.normalized(), want.normalized()
    if (h.os, h.architecture) != (w.os, w.architecture) or (w.variant and h.variant != w.variant):
        raise PlatformMismatch(ref.familiar, str(want), str(have))


def _digest_of(desc: Any, what: str) -> str:
    """The ``sha256:<hex>`` digest of a manifest descriptor; RegistryError when missing or malformed."""
    digest = desc.get("digest", "") if isinstance(desc, dict) else ""
    if not _DIGEST_RE.match(digest):
        raise RegistryError(f"invalid manifest: {what} has no valid sha256 digest ({digest!r})")
    return digest


def _layers(manifest: dict[str, Any], config: dict[str, Any]) -> list[_Layer]:
    """Pair the manifest's layer descriptors with the config's diff IDs (they must match 1:1)."""
    descriptors = manifest.get("layers", [])
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    if len(descriptors) != len(diff_ids):
        raise RegistryError(f"invalid image: {len(descriptors)} layers but {len(diff_ids)} diff IDs")
    layers = []
    for desc, diff_id in zip(descriptors, diff_ids, strict=True):
        media_type = desc.get("mediaType", "")
        check_layer_media_type(media_type)
        layers.append(_Layer(_digest_of(desc, "layer"), media_type, desc.get("size"), diff_id))
    return layers


def _current_id(store: ImageStore, ref: Reference) -> str | None:
    """The image ID `ref` (a full tag or digest reference) names now, None if none."""
    try:
        return store.get(str(ref)).id
    except NoSuchImage:
        return None


def pull(settings: Settings, ref: Reference, platform: Platform | None,
         on_event: Callable[[PullEvent], None]) -> PullResult:
    """Pull `ref` (``latest`` when it has neither tag nor digest) for `platform` (host's when None).

    `on_event` receives docker's progress events, never two at once (possibly from worker threads).
    Raises the registry's errors (PullAccessDenied, ManifestUnknown, AuthError, RegistryError,
    DigestMismatch), NoMatchingManifest, PlatformMismatch (a single-platform image that is not
    `platform`), UnsafeLayer/BadLayer; then nothing is recorded, and verified
    blobs and partial downloads stay for the next attempt.
    """
    ref = ref.with_default_tag()
    store = ImageStore(settings.state.ensure())
    with open_repository(settings, ref) as repo, store.ingesting():
        puller = _Puller(repo, store, on_event)
        top_raw, top_type, top_digest = repo.get_manifest(ref.digest or ref.tag)
        puller.emit(ref.digest or ref.tag, f"Pulling from {ref.registry_path}")
        raw, media_type, digest = _platform_manifest(repo, top_raw, top_type, top_digest, platform)
        manifest = _load_json(raw, "manifest")
        config_digest = _digest_of(manifest.get("config"), "config")
        puller.fetch_blob(config_digest)
        config = _load_json(store.content.read(config_digest), "image config")
        if platform is not None and top_type not in _INDEX_TYPES:
            _check_platform(ref, config, platform)
        layers = _layers(manifest, config)
        puller.fetch_layers(layers)
        store.content.put(top_raw, top_digest)
        store.content.put(raw, digest)
        previous = _current_id(store, ref)
        store.add(ImageRecord(
            id=config_digest, config=config, layers=[x.diff_id for x in layers],
            layer_digests=[x.digest for x in layers], layer_media_types=[x.media_type for x in layers],
            manifest_digest=digest, manifest_media_type=media_type,
            size=sum(store.layers.info(x.diff_id).size for x in layers),
            repo_tags=[] if ref.digest else [str(ref)],
            repo_digests=[f"{ref.name}@{top_digest}"],
        ))
    news = "Image is up to date for" if previous == config_digest else "Downloaded newer image for"
    status_line = f"Status: {news} {ref.familiar}"
    puller.emit(None, f"Digest: {top_digest}")
    puller.emit(None, status_line)
    return PullResult(config_digest, top_digest, status_line, str(ref))
