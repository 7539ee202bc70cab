"""Volumes and mounts against real VMs (TCG here): ``-v`` in its three forms, ``--mount``, ``--tmpfs``,
``--read-only``, ``--volumes-from``, image VOLUMEs, ownership across the virtio-fs boundary, and the
``volume`` verbs, with docker's texts for bad input.

Every container is a real QEMU VM; each bind or volume reaches it as its own virtio-fs share.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.support import images
from tests.support.cli import Katadocker
from tests.support.leaks import find_leaks
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.vm

# No network: these tests need none, and the host's address pools are shared with other suites.
RUN = ("run", "--network", "none")
CREATE = ("create", "--network", "none")


@pytest.fixture(scope="session")
def volume_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox with content at /seed (owned by 1234, mode 0750) and ``VOLUME /anon``."""
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed"
        seed.mkdir()
        (seed / "hello.txt").write_text("from the image\n")
        os.chown(seed, 1234, 1234)
        seed.chmod(0o750)
        (Path(tmp) / "anon").mkdir()
        (Path(tmp) / "anon" / "a.txt").write_text("anon content\n")
        extra = images.tar_directory(Path(tmp))
    layout = tmp_path_factory.mktemp("volimg") / "layout"
    images.busybox_layout(layout, images.ImageSpec(cmd=["sh"], volumes=["/anon"]), extra_layers=[extra])
    ref = f"{registry.host}/library/volimg:1"
    images.push(layout, ref)
    return ref


@pytest.fixture
def vkd(vm_kd: Katadocker) -> Katadocker:
    """The shared VM state root; the volumes a test leaves behind are removed after it."""
    before = set(vm_kd("volume", "ls", "-q").out.split())
    yield vm_kd
    ids = vm_kd("ps", "-aq").out.split()
    if ids:
        vm_kd("rm", "-f", "-v", *ids)
    left = set(vm_kd("volume", "ls", "-q").out.split()) - before
    if left:
        vm_kd("volume", "rm", "-f", *left)


