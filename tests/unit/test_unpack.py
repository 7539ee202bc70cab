"""Layer unpacking: entry types, whiteouts, compression, diff IDs, and refusal of hostile tars.

Tars are built in memory. Runs as root (chown, mknod, trusted xattrs, overlay mounts).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from katadocker.errors import BadLayer, DigestMismatch, UnsafeLayer
from katadocker.image.unpack import check_layer_media_type, entry_parts, unpack_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

MTIME = 1_600_000_000


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object) -> tuple:
    """One tar entry for `make_tar`: name, type, data and TarInfo attribute overrides."""
    return (name, kind, data, attrs)


def make_tar(*entries: tuple) -> bytes:
    """An uncompressed PAX tar holding `entries` in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, attrs in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data)
            info.mtime = MTIME
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def unpack(tmp_path: Path, raw: bytes, expected: str | None = None) -> Path:
    """Write `raw` as a blob, unpack it into tmp_path/out and return that directory."""
    blob = tmp_path / "blob"
    blob.write_bytes(raw)
    out = tmp_path / "out"
    out.mkdir()
    unpack_layer(blob, out, expected)
    return out


def test_every_entry_type_keeps_its_metadata(tmp_path: Path) -> None:
    raw = make_tar(
        entry("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=MTIME - 5),
        entry("bin/su", data=b"#!su\n", mode=0o4755, uid=0, gid=0),
        entry("bin/wall", data=b"wall", mode=0o2755, uid=1000, gid=5),
        entry("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox", uid=7, gid=8),
        entry("bin/su2", tarfile.LNKTYPE, linkname="bin/su"),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("dev/loop0", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660, gid=6),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o620),
        entry("etc/cap", data=b"x", pax_headers={
            "SCHILY.xattr.user.note": "hello",
            "SCHILY.xattr.user.bin": b"\x00\xff\x01".decode("utf-8", "surrogateescape"),
            "SCHILY.xattr.trusted.overlay.opaque": "y"}),
    )
    out = unpack(tmp_path, raw)
    st = os.lstat(out / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and st.st_mtime == MTIME - 5
    su = os.lstat(out / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_mtime == MTIME
    wall = os.lstat(out / "bin/wall")
    assert (stat.S_IMODE(wall.st_mode), wall.st_uid, wall.st_gid) == (0o2755, 1000, 5)
    assert os.readlink(out / "bin/sh") == "/bin/busybox"
    assert (os.lstat(out / "bin/sh").st_uid, os.lstat(out / "bin/sh").st_gid) == (7, 8)
    assert os.lstat(out / "bin/su2").st_ino == su.st_ino and su.st_nlink == 2
    null = os.lstat(out / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(out / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 0) and loop.st_gid == 6
    assert stat.S_ISFIFO(os.lstat(out / "run/fifo").st_mode)
    assert os.getxattr(out / "etc/cap", "user.note") == b"hello"
    assert os.getxattr(out / "etc/cap", "user.bin") == b"\x00\xff\x01"
    # A layer cannot forge overlayfs metadata.
    assert "trusted.overlay.opaque" not in os.listxattr(out / "etc/cap")
    assert stat.S_IMODE(os.lstat(out / "bin").st_mode) == 0o755  # implicit parents


def test_directory_mtimes_survive_their_contents(tmp_path: Path) -> None:
    raw = make_tar(entry("./", tarfile.DIRTYPE, mode=0o700, mtime=MTIME - 9),
                   entry("d", tarfile.DIRTYPE, mtime=MTIME - 1),
                   entry("d/f", data=b"1"), entry("d/e", tarfile.DIRTYPE, mtime=MTIME - 2))
    out = unpack(tmp_path, raw)
    assert os.lstat(out / "d").st_mtime == MTIME - 1
    assert os.lstat(out / "d/e").st_mtime == MTIME - 2
    assert os.lstat(out).st_mtime == MTIME - 9 and stat.S_IMODE(os.lstat(out).st_mode) == 0o700


def test_deep_trees(tmp_path: Path) -> None:
    """Deeper than the directory-fd cache: every level still lands in the right place."""
    names = ["/".join(f"d{i}" for i in range(depth)) + f"/f{depth}" for depth in range(1, 80)]
    out = unpack(tmp_path, make_tar(*(entry(n, data=n.encode()) for n in reversed(names))))
    assert all((out / n).read_bytes() == n.encode() for n in names)


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    raw = make_tar(entry("etc/.wh.passwd", uid=0), entry("var/cache/.wh..wh..opq"),
                   entry("var/cache/new", data=b"n"), entry(".wh..wh.plnk", tarfile.DIRTYPE))
    out = unpack(tmp_path, raw)
    wh = os.lstat(out / "etc/passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0)
    assert os.getxattr(out / "var/cache", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(out)) == ["etc", "var"]  # aufs metadata skipped


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    raw = make_tar(entry("a", data=b"file"), entry("a", tarfile.DIRTYPE), entry("a/x", data=b"x"),
                   entry("a", tarfile.DIRTYPE, mode=0o711), entry("b", tarfile.DIRTYPE),
                   entry("b/y", data=b"y"), entry("b", tarfile.SYMTYPE, linkname="a"))
    out = unpack(tmp_path, raw)
    assert (out / "a/x").read_bytes() == b"x" and stat.S_IMODE(os.lstat(out / "a").st_mode) == 0o711
    assert os.readlink(out / "b") == "a"


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, zstandard.ZstdCompressor().compress],
                         ids=["plain", "gzip", "zstd"])
def test_compressions_and_diff_id(tmp_path: Path, compress) -> None:
    plain = make_tar(entry("hello", data=b"world" * 1000))
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    out = unpack(tmp_path, compress(plain), diff_id)
    assert (out / "hello").read_bytes() == b"world" * 1000


def test_multi_frame_zstd(tmp_path: Path) -> None:
    plain = make_tar(entry("f", data=os.urandom(3000)))
    cctx = zstandard.ZstdCompressor()
    out = unpack(tmp_path, cctx.compress(plain[:1024]) + cctx.compress(plain[1024:]),
                 "sha256:" + hashlib.sha256(plain).hexdigest())
    assert (out / "f").stat().st_size == 3000


def test_multi_member_gzip_with_zero_padding(tmp_path: Path) -> None:
    """Read as gzip.GzipFile reads it: members one after another, zero bytes after the last."""
    plain = make_tar(entry("f", data=os.urandom(300_000)), entry("g", data=b"x" * 5_000_000))
    out = unpack(tmp_path, gzip.compress(plain[:70_000]) + gzip.compress(plain[70_000:]) + b"\0" * 4096,
                 "sha256:" + hashlib.sha256(plain).hexdigest())
    assert (out / "g").read_bytes() == b"x" * 5_000_000


@pytest.mark.parametrize("damage", [lambda d: d + b"junk", lambda d: d[:-4] + bytes(4 - i for i in range(4)),
                                    lambda d: d[:-1]], ids=["trailing-garbage", "bad-crc", "truncated"])
def test_damaged_gzip_is_bad_layer(tmp_path: Path, damage) -> None:
    data = gzip.compress(make_tar(entry("f", data=os.urandom(5000))))
    with pytest.raises(BadLayer, match="corrupt"):
        unpack(tmp_path, damage(data))
    assert not (tmp_path / "out").exists()


def test_progress_callback_error_aborts_and_leaves_nothing(tmp_path: Path) -> None:
    """An exception raised by on_progress (a cancelled pull) stops the unpack and removes the target."""
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(make_tar(*(entry(f"f{i}", data=os.urandom(100_000)) for i in range(40)))))
    out = tmp_path / "out"
    out.mkdir()

    def cancel(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        unpack_layer(blob, out, None, cancel)
    assert not out.exists()


def test_diff_id_mismatch_removes_target(tmp_path: Path) -> None:
    with pytest.raises(DigestMismatch, match="diff ID"):
        unpack(tmp_path, make_tar(entry("f", data=b"1")), "sha256:" + "0" * 64)
    assert not (tmp_path / "out").exists()


def test_corrupt_archive_is_bad_layer(tmp_path: Path) -> None:
    data = gzip.compress(make_tar(entry("f", data=os.urandom(5000))))
    with pytest.raises(BadLayer, match="corrupt"):
        unpack(tmp_path, data[: len(data) // 2])
    assert not (tmp_path / "out").exists()


def test_absolute_names_land_under_the_root(tmp_path: Path) -> None:
    """docker cleans the name and joins it to the root: ``/etc/x`` is ``etc/x``, ``/../x`` is ``x``."""
    out = unpack(tmp_path, make_tar(entry("/etc/x", data=b"1"), entry("/../y", data=b"2")))
    assert (out / "etc/x").read_bytes() == b"1" and (out / "y").read_bytes() == b"2"
    assert entry_parts("./a/./b/") == ["a", "b"] and entry_parts("/") == []


HOSTILE = {
    "dotdot": [entry("../x", data=b"evil")],
    "dotdot-inside": [entry("a/../../x", data=b"evil")],
    "file-through-symlink": [entry("link", tarfile.SYMTYPE, linkname="/outside"),
                             entry("link/x", data=b"evil")],
    "dir-through-relative-symlink": [entry("up", tarfile.SYMTYPE, linkname=".."),
                                     entry("up/x", tarfile.DIRTYPE)],
    "dir-replaced-by-symlink": [entry("a/b/f", data=b"1"), entry("a", tarfile.SYMTYPE, linkname="/outside"),
                                entry("a/b/g", data=b"evil")],
    "hardlink-escape": [entry("passwd", tarfile.LNKTYPE, linkname="../../etc/passwd")],
    "hardlink-outside-layer": [entry("shadow", tarfile.LNKTYPE, linkname="/etc/shadow")],
    "hardlink-through-symlink": [entry("etc", tarfile.SYMTYPE, linkname="/etc"),
                                 entry("pw", tarfile.LNKTYPE, linkname="etc/passwd")],
}


@pytest.mark.parametrize("entries", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_tars_are_refused_and_leave_nothing(tmp_path: Path, entries: list[tuple]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(UnsafeLayer, match="refusing"):
        unpack(tmp_path, make_tar(entry("ok", data=b"fine"), *entries))
    assert not (tmp_path / "out").exists()
    assert list(outside.iterdir()) == [] and not (tmp_path / "x").exists()


def test_media_type_check() -> None:
    check_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd")
    check_layer_media_type(None)
    with pytest.raises(BadLayer, match="unsupported layer media type"):
        check_layer_media_type("application/vnd.oci.image.config.v1+json")


def test_layers_stack_as_overlay_lower_dirs(tmp_path: Path) -> None:
    """Mount a real overlay: the upper layer's whiteout hides a file, its opaque dir hides lower contents."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "blob").write_bytes(make_tar(entry("f", data=b"gone"), entry("keep", data=b"k"),
                                         entry("d/a", data=b"a"), entry("d/b", data=b"b")))
    (base / "out").mkdir()
    unpack_layer(base / "blob", base / "out")
    top = unpack(tmp_path, make_tar(entry(".wh.f"), entry("d/.wh..wh..opq"), entry("d/c", data=b"c")))
    mnt, upper, work = tmp_path / "mnt", tmp_path / "upper", tmp_path / "work"
    for d in (mnt, upper, work):
        d.mkdir()
    opts = f"lowerdir={top}:{base / 'out'},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)
    try:
        assert sorted(os.listdir(mnt)) == ["d", "keep"]
        assert os.listdir(mnt / "d") == ["c"]
        assert (mnt / "keep").read_bytes() == b"k"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
