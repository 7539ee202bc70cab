"""End-to-end pulls from a real docker-registry on loopback into a real store (no mocks).

The `registry` fixture comes from tests/support/registry_fixtures.py. Needs root (layer unpacking).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from katadocker.config import Settings
from katadocker.errors import DigestMismatch, NoMatchingManifest, PlatformMismatch
from katadocker.image.platform import Platform
from katadocker.image.pull import PullEvent, PullResult, pull
from katadocker.image.reference import parse_reference
from katadocker.image.store import ImageStore
from katadocker.state.paths import StateRoot
from tests.support.images import ImageSpec, write_layout
from tests.support.registry import RunningRegistry, blob_path, write_oci_index

pytestmark = [pytest.mark.registry,
              pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")]


def layer(*files: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BASE = layer(("etc/os-release", b"ID=test\n"), ("bin/tool", b"\x7fELF" + bytes(4000)))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "docker-config").mkdir()
    return Settings(state=StateRoot(tmp_path / "state"), docker_config=tmp_path / "docker-config")


def push(registry: RunningRegistry, tmp_path: Path, repo_tag: str, layers: list[bytes],
         fmt: str = "oci") -> str:
    """Push an image made of `layers` (gzip-compressed) as `repo_tag`; return its manifest digest."""
    layout = tmp_path / f"layout-{repo_tag.replace('/', '_').replace(':', '_')}"
    digest = write_layout(layout, layers, ImageSpec(cmd=["/bin/tool"]))
    registry.push(layout, repo_tag, format=fmt)
    return digest


def run_pull(settings: Settings, ref: str,
             platform: Platform | None = None) -> tuple[PullResult, list[PullEvent]]:
    events: list[PullEvent] = []
    return pull(settings, parse_reference(ref), platform, events.append), events


def statuses(events: list[PullEvent]) -> list[str]:
    return [e.line() for e in events if e.status not in ("Downloading", "Extracting")]


def test_pull_by_tag_then_up_to_date(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    top = layer(("srv/index.html", b"<h1>hi</h1>\n"))
    push(registry, tmp_path, "pull/tag:1", [BASE, top], fmt="v2s2")
    ref = f"{registry.host}/pull/tag:1"
    result, events = run_pull(settings, ref)
    store = ImageStore(settings.state)
    image = store.get(ref)
    assert image.id == result.image_id and image.repo_tags == [ref]
    assert image.repo_digests == [f"{registry.host}/pull/tag@{result.manifest_digest}"]
    assert image.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert image.size == len(b"ID=test\n") + 4004 + len(b"<h1>hi</h1>\n")
    short = [d.partition(":")[2][:12] for d in image.layer_digests]
    lines = statuses(events)
    assert lines[0] == "1: Pulling from pull/tag"
    assert lines[1:3] == [f"{short[0]}: Pulling fs layer", f"{short[1]}: Pulling fs layer"]
    for s in short:
        steps = ("Verifying Checksum", "Download complete", "Pull complete")
        order = [lines.index(f"{s}: {x}") for x in steps]
        assert order == sorted(order)
    assert lines[-2:] == [f"Digest: {result.manifest_digest}", f"Status: Downloaded newer image for {ref}"]
    assert any(e.status == "Downloading" and e.current and e.total for e in events)
    assert result.reference == ref
    top_dir = store.layers.path(image.layers[1])
    assert (top_dir / "srv/index.html").read_bytes() == b"<h1>hi</h1>\n"

    again, events = run_pull(settings, ref)
    assert again.image_id == result.image_id
    assert statuses(events)[1:3] == [f"{short[0]}: Already exists", f"{short[1]}: Already exists"]
    assert again.status_line == f"Status: Image is up to date for {ref}"


def test_pull_by_digest_records_no_tag(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    digest = push(registry, tmp_path, "pull/digest:1", [BASE])
    ref = f"{registry.host}/pull/digest@{digest}"
    result, events = run_pull(settings, ref)
    image = ImageStore(settings.state).get(ref)
    assert image.repo_tags == [] and image.repo_digests == [ref]
    assert statuses(events)[0] == f"{digest}: Pulling from pull/digest"
    assert result.status_line == f"Status: Downloaded newer image for {ref}" and result.reference == ref


def test_two_platform_index(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    index_digest, images = write_oci_index(tmp_path / "index", {
        "linux/amd64": {"arch": b"amd64\n"}, "linux/arm64/v8": {"arch": b"arm64\n"}})
    registry.push(tmp_path / "index", "pull/multi:1")
    ref = f"{registry.host}/pull/multi:1"
    store = ImageStore(settings.state)

    result, _ = run_pull(settings, ref, Platform("linux", "arm64", "v8"))
    arm = store.get(ref)
    assert result.manifest_digest == index_digest
    assert (arm.id, arm.architecture) == (images["linux/arm64/v8"].config_digest, "arm64")
    assert arm.manifest_digest == images["linux/arm64/v8"].manifest_digest
    assert (store.layers.path(arm.layers[0]) / "arch").read_bytes() == b"arm64\n"

    run_pull(settings, ref, Platform("linux", "amd64"))
    assert store.get(ref).architecture == "amd64"
    assert store.get(arm.id).repo_tags == []  # the tag moved; the arm64 image stays, dangling

    with pytest.raises(NoMatchingManifest, match="linux/s390x"):
        run_pull(settings, ref, Platform("linux", "s390x"))


def test_single_platform_image_with_other_platform(registry: RunningRegistry, tmp_path: Path,
                                                    settings: Settings) -> None:
    push(registry, tmp_path, "pull/single:1", [BASE])
    ref = f"{registry.host}/pull/single:1"
    with pytest.raises(PlatformMismatch, match="wanted linux/arm64, actual: linux/amd64"):
        run_pull(settings, ref, Platform("linux", "arm64"))
    assert ImageStore(settings.state).list() == []
    run_pull(settings, ref, Platform("linux", "amd64"))


def test_images_share_layers(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    push(registry, tmp_path, "pull/share-a:1", [BASE, layer(("a", b"a"))])
    push(registry, tmp_path, "pull/share-b:1", [BASE, layer(("b", b"b"))])
    run_pull(settings, f"{registry.host}/pull/share-a:1")
    _, events = run_pull(settings, f"{registry.host}/pull/share-b:1")
    store = ImageStore(settings.state)
    a, b = store.get(f"{registry.host}/pull/share-a:1"), store.get(f"{registry.host}/pull/share-b:1")
    assert a.layers[0] == b.layers[0] and len(store.layers.diff_ids()) == 3
    assert statuses(events)[1] == f"{b.layer_digests[0].partition(':')[2][:12]}: Already exists"


class Interrupted(Exception):
    """Stands for Ctrl-C arriving while a layer downloads."""


def test_interrupted_pull_resumes(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    big = layer(("blob", os.urandom(6 << 20)))  # incompressible: several MB on the wire
    push(registry, tmp_path, "pull/resume:1", [big])
    ref = parse_reference(f"{registry.host}/pull/resume:1")

    def interrupt(event: PullEvent) -> None:
        if event.status == "Downloading" and event.current and event.total and event.current < event.total:
            raise Interrupted

    with pytest.raises(Interrupted):
        pull(settings, ref, None, interrupt)
    store = ImageStore(settings.state)
    assert store.list() == [] and store.layers.diff_ids() == set()
    partials = list(settings.state.partial_blobs.iterdir())
    assert len(partials) == 1
    kept = partials[0].stat().st_size
    assert kept > 0

    events: list[PullEvent] = []
    pull(settings, ref, None, events.append)
    first = next(e for e in events if e.status == "Downloading")
    assert first.current is not None and first.current >= kept  # resumed, not restarted
    assert store.get(str(ref)).size == 6 << 20 and list(settings.state.partial_blobs.iterdir()) == []


def _pull_until(settings: Settings, ref: str, status: str, reached: Any) -> None:
    """Child process: pull `ref`, and once an event with `status` and partial progress arrives, set
    `reached` and hang (the parent kills the process with SIGKILL)."""
    def hang(event: PullEvent) -> None:
        if event.status == status and event.current and event.total and event.current < event.total:
            reached.set()
            time.sleep(120)

    pull(settings, parse_reference(ref), None, hang)


@pytest.mark.parametrize("status", ["Downloading", "Extracting"])
def test_killed_pull_leaves_nothing_and_resumes(registry: RunningRegistry, tmp_path: Path,
                                                 settings: Settings, status: str) -> None:
    push(registry, tmp_path, f"pull/kill-{status.lower()}:1", [layer(("blob", os.urandom(6 << 20)))])
    ref = f"{registry.host}/pull/kill-{status.lower()}:1"
    ctx = multiprocessing.get_context("fork")
    reached = ctx.Event()
    child = ctx.Process(target=_pull_until, args=(settings, ref, status, reached))
    child.start()
    try:
        assert reached.wait(60), "the child pull never got there"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    store = ImageStore(settings.state)
    assert store.list() == [] and store.layers.diff_ids() == set()
    leftovers = [p for p in settings.state.tmp.iterdir() if p.name.startswith("layer-")]
    assert len(leftovers) == (1 if status == "Extracting" else 0)  # a half-unpacked layer, ignored

    result, events = run_pull(settings, ref)
    assert store.get(ref).id == result.image_id
    if status == "Downloading":
        first = next(e for e in events if e.status == "Downloading")
        assert first.current and first.total and first.current > 0  # resumed from the partial file
    assert [p.name for p in settings.state.tmp.iterdir() if p.name.startswith("layer-")] == []
    assert list(settings.state.partial_blobs.iterdir()) == []


def test_concurrent_pulls_of_one_image(registry: RunningRegistry, tmp_path: Path, settings: Settings) -> None:
    push(registry, tmp_path, "pull/race:1", [BASE, layer(("r", b"r"))])
    ref = f"{registry.host}/pull/race:1"
    results: list[PullResult] = []
    threads = [threading.Thread(target=lambda: results.append(run_pull(settings, ref)[0])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len({r.image_id for r in results}) == 1 and len(results) == 3
    store = ImageStore(settings.state)
    assert len(store.list()) == 1 and len(store.layers.diff_ids()) == 2


def test_corrupted_blob_records_nothing(registry: RunningRegistry, tmp_path: Path,
                                        settings: Settings) -> None:
    push(registry, tmp_path, "pull/corrupt:1", [layer(("c", b"corrupt me" * 100))])
    ref = f"{registry.host}/pull/corrupt:1"
    layout_blobs = tmp_path / "layout-pull_corrupt_1/blobs/sha256"
    layer_blob = max(layout_blobs.iterdir(), key=lambda p: p.stat().st_size)  # the gzip layer
    on_disk = blob_path(registry.storage, f"sha256:{layer_blob.name}")
    saved = tmp_path / "saved-blob"
    shutil.copy(on_disk, saved)
    data = bytearray(on_disk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    on_disk.write_bytes(bytes(data))
    try:
        with pytest.raises(DigestMismatch):
            run_pull(settings, ref)
        store = ImageStore(settings.state)
        assert store.list() == [] and store.layers.diff_ids() == set()
        assert list(settings.state.partial_blobs.iterdir()) == []
    finally:
        shutil.copy(saved, on_disk)
    result, _ = run_pull(settings, ref)  # the store is intact: the next pull works
    assert ImageStore(settings.state).get(ref).id == result.image_id
