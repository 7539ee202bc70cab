"""cp, diff, export, top and stats against a real VM's container."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import Katadocker

pytestmark = pytest.mark.vm


def _names(raw: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.getnames()


@pytest.fixture(scope="module")
def box(vm_kd: Katadocker, busybox_image: str):
    name = "cp-box"
    vm_kd.ok("run", "-d", "--network", "none", "--name", name, busybox_image, "sleep", "100000")
    yield name
    vm_kd("rm", "-f", name)


def test_cp_both_ways_and_tar_streams(vm_kd: Katadocker, box: str, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host")
    vm_kd.ok("cp", str(tmp_path / "in.txt"), f"{box}:/tmp/")
    assert vm_kd.ok("exec", box, "cat", "/tmp/in.txt") == "from host"
    assert vm_kd.ok("exec", box, "stat", "-c", "%u", "/tmp/in.txt") == "0\n"
    vm_kd.ok("exec", box, "sh", "-c", "mkdir -p /data/sub; echo guest >/data/sub/f; ln -s /etc /data/etclink")
    vm_kd.ok("cp", f"{box}:/data", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "f").read_text() == "guest\n"
    assert (tmp_path / "out" / "etclink").is_symlink()
    raw = subprocess.run([sys.executable, "-m", "katadocker", "cp", f"{box}:/data/sub", "-"],
                         capture_output=True, env=vm_kd.env(), check=True).stdout
    assert _names(raw) == ["sub", "sub/f"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("streamed")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    vm_kd.ok("cp", "-", f"{box}:/tmp", input=buf.getvalue())
    assert vm_kd.ok("exec", box, "cat", "/tmp/streamed") == "abc"


def test_cp_escaping_paths_stay_in_the_root(vm_kd: Katadocker, box: str, tmp_path: Path) -> None:
    vm_kd.ok("exec", box, "sh", "-c", "ln -sf / /tmp/rootlink; echo mine > /tmp/marker")
    vm_kd.ok("cp", f"{box}:/../../../tmp/marker", str(tmp_path / "m1"))
    vm_kd.ok("cp", f"{box}:/tmp/rootlink/tmp/marker", str(tmp_path / "m2"))
    assert (tmp_path / "m1").read_text() == (tmp_path / "m2").read_text() == "mine\n"
    (tmp_path / "x").write_text("x")
    vm_kd.ok("cp", str(tmp_path / "x"), f"{box}:/tmp/rootlink/../../escaped")
    assert not Path("/escaped").exists()
    assert vm_kd.ok("exec", box, "cat", "/escaped") == "x"
    r = vm_kd("cp", f"{box}:/nope", str(tmp_path))
    assert (r.rc, r.err) == (1, "Error response from daemon: Could not find the file /nope in container "
                                f"{box}\n")


def test_diff_export_top_stats(vm_kd: Katadocker, box: str) -> None:
    vm_kd.ok("exec", box, "sh", "-c", "echo x > /root-added; rm /bin/vi")
    lines = vm_kd.ok("diff", box).splitlines()
    assert "A /root-added" in lines and "D /bin/vi" in lines and "C /bin" in lines
    raw = subprocess.run([sys.executable, "-m", "katadocker", "export", box], capture_output=True,
                         env=vm_kd.env(), check=True).stdout
    names = _names(raw)
    assert "root-added" in names and "bin/busybox" in names and "bin/vi" not in names
    top = vm_kd.ok("top", box).splitlines()
    assert "PID" in top[0] and any("sleep 100000" in line for line in top[1:])
    stats = vm_kd.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", box).split()
    assert stats[0] == box and stats[-1] == "1" and "MiB" in stats[1]
