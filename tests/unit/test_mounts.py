"""Parsing of ``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from`` and the combination of a container's
mounts (engine/mounts.py), with docker's error texts; volume names and metadata (engine/volumes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from katadocker.config import load_settings
from katadocker.engine import mounts
from katadocker.engine.mounts import BIND, TMPFS, VOLUME, MountPoint
from katadocker.engine.volumes import VolumeStore, validate_name
from katadocker.errors import Conflict, InvalidArgument, NotFound, UsageError


@pytest.mark.parametrize(("raw", "expected"), [
    ("/h:/c", MountPoint(BIND, "/c", source="/h", propagation="rprivate", create_source=True)),
    ("/h/:/c/:ro", MountPoint(BIND, "/c", source="/h", rw=False, mode="ro", propagation="rprivate",
                              create_source=True)),
    ("/h:/c:ro,rshared", MountPoint(BIND, "/c", source="/h", rw=False, mode="ro,rshared",
                                    propagation="rshared", create_source=True)),
    ("data:/c", MountPoint(VOLUME, "/c", name="data", mode="z")),
    ("data:/c:ro,nocopy", MountPoint(VOLUME, "/c", name="data", rw=False, mode="ro,nocopy", copy_data=False)),
    ("/c", MountPoint(VOLUME, "/c", anonymous=True)),
])
def test_parse_volume(raw: str, expected: MountPoint) -> None:
    assert mounts.parse_volume(raw) == expected


def test_parse_volume_makes_dot_paths_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert mounts.parse_volume("./sub:/c").source == str(tmp_path / "sub")


@pytest.mark.parametrize(("raw", "message"), [
    (":/c", "invalid volume specification: ':/c'"),
    ("/c:rw", "invalid volume specification: '/c:rw'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/h:/c:bogus", "invalid mode: bogus"),
    ("/h:/c:ro,rw", "invalid mode: ro,rw"),
    ("/h:c", "invalid volume specification: '/h:c': invalid mount config for type \"bind\": "
             "invalid mount path: 'c' mount path must be absolute"),
    ("vol:c", "invalid volume specification: 'vol:c': invalid mount config for type \"volume\": "
              "invalid mount path: 'c' mount path must be absolute"),
    ("/h:/", "invalid volume specification: '/h:/': invalid mount config for type \"bind\": "
             "invalid specification: destination can't be '/'"),
])
def test_parse_volume_errors(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        mounts.parse_volume(raw)
    assert e.value.message == message


def test_parse_mount(tmp_path: Path) -> None:
    assert mounts.parse_mount(f"type=bind,src={tmp_path},dst=/c,readonly") == MountPoint(
        BIND, "/c", source=str(tmp_path), rw=False, propagation="rprivate")
    assert mounts.parse_mount("source=v1,target=/c,volume-nocopy,volume-label=a=b") == MountPoint(
        VOLUME, "/c", name="v1", copy_data=False, volume_labels={"a": "b"})
    assert mounts.parse_mount("type=volume,target=/c") == MountPoint(VOLUME, "/c", anonymous=True)
    assert mounts.parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770,ro=true") == MountPoint(
        TMPFS, "/t", rw=False, tmpfs_options="ro,mode=1770,size=64m")
    quoted = f'"type=bind","source={tmp_path}","target=/c"'  # --mount is CSV
    assert mounts.parse_mount(quoted).source == str(tmp_path)


@pytest.mark.parametrize(("value", "message"), [
    ("type=bind,source=/tmp,target=/c,foo=1", "unexpected key 'foo' in 'foo=1'"),
    ("type=bind,source=/tmp,target=/c,bar", "invalid field 'bar' must be a key=value pair"),
    ("type=bind,source=/tmp", "target is required"),
    ("type=bind,source=/tmp,target=/c,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=bind,source=/tmp,target=/c,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    ("type=tmpfs,target=/c,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
])
def test_parse_mount_flag_errors(value: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        mounts.parse_mount(value)
    assert e.value.message == f'invalid argument "{value}" for "--mount" flag: {message}'


@pytest.mark.parametrize(("value", "message"), [
    ("type=bind,source=rel,target=/c",
     "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    ("type=bind,source=/nonexistent-katadocker,target=/c",
     "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-katadocker"),
    ("type=bind,target=/c", "invalid mount config for type \"bind\": field Source must not be empty"),
    ("type=volume,target=rel", "invalid mount config for type \"volume\": invalid mount path: 'rel' mount "
                               "path must be absolute"),
    ("type=volume,target=/c,readonly", "invalid mount config for type \"volume\": must not set ReadOnly "
                                       "mode when using anonymous volumes"),
    ("type=tmpfs,source=x,target=/c", "invalid mount config for type \"tmpfs\": field Source must not be "
                                      "specified"),
    ("type=weird,target=/c", "invalid mount config for type \"weird\": mount type unknown"),
])
def test_parse_mount_daemon_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        mounts.parse_mount(value)
    assert e.value.message == message


def test_parse_tmpfs() -> None:
    assert mounts.parse_tmpfs("/run:size=1m") == MountPoint(TMPFS, "/run", tmpfs_options="size=1m",
                                                            listed=False)
    assert mounts.tmpfs_mount_options(mounts.parse_tmpfs("/t:exec")) == "noexec,nosuid,nodev,exec"
    with pytest.raises(InvalidArgument, match="invalid mount path: 'rel' mount path must be absolute"):
        mounts.parse_tmpfs("rel")


def test_volumes_from_and_combine() -> None:
    assert mounts.parse_volumes_from("c1") == ("c1", "rw")
    assert mounts.parse_volumes_from("c1:ro") == ("c1", "ro")
    with pytest.raises(InvalidArgument, match="invalid mode: rshared"):
        mounts.parse_volumes_from("c1:rshared")
    theirs = [MountPoint(VOLUME, "/v", name="v"), MountPoint(TMPFS, "/t"),
              MountPoint(BIND, "/b", source="/h")]
    inherited = mounts.inherited(theirs, "ro")
    assert [(m.destination, m.rw) for m in inherited] == [("/v", False), ("/b", False)]
    explicit = [MountPoint(BIND, "/b", source="/mine")]
    combined = mounts.combine(explicit, inherited, ["/anon", "/v"])
    assert [(m.destination, m.source or m.name, m.anonymous) for m in combined] == [
        ("/b", "/mine", False), ("/v", "v", False), ("/anon", "", True)]
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /b"):
        mounts.combine(explicit * 2, [], [])


def test_tmpfs_size_option() -> None:
    assert mounts.tmpfs_size_option(64 << 20) == "size=64m"
    assert mounts.tmpfs_size_option(1 << 30) == "size=1g"
    assert mounts.tmpfs_size_option(1000) == "size=1000"


def test_volume_names() -> None:
    validate_name("my_vol-1.x")
    for bad in ("a", "-x", "x/y", "./x"):
        with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume name"):
            validate_name(bad)


def test_volume_store_lifecycle(tmp_path: Path) -> None:
    store = VolumeStore(load_settings(root=str(tmp_path)))
    named = store.create("data", {"k": "v"}, {})
    assert named == {"CreatedAt": named["CreatedAt"], "Driver": "local", "Labels": {"k": "v"},
                     "Mountpoint": str(tmp_path / "volumes" / "data" / "_data"), "Name": "data",
                     "Options": {}, "Scope": "local"}
    assert store.create("data") == named  # creating an existing name returns it
    anon = store.create()
    assert len(anon["Name"]) == 64 and anon["Labels"] == {"com.docker.volume.anonymous": ""}
    with pytest.raises(InvalidArgument, match='invalid option: "bogus"'):
        store.create("other", options={"bogus": "1"})
    assert store.prune() == ([anon["Name"]], 0)  # anonymous only by default
    assert [v["Name"] for v in store.all()] == ["data"]
    store.remove("data")
    with pytest.raises(NotFound, match="get data: no such volume"):
        store.remove("data")
    store.remove("data", force=True)


def test_volume_in_use_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = VolumeStore(load_settings(root=str(tmp_path)))
    store.create("busy")
    monkeypatch.setattr(store, "users", lambda name: ["c1", "c2"])
    with pytest.raises(Conflict) as e:
        store.remove("busy")
    assert e.value.message == "remove busy: volume is in use - [c1 c2]"


def test_populate_copies_only_into_an_empty_volume(tmp_path: Path) -> None:
    store = VolumeStore(load_settings(root=str(tmp_path / "root")))
    store.create("seeded")
    image_dir = tmp_path / "image"
    image_dir.mkdir()
    (image_dir / "f").write_text("image\n")
    store.populate("seeded", image_dir)
    assert (store.data_dir("seeded") / "f").read_text() == "image\n"
    (image_dir / "g").write_text("later\n")
    store.populate("seeded", image_dir)
    assert not (store.data_dir("seeded") / "g").exists()