def test_bind_mount_rw_ro_and_ownership(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    host.chmod(0o777)
    (host / "in.txt").write_text("from the host\n")
    r = vkd(*RUN, "--rm", "-u", "1234:1234", "-v", f"{host}:/data", busybox_image, "sh", "-c",
            "cat /data/in.txt && echo written > /data/out.txt")
    assert (r.rc, r.out) == (0, "from the host\n"), r
    st = (host / "out.txt").stat()
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    assert (host / "out.txt").read_text() == "written\n"
    r = vkd(*RUN, "--rm", "-v", f"{host}:/data:ro", busybox_image, "sh", "-c", "echo x > /data/new")
    assert r.rc != 0 and "Read-only file system" in r.err, r
    assert not (host / "new").exists()
    r = vkd(*RUN, "--rm", "--mount", f"type=bind,source={host},target=/m,readonly", busybox_image,
            "sh", "-c", "cat /m/in.txt; touch /m/x")
    assert r.out == "from the host\n" and "Read-only file system" in r.err, r


def test_missing_bind_source_is_created_for_v(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    missing = tmp_path / "made" / "by" / "run"
    r = vkd(*RUN, "--rm", "-v", f"{missing}:/d", busybox_image, "sh", "-c", "echo hi > /d/f")
    assert r.rc == 0, r
    assert (missing / "f").read_text() == "hi\n"


def test_single_file_bind(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("not for the container\n")
    conf = tmp_path / "app.conf"
    conf.write_text("key=1\n")
    r = vkd(*RUN, "--rm", "-v", f"{conf}:/etc/app.conf", busybox_image, "sh", "-c",
            "cat /etc/app.conf; echo key=2 >> /etc/app.conf; ls /etc/app.conf")
    assert r.rc == 0, r
    assert r.out == "key=1\n/etc/app.conf\n"
    assert conf.read_text() == "key=1\nkey=2\n"
    r = vkd(*RUN, "--rm", "-v", f"{conf}:/app.conf:ro", busybox_image, "sh", "-c", "echo no >> /app.conf")
    assert "Read-only file system" in r.err, r


def test_named_volume_copy_up_and_survives_removal(vkd: Katadocker, volume_image: str) -> None:
    r = vkd(*RUN, "--name", "writer", "-v", "kdvol1:/seed", volume_image, "sh", "-c",
            "stat -c '%u %a' /seed; cat /seed/hello.txt; echo kept > /seed/kept.txt")
    assert r.out == "1234 750\nfrom the image\n", r
    r = vkd("volume", "rm", "kdvol1")
    assert r.rc == 1
    cid = vkd.ok("inspect", "-f", "{{.Id}}", "writer").strip()
    assert r.err == f"Error response from daemon: remove kdvol1: volume is in use - [{cid}]\n"
    vkd.ok("rm", "writer")
    r = vkd(*RUN, "--rm", "-v", "kdvol1:/elsewhere", volume_image, "cat", "/elsewhere/kept.txt")
    assert r.out == "kept\n", r
    assert vkd.ok("volume", "rm", "kdvol1") == "kdvol1\n"


def test_anonymous_volumes_and_rm_v(vkd: Katadocker, volume_image: str) -> None:
    cid = vkd.ok(*CREATE, "-v", "/scratch", volume_image, "sh", "-c", "cat /anon/a.txt; ls /scratch").strip()
    mounts = json.loads(vkd.ok("inspect", "-f", "{{json .Mounts}}", cid))
    assert [m["Destination"] for m in mounts] == ["/anon", "/scratch"]
    names = [m["Name"] for m in mounts]
    for m in mounts:
        assert m["Type"] == "volume" and m["Driver"] == "local" and m["RW"] is True
        assert len(m["Name"]) == 64 and m["Source"].endswith(f"/volumes/{m['Name']}/_data")
    assert vkd.ok("start", "-a", cid) == "anon content\n"
    listed = vkd.ok("volume", "ls", "-q").split()
    assert set(names) <= set(listed)
    vkd.ok("rm", "-v", cid)
    assert not set(names) & set(vkd.ok("volume", "ls", "-q").split())


def test_tmpfs_and_read_only_root(vkd: Katadocker, busybox_image: str) -> None:
    r = vkd(*RUN, "--rm", "--read-only", busybox_image, "sh", "-c", "touch /x; touch /tmp/x")
    assert r.rc != 0
    assert r.err.count("Read-only file system") == 2, r  # docker adds no writable /tmp by itself
    r = vkd(*RUN, "--rm", "--read-only", "--tmpfs", "/tmp:size=1m,mode=1700", busybox_image, "sh", "-c",
            "echo ok > /tmp/x && cat /tmp/x && stat -c %a /tmp && grep ' /tmp ' /proc/mounts")
    assert r.rc == 0, r
    out = r.out.splitlines()
    assert out[:2] == ["ok", "1700"]
    assert "tmpfs" in out[2] and "noexec" in out[2] and "size=1024k" in out[2]
    r = vkd(*RUN, "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=2m", busybox_image, "sh", "-c",
            "grep ' /t ' /proc/mounts")
    assert "size=2048k" in r.out, r


def test_volumes_from(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    vkd.ok(*CREATE, "--name", "datasrc", "-v", "kdvol2:/shared", "-v", f"{tmp_path}:/hostdir", busybox_image)
    r = vkd(*RUN, "--rm", "--volumes-from", "datasrc:ro", busybox_image, "sh", "-c",
            "ls -d /shared /hostdir; touch /shared/x")
    assert r.out == "/hostdir\n/shared\n" and "Read-only file system" in r.err, r
    vkd.ok("rm", "datasrc")
    vkd.ok("volume", "rm", "kdvol2")


def test_inspect_mounts_shape(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    cid = vkd.ok(*CREATE, "-v", f"{tmp_path}:/b:ro", "-v", "kdvol3:/v",
                 "--mount", "type=tmpfs,target=/t", "--tmpfs", "/notlisted", busybox_image).strip()
    mounts = json.loads(vkd.ok("inspect", "-f", "{{json .Mounts}}", cid))
    assert mounts == [
        {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "ro", "RW": False,
         "Propagation": "rprivate"},
        {"Type": "tmpfs", "Source": "", "Destination": "/t", "Mode": "", "RW": True, "Propagation": ""},
        {"Type": "volume", "Name": "kdvol3", "Source": mounts[2]["Source"], "Destination": "/v",
         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
    ]
    host = json.loads(vkd.ok("inspect", "-f", "{{json .HostConfig}}", cid))
    assert host["Binds"] == [f"{tmp_path}:/b:ro", "kdvol3:/v"]
    assert host["Tmpfs"] == {"/notlisted": ""}
    vkd.ok("rm", cid)
    vkd.ok("volume", "rm", "kdvol3")


@pytest.mark.parametrize(("args", "message"), [
    (["-v", "relative/dir:/x"], 'create relative/dir: "relative/dir" includes invalid characters for a local '
                                'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended '
                                "to pass a host directory, use absolute path"),
    (["-v", "/tmp:x"], "invalid volume specification: '/tmp:x': invalid mount config for type \"bind\": "
                       "invalid mount path: 'x' mount path must be absolute"),
    (["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
    (["--mount", "type=bind,source=rel,target=/x"],
     "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    (["--mount", "type=bind,source=/nonexistent-kd,target=/x"],
     "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-kd"),
    (["--mount", "type=bind,source=/tmp,target=/x,bogus=1"],
     "invalid argument \"type=bind,source=/tmp,target=/x,bogus=1\" for \"--mount\" flag: "
     "unexpected key 'bogus' in 'bogus=1'"),
    (["--tmpfs", "rel"], "invalid mount path: 'rel' mount path must be absolute"),
])
def test_bad_input_exits_125(vkd: Katadocker, busybox_image: str, args: list[str], message: str) -> None:
    r = vkd(*RUN, "--rm", *args, busybox_image, "true")
    assert r.rc == 125, r
    assert message in r.err


def test_more_mounts_than_the_vm_has_slots_for(vkd: Katadocker, busybox_image: str, tmp_path: Path) -> None:
    """Each volume or bind is a device in the VM's hotplug bridge (vm/qemu.py HOTPLUG_SLOTS): without
    a network 30 fit beside the root; a 31st is a clear error that leaves no container or helper."""
    binds = [arg for i in range(30) for arg in ("-v", f"{tmp_path}:/m{i}")]
    r = vkd(*RUN, "--rm", *binds, busybox_image, "sh", "-c", "ls -d /m* | wc -l")
    assert (r.rc, r.out) == (0, "30\n"), r
    r = vkd(*RUN, "--rm", *binds, "-v", f"{tmp_path}:/m30", busybox_image, "true")
    assert r.rc == 125, r
    assert "a VM takes at most 31 hot-added devices, not 32 (a container's root, its network" in r.err
    assert vkd.ok("ps", "-aq") == ""
    assert find_leaks(vkd.root) == []
