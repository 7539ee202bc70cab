"""cp's path rules and tar extraction: nothing reaches outside the container root."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from katadocker.engine import copy


def _tar(entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            body = (data or {}).get(info.name)
            if body is not None:
                info.size = len(body)
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    buf.seek(0)
    return buf


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "tmp").mkdir()
    return r


def test_escaping_entries_land_inside_the_root(root: Path, tmp_path: Path) -> None:
    entries = [_info("../../../outside"), _info("/abs"), _info("evil", tarfile.SYMTYPE, "/"),
               _info("evil/etc/through-abs-link"), _info("up", tarfile.SYMTYPE, "../../.."),
               _info("up/through-rel-link"), _info("hard", tarfile.LNKTYPE, "../../../etc/passwd-host")]
    (root / "etc" / "passwd-host").write_text("in root")
    data = {e.name: b"x" for e in entries if e.type == tarfile.REGTYPE}
    copy.extract_tar(_tar(entries, data), root, "/tmp", owner=(0, 0))
    assert not (tmp_path / "outside").exists() and not Path("/abs").exists()
    assert (root / "outside").read_bytes() == b"x"
    assert (root / "tmp" / "abs").read_bytes() == b"x"
    assert (root / "etc" / "through-abs-link").read_bytes() == b"x"
    assert (root / "through-rel-link").read_bytes() == b"x"
    assert (root / "tmp" / "hard").read_text() == "in root"


def test_container_paths_resolve_symlinks_inside_the_root(root: Path) -> None:
    (root / "link").symlink_to("/etc")
    (root / "etc" / "passwd").write_text("p")
    assert copy.resolve_in_root(root, "link/passwd", follow_last=False) == root / "etc" / "passwd"
    assert copy.resolve_in_root(root, "/../../link", follow_last=False) == root / "link"
    assert copy.resolve_in_root(root, "/../../link", follow_last=True) == root / "etc"


def test_destination_rules(root: Path) -> None:
    (root / "file").write_text("f")
    (root / "dir").mkdir()
    file_src = copy.Source(root / "file", "file", False)
    dir_src = copy.Source(root / "dir", "dir", True)
    assert copy.destination(root / "tmp", "/tmp", file_src) == (root / "tmp", None)
    assert copy.destination(root / "new", "/new", file_src) == (root, "new")
    assert copy.destination(root / "file", "/file", file_src) == (root, "file")
    assert copy.destination(root / "newdir", "/newdir", dir_src) == (root, "newdir")
    with pytest.raises(copy.CopyError, match="cannot copy a directory to a file"):
        copy.destination(root / "file", "/file", dir_src)
    with pytest.raises(copy.CopyError, match="destination directory must exist"):
        copy.destination(root / "nope", "/nope/", file_src)
    with pytest.raises(copy.CopyError, match="no such directory"):
        copy.destination(root / "a" / "b", "/a/b", file_src)


def test_tar_round_trip_with_rename_contents_and_owner(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("data")
    (src / "link").symlink_to("sub/f")
    os.chmod(src / "sub" / "f", 0o751)
    for shown, rename, expect in (("src", "renamed", root / "tmp" / "renamed"),
                                  ("src/.", None, root / "tmp")):
        out = io.BytesIO()
        copy.write_tar(copy.source(src, shown), out, rename)
        out.seek(0)
        copy.extract_tar(out, root, "/tmp", owner=(0, 0))
        assert (expect / "sub" / "f").read_text() == "data"
        assert (expect / "sub" / "f").stat().st_mode & 0o777 == 0o751
        assert os.readlink(expect / "link") == "sub/f"
