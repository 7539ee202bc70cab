"""katadocker's unpacker against GNU tar on the real nginx root filesystem (6,350 entries): the two
trees must be identical in every attribute an overlay lower dir carries."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from katadocker.image.unpack import unpack_layer
from tests.support.images import nginx_rootfs_tar

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")]


def _tree(root: Path) -> tuple[dict[str, tuple], list[tuple[str, ...]]]:
    """Every path's (type, mode, uid, gid, size, mtime ns, rdev, link target, xattrs, content hash),
    and the groups of paths sharing an inode (hardlinks)."""
    entries: dict[str, tuple] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        names = dirnames + filenames + (["."] if dirpath == str(root) else [])
        for name in names:
            path = dirpath if name == "." else os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            inodes.setdefault(st.st_ino, []).append(rel)
            xattrs = tuple(sorted((k, os.getxattr(path, k, follow_symlinks=False))
                                  for k in os.listxattr(path, follow_symlinks=False)))
            content = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            entries[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                            None if stat.S_ISDIR(st.st_mode) else st.st_size, st.st_mtime_ns, st.st_rdev,
                            os.readlink(path) if stat.S_ISLNK(st.st_mode) else None, xattrs, content)
    return entries, sorted(tuple(sorted(group)) for group in inodes.values() if len(group) > 1)


def test_nginx_root_unpacks_exactly_as_gnu_tar(tmp_path: Path) -> None:
    tar = nginx_rootfs_tar()
    gnu, ours = tmp_path / "gnu", tmp_path / "ours"
    gnu.mkdir()
    ours.mkdir()
    subprocess.run(["tar", "-xpf", str(tar), "--xattrs", "--xattrs-include=*", "--numeric-owner",
                    "-C", str(gnu)], check=True)
    unpack_layer(tar, ours)
    gnu_entries, gnu_links = _tree(gnu)
    our_entries, our_links = _tree(ours)
    assert len(our_entries) > 5000
    differing = [p for p in sorted(gnu_entries.keys() | our_entries.keys())
                 if gnu_entries.get(p) != our_entries.get(p)]
    assert differing == []
    assert gnu_links and our_links == gnu_links
