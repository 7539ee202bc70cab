"""``docker save`` and ``docker load``: images to and from tar archives.

`save_images` writes docker 25+'s combined archive, at once a docker archive (``manifest.json``,
``repositories``) and an OCI image layout (``oci-layout``, ``index.json``), layers uncompressed under
their diff IDs. `load_images` reads that, the legacy docker archive (``<id>/layer.tar``, as podman
writes it) and any OCI image layout, gzip/zstd compressed or not. Both take the invocation's
Settings; nothing here prints. Archive members are never trusted: paths that climb out of the
extraction directory are skipped, and every layer is checked against its diff ID before it is stored.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

from katadocker.config import Settings
from katadocker.engine import events
from katadocker.engine.images import is_id_prefix
from katadocker.errors import InvalidArgument, InvalidReference, KatadockerError, NoSuchImage
from katadocker.image.reference import Reference, parse_reference
from katadocker.image.store import ImageRecord, ImageStore
from katadocker.image.unpack import GZIP_MAGIC, ZSTD_MAGIC

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
_CHUNK = 1 << 20


# ---- layer files (both directions) --------------------------------------------------------------


def _open_uncompressed(path: Path) -> IO[bytes]:
    """`path` opened for reading its uncompressed bytes (gzip or zstd by magic, else as is);
    closing the result closes the file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(GZIP_MAGIC):
        return gzip.open(path, "rb")
    raw = open(path, "rb")  # noqa: SIM115  returned to the caller, who closes it
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
    """``sha256:<hex>`` of the file's bytes as stored (a compressed layer's blob digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# ---- save ---------------------------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


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
        if is_id_prefix(record.id, name):
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
    store = ImageStore(settings.state)
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
            events.image(settings.state, "save", entry.record.id, entry.record.id)
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


def _renaming_notices(store: ImageStore, names: list[Reference], image_id: str) -> list[str]:
    """docker's notice for each of `names` that names another image now (it moves to `image_id`)."""
    notices = []
    for name in names:
        try:
            old = store.get(str(name))
        except NoSuchImage:
            continue
        if old.id != image_id:
            notices.append(f"The image {name.familiar} already exists, renaming the old one with ID "
                           f"{old.id} to empty string")
    return notices


def _archive_images(root: Path) -> list[_LoadImage]:
    """The images of the archive extracted at `root`: a docker archive when it has manifest.json,
    else an OCI image layout; InvalidArgument when it is neither."""
    if (root / "manifest.json").is_file():
        return _docker_images(root)
    if (root / "index.json").is_file():
        return _oci_images(root)
    raise InvalidArgument("invalid image archive: it holds neither manifest.json nor index.json")


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
    notices = _renaming_notices(store, image.names, image_id)
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
    store = ImageStore(settings.state)
    settings.state.tmp.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with tempfile.TemporaryDirectory(dir=settings.state.tmp, prefix="load-") as tmp, store.ingesting():
        root = Path(tmp) / "archive"
        scratch = Path(tmp) / "scratch"
        root.mkdir()
        scratch.mkdir()
        _extract_archive(stream, root)
        for image in _archive_images(root):
            record, notices = _import_image(store, image, scratch)
            events.image(settings.state, "load", record.id, record.id)
            lines += notices
            names = [n.familiar for n in image.names]
            lines += [f"Loaded image: {n}" for n in names] or [f"Loaded image ID: {record.id}"]
    return lines
