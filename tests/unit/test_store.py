"""The image store: blobs, layers, image records, names, concurrency, crash leftovers and gc."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from katadocker.errors import (
    AmbiguousImageID,
    DigestMismatch,
    InvalidArgument,
    InvalidReference,
    NoSuchImage,
    NotFound,
)
from katadocker.image.reference import parse_reference
from katadocker.image.store import ContentStore, ImageRecord, ImageStore, LayerStore
from katadocker.state.paths import StateRoot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

TAR = "application/vnd.oci.image.layer.v1.tar"


@pytest.fixture
def state(tmp_path: Path) -> StateRoot:
    return StateRoot(tmp_path / "root").ensure()


def layer_tar(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(store: ImageStore, name: str, layers: list[bytes], tags: tuple[str, ...] = ()) -> ImageRecord:
    """Store uncompressed layers, a config and a manifest as a pull would, and add the record."""
    digests = [store.content.put(t) for t in layers]
    for d in digests:
        store.layers.unpack(store.content.path(d), TAR, d, d)
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": [name]}, "rootfs": {"type": "layers", "diff_ids": digests}}
    config_digest = store.content.put(json.dumps(config).encode())
    manifest_digest = store.content.put(json.dumps({"config": config_digest, "layers": digests}).encode())
    record = ImageRecord(
        id=config_digest, config=config, layers=digests, layer_digests=digests,
        layer_media_types=[TAR] * len(digests), manifest_digest=manifest_digest,
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        size=sum(store.layers.info(d).size for d in digests),
        repo_tags=[str(parse_reference(t).with_default_tag()) for t in tags],
        repo_digests=[f"{parse_reference(t).name}@{manifest_digest}" for t in tags],
    )
    return store.add(record)


# -- ContentStore ----------------------------------------------------------------------------------

def test_content_put_read_and_verify(state: StateRoot) -> None:
    content = ContentStore(state)
    d = content.put(b"hello")
    assert d == digest_of(b"hello") and content.has(d) and content.read(d) == b"hello"
    assert content.path(d) == state.blobs / d.removeprefix("sha256:")
    with pytest.raises(DigestMismatch):
        content.put(b"other", d)
    with pytest.raises(NotFound):
        content.read(digest_of(b"absent"))


def test_content_commit_of_partial_download(state: StateRoot) -> None:
    content = ContentStore(state)
    data = os.urandom(3000)
    partial = content.partial_path(digest_of(data))
    assert partial.parent == state.partial_blobs
    partial.write_bytes(data)
    assert content.commit(digest_of(data), partial) == content.path(digest_of(data))
    assert not partial.exists() and content.read(digest_of(data)) == data

    bad = content.partial_path(digest_of(b"wanted"))
    bad.write_bytes(b"corrupt")
    with pytest.raises(DigestMismatch):
        content.commit(digest_of(b"wanted"), bad)
    assert not bad.exists() and not content.has(digest_of(b"wanted"))


def test_leftover_temp_file_is_ignored_then_cleaned(state: StateRoot) -> None:
    store = ImageStore(state)
    leftover = state.blobs / f".{'a' * 64}.crash"
    leftover.write_bytes(b"half")
    stale_layer_dir = state.tmp / f"layer-{'b' * 64}-crash"
    stale_layer_dir.mkdir()
    stale_record = state.images / ".repositories.json.crash"
    stale_record.write_text("{")
    assert store.content.digests() == set() and store.list() == []
    store.gc()
    assert not leftover.exists() and not stale_layer_dir.exists() and not stale_record.exists()


# -- LayerStore ------------------------------------------------------------------------------------

def test_layer_unpack_is_idempotent_and_records_metadata(state: StateRoot) -> None:
    layers = LayerStore(state)
    tar = layer_tar(("etc/hostname", b"box\n"))
    blob = state.root / "blob"
    blob.write_bytes(tar)
    diff_id = digest_of(tar)
    path = layers.unpack(blob, TAR, diff_id, "sha256:" + "c" * 64)
    assert path == layers.path(diff_id) and (path / "etc/hostname").read_bytes() == b"box\n"
    info = layers.info(diff_id)
    assert (info.size, info.blob_digest, info.media_type) == (4, "sha256:" + "c" * 64, TAR)
    blob.unlink()  # a second unpack must not even read the blob
    assert layers.unpack(blob, TAR, diff_id) == path and layers.diff_ids() == {diff_id}


def test_layer_with_wrong_diff_id_leaves_nothing(state: StateRoot) -> None:
    layers = LayerStore(state)
    blob = state.root / "blob"
    blob.write_bytes(layer_tar(("f", b"1")))
    stale = state.tmp / f"layer-{'d' * 64}-crash"
    stale.mkdir()
    with pytest.raises(DigestMismatch):
        layers.unpack(blob, TAR, "sha256:" + "d" * 64)
    assert not layers.has("sha256:" + "d" * 64) and list(state.tmp.iterdir()) == []
    assert list(state.layers.iterdir()) == []


def _unpack_in_child(root: str, blob: str, diff_id: str) -> str:
    return str(LayerStore(StateRoot(Path(root))).unpack(Path(blob), TAR, diff_id))


def test_concurrent_unpacks_of_one_layer(state: StateRoot) -> None:
    tar = layer_tar(*[(f"d/f{i}", os.urandom(2000)) for i in range(50)])
    blob = state.root / "blob"
    blob.write_bytes(tar)
    args = (str(state.root), str(blob), digest_of(tar))
    with ThreadPoolExecutor(4) as pool:
        by_threads = set(pool.map(lambda _: _unpack_in_child(*args), range(4)))
    LayerStore(state).delete(digest_of(tar))
    with multiprocessing.get_context("fork").Pool(4) as procs:
        by_procs = set(procs.starmap(_unpack_in_child, [args] * 4))
    assert by_threads == by_procs == {str(LayerStore(state).path(digest_of(tar)))}
    assert len(os.listdir(Path(by_procs.pop()) / "d")) == 50
    assert [p for p in state.tmp.iterdir() if p.name.startswith("layer-")] == []


# -- ImageStore ------------------------------------------------------------------------------------

def test_get_resolves_ids_names_and_digests(state: StateRoot) -> None:
    store = ImageStore(state)
    rec = make_image(store, "a", [layer_tar(("a", b"1"))], tags=("nginx",))
    hexid = rec.id.removeprefix("sha256:")
    assert rec.repo_tags == ["docker.io/library/nginx:latest"]
    assert rec.repo_digests == [f"docker.io/library/nginx@{rec.manifest_digest}"]
    for query in (rec.id, hexid, hexid[:12], f"sha256:{hexid[:5]}", "nginx", "nginx:latest",
                  "docker.io/library/nginx", f"nginx@{rec.manifest_digest}"):
        assert store.get(query).id == rec.id, query
    got = store.get("nginx")
    assert (got.os, got.architecture, got.created, got.size) == ("linux", "amd64", "2024-01-01T00:00:00Z", 1)
    with pytest.raises(NoSuchImage, match="No such image: nginx:old"):
        store.get("nginx:old")
    with pytest.raises(NoSuchImage, match="No such image: " + "0" * 64):
        store.get("0" * 64)
    with pytest.raises(InvalidReference):
        store.get("Bad/Name")


def test_ambiguous_prefix(state: StateRoot) -> None:
    store = ImageStore(state)
    by_first: dict[str, ImageRecord] = {}
    n = 0
    while True:  # at most 17 images before two IDs share a first hex digit
        rec = make_image(store, f"img{n}", [layer_tar(("x", b"1"))])
        n += 1
        first = rec.id.removeprefix("sha256:")[0]
        if first in by_first:
            break
        by_first[first] = rec
    with pytest.raises(AmbiguousImageID, match=f"multiple IDs found with provided prefix: {first}"):
        store.get(first)


def test_tag_moves_and_leaves_the_old_image_dangling(state: StateRoot) -> None:
    store = ImageStore(state)
    old = make_image(store, "old", [layer_tar(("f", b"old"))], tags=("app:1",))
    new = make_image(store, "new", [layer_tar(("f", b"new"))])
    store.tag(new.id, parse_reference("app:1"))
    store.tag(new.id, parse_reference("localhost:5000/team/app"))
    assert store.get("app:1").id == new.id
    assert store.get(old.id).repo_tags == [] and store.get(old.id).repo_digests != []
    assert store.get(new.id).repo_tags == ["docker.io/library/app:1", "localhost:5000/team/app:latest"]
    assert store.untag(parse_reference("localhost:5000/team/app")) == new.id
    with pytest.raises(NoSuchImage, match="localhost:5000/team/app:latest"):
        store.untag(parse_reference("localhost:5000/team/app"))
    with pytest.raises(NoSuchImage):
        store.tag("sha256:" + "e" * 64, parse_reference("x"))
    with pytest.raises(InvalidArgument, match="refusing to create a tag with a digest reference"):
        store.tag(new.id, parse_reference(f"app@{new.manifest_digest}"))
    assert {r.id for r in store.list()} == {old.id, new.id}


def test_remove_and_gc_keep_shared_and_container_layers(state: StateRoot) -> None:
    store = ImageStore(state)
    base, own_a, own_b, ctr = (layer_tar((n, n.encode())) for n in ("base", "a", "b", "ctr"))
    a = make_image(store, "a", [base, own_a], tags=("a",))
    b = make_image(store, "b", [base, own_b], tags=("b",))
    c = make_image(store, "c", [base, ctr], tags=("c",))
    (state.containers / "c1").mkdir()
    (state.containers / "c1/config.json").write_text(json.dumps({"Image": c.id, "Layers": c.layers}))
    store.remove(a.id)
    store.remove(c.id)
    with pytest.raises(NoSuchImage):
        store.get("a")
    result = store.gc()
    assert result.layers == [digest_of(own_a)] and result.reclaimed > 0
    assert store.layers.diff_ids() == {digest_of(base), digest_of(own_b), digest_of(ctr)}
    assert not store.content.has(a.id) and not store.content.has(a.manifest_digest)
    assert store.content.has(b.id) and store.content.has(digest_of(base))
    assert store.get("b").id == b.id


def _tag_in_child(root: str, image_id: str, n: int) -> None:
    store = ImageStore(StateRoot(Path(root)))
    for i in range(10):
        store.tag(image_id, parse_reference(f"app:p{n}-{i}"))


def test_concurrent_taggers_lose_no_update(state: StateRoot) -> None:
    store = ImageStore(state)
    rec = make_image(store, "a", [layer_tar(("a", b"1"))])
    with multiprocessing.get_context("fork").Pool(4) as procs:
        procs.starmap(_tag_in_child, [(str(state.root), rec.id, n) for n in range(4)])
    assert len(store.get(rec.id).repo_tags) == 40
