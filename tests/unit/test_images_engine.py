"""Pure logic of the image verbs: filters, Go globs, untag semantics over a real ImageStore."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from katadocker.config import Settings
from katadocker.engine import images
from katadocker.errors import Conflict, InvalidArgument, UsageError
from katadocker.image.reference import parse_reference
from katadocker.image.store import ImageRecord, ImageStore
from katadocker.state.paths import StateRoot


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("nginx", "nginx", True), ("ngi*", "nginx", True), ("*", "user/app", False), ("*/*", "user/app", True),
    ("jav", "java", False), ("n?inx", "nginx", True), ("[a-m]ginx", "nginx", False),
    ("[^a-m]ginx", "nginx", True),
])
def test_go_path_match(pattern: str, name: str, matches: bool) -> None:
    assert images.go_path_match(pattern, name) is matches


def test_parse_filters() -> None:
    got = images.parse_filters(["dangling=true", "label=a=b", "label=c"], images.IMAGE_FILTERS)
    assert got == {"dangling": ["true"], "label": ["a=b", "c"]}
    with pytest.raises(UsageError, match="bad format of filter"):
        images.parse_filters(["dangling"], images.IMAGE_FILTERS)
    with pytest.raises(InvalidArgument, match="invalid filter 'foo'"):
        images.parse_filters(["foo=1"], images.IMAGE_FILTERS)


def _settings(tmp_path: Path) -> Settings:
    return Settings(state=StateRoot(tmp_path / "root").ensure(), docker_config=tmp_path / "docker")


def _add(store: ImageStore, config: dict, tags: list[str], digests: list[str] = ()) -> ImageRecord:
    """An image record without layers (names and config are all these tests need)."""
    image_id = store.content.put(json.dumps(config).encode())
    return store.add(ImageRecord(id=image_id, config=config, layers=[], layer_digests=[],
                                 layer_media_types=[], manifest_digest=image_id,
                                 manifest_media_type="", size=0,
                                 repo_tags=[str(parse_reference(t).with_default_tag()) for t in tags],
                                 repo_digests=[str(parse_reference(d)) for d in digests]))


DIGEST = "sha256:" + "a" * 64


def test_list_filters_and_order(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = ImageStore(settings.state)
    old = _add(store, {"created": "2020-01-01T00:00:00Z", "config": {"Labels": {"tier": "db"}}}, ["old:1"])
    new = _add(store, {"created": "2024-01-01T00:00:00Z"}, ["new:1", "other/new:2"])
    dangling = _add(store, {"created": "2022-01-01T00:00:00Z"}, [])
    assert [s.id for s in images.list_images(settings)] == [new.id, dangling.id, old.id]
    assert [s.id for s in images.list_images(settings, filters={"dangling": ["true"]})] == [dangling.id]
    assert [s.id for s in images.list_images(settings, filters={"label": ["tier=db"]})] == [old.id]
    before = images.list_images(settings, filters={"before": ["new:1"]})
    assert [s.id for s in before] == [dangling.id, old.id]
    assert [s.id for s in images.list_images(settings, filters={"since": ["old:1"]})] == [new.id, dangling.id]
    [only] = images.list_images(settings, filters={"reference": ["other/*"]})
    assert only.repo_tags == ["other/new:2"]
    with pytest.raises(InvalidArgument, match="Invalid filter 'dangling=maybe'"):
        images.list_images(settings, filters={"dangling": ["maybe"]})


def test_rmi_by_tag_untags_and_last_name_deletes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = ImageStore(settings.state)
    rec = _add(store, {"created": "2024-01-01T00:00:00Z"}, ["app:1", "app:2"], [f"app@{DIGEST}"])
    assert images.remove_image(settings, "app:1") == [images.DeleteItem(untagged="app:1")]
    assert images.remove_image(settings, "app:2") == [
        images.DeleteItem(untagged="app:2"), images.DeleteItem(untagged=f"app@{DIGEST}"),
        images.DeleteItem(deleted=rec.id)]
    assert store.list() == []


def test_rmi_by_id_with_several_repositories_needs_force(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = ImageStore(settings.state)
    rec = _add(store, {"created": "2024-01-01T00:00:00Z"}, ["a:1", "b:1"])
    with pytest.raises(Conflict, match=rf"delete {rec.short_id} \(must be forced\) - image is referenced"):
        images.remove_image(settings, rec.short_id)
    items = images.remove_image(settings, rec.short_id, force=True)
    assert items == [images.DeleteItem(untagged="a:1"), images.DeleteItem(untagged="b:1"),
                     images.DeleteItem(deleted=rec.id)]


def test_rmi_refused_while_a_container_uses_the_image(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = ImageStore(settings.state)
    rec = _add(store, {"created": "2024-01-01T00:00:00Z"}, ["app:1"])
    cid = "d" * 64
    (settings.state.containers / cid).mkdir()
    (settings.state.containers / cid / "config.json").write_text(json.dumps(
        {"Id": cid, "Name": "/c", "Created": "2024-01-01T00:00:00Z", "Image": rec.id}))
    with pytest.raises(Conflict, match=r'reference "app:1" \(must force\) - container dddddddddddd is'):
        images.remove_image(settings, "app:1")
    with pytest.raises(Conflict, match="image is being used by stopped container dddddddddddd"):
        images.remove_image(settings, rec.id)
    assert images.prune_images(settings, all=True) == ([], 0)
