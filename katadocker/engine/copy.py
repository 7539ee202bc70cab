"""docker cp: files between the host and a container's root, as tar streams.

Container paths are resolved on the host side of the container's root (engine/rootview.py) with
every ``..`` and symlink interpreted inside that root (`process_spec.secure_join`), so no path, link
or tar entry can reach outside it. docker's rules for where a copy lands:

* a file onto a missing path is written under that name (its directory must exist; a trailing
  ``/`` then is "destination directory must exist"); onto a file it overwrites; onto a directory it
  goes inside under its own name;
* a directory onto a missing path becomes that path; onto a directory it goes inside under its own
  name, or only its contents when the source ends in ``/.``; onto a file it is an error.

Without ``-a`` the copies belong to root in the container and to the caller on the host; with
``-a`` they keep the source's uid/gid. The last component of the source is copied as a link
unless ``-L`` is given.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from katadocker.config import Settings
from katadocker.engine.process_spec import secure_join
from katadocker.engine.rootview import container_root
from katadocker.errors import InvalidArgument, KatadockerError, NotFound

Owner = tuple[int, int] | None


class CopyError(KatadockerError):
    """A copy that docker refuses (bad destination, missing source)."""


@dataclass(frozen=True)
class Source:
    """What to put in the tar: `path` on the host (already resolved), the name its top entry gets
    (`arcname`, "." for a directory's contents) and whether it is a directory."""

    path: Path
    arcname: str
    is_dir: bool


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def resolve_in_root(root: Path, path: str, follow_last: bool) -> Path:
    """`path` in the container `root`: every component but the last resolved inside the root; the
    last too when `follow_last`."""
    if follow_last:
        return secure_join(root, path)
    parent, name = posixpath.split(posixpath.normpath("/" + path.lstrip("/")))
    if name in ("", ".", ".."):
        return secure_join(root, path)
    return secure_join(root, parent) / name


def source(path: Path, shown: str) -> Source:
    """The tar source for the existing `path`, given by the user as `shown`."""
    is_dir = path.is_dir() and not path.is_symlink()
    contents = shown.endswith("/.") and is_dir
    name = "." if contents else posixpath.basename(posixpath.normpath(shown)) or "."
    return Source(path, name, is_dir)


def destination(dest: Path, shown: str, src: Source) -> tuple[Path, str | None]:
    """(directory to extract into, new name for the top entry or None to keep it), by docker's rules."""
    if dest.is_dir():
        return dest, None
    if _lexists(dest):
        if src.is_dir:
            raise CopyError("cannot copy a directory to a file")
        return dest.parent, dest.name
    if shown.endswith("/") and not src.is_dir:
        raise CopyError(f"destination directory must exist: {shown}")
    if not dest.parent.is_dir():
        raise CopyError(f"no such directory: {posixpath.dirname(shown.rstrip('/')) or '/'}")
    return dest.parent, dest.name


# --- tar out ---------------------------------------------------------------------------------------

def write_tar(src: Source, out: BinaryIO, rename: str | None = None, owner: Owner = None) -> None:
    """A tar stream of `src` (top entry named `rename` or `src.arcname`) to `out`; `owner` replaces
    every entry's uid/gid when given."""
    top = rename or src.arcname

    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if owner is not None:
            info.uid, info.gid = owner
            info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if top == ".":
            for child in sorted(os.listdir(src.path)):
                tar.add(src.path / child, arcname=child, filter=fix)
        else:
            tar.add(src.path, arcname=top, filter=fix)


# --- tar in ----------------------------------------------------------------------------------------

def extract_tar(stream: BinaryIO, root: Path, dest: str, owner: Owner, rename: str | None = None) -> None:
    """Extract the tar `stream` into directory `dest` of `root`, every entry (and link target)
    resolved inside `root`; `rename` replaces the first path component of every entry; `owner`
    replaces the entries' uid/gid when given."""
    dirs: list[tuple[Path, tarfile.TarInfo]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = _renamed(member.name, rename)
                if owner is not None:
                    member.uid, member.gid = owner
                target = resolve_in_root(root, posixpath.join(dest, name), follow_last=False)
                if target == root:
                    continue  # the destination itself ("." entries)
                _extract_member(tar, member, target, root, dest, rename)
                if member.isdir():
                    dirs.append((target, member))
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid tar stream: {e}") from None
    for target, member in reversed(dirs):  # after their contents, so read-only dirs work
        _set_attrs(target, member)


def _renamed(name: str, rename: str | None) -> str:
    name = name.lstrip("/")
    if rename is None:
        return name
    first, _, rest = name.partition("/")
    return posixpath.join(rename, rest) if rest else rename


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path, root: Path, dest: str,
                    rename: str | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if m.isdir():
        if _lexists(target) and not target.is_dir():
            target.unlink()
        target.mkdir(exist_ok=True)
        return
    if target.is_dir() and not target.is_symlink():
        raise CopyError(f"cannot overwrite directory {target.relative_to(root)} with non-directory")
    if _lexists(target):
        target.unlink()
    if m.issym():
        os.symlink(m.linkname, target)
    elif m.islnk():
        linked = resolve_in_root(root, posixpath.join(dest, _renamed(m.linkname, rename)), follow_last=False)
        os.link(linked, target)
    elif m.isfile():
        src = tar.extractfile(m)
        assert src is not None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    elif m.ischr() or m.isblk() or m.isfifo():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
        os.mknod(target, kind | 0o600, os.makedev(m.devmajor, m.devminor))
    else:
        return
    _set_attrs(target, m)


def _set_attrs(target: Path, m: tarfile.TarInfo) -> None:
    with contextlib.suppress(OSError):
        os.lchown(target, m.uid, m.gid)
    if not m.issym():
        os.chmod(target, m.mode & 0o7777)
    with contextlib.suppress(OSError):
        os.utime(target, (m.mtime, m.mtime), follow_symlinks=False)


# --- the verbs -------------------------------------------------------------------------------------

def _through_pipe(produce: Callable[[BinaryIO], None], consume: Callable[[BinaryIO], None]) -> None:
    """Run `produce(writer)` in a thread and `consume(reader)` here, joined by a pipe."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with open(w, "wb") as out:
                produce(out)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    writer = threading.Thread(target=run, daemon=True)
    writer.start()
    with open(r, "rb") as inp:
        try:
            consume(inp)
        finally:
            inp.read()  # let the writer finish
    writer.join()
    if errors:
        raise errors[0]


def _host_path(path: str) -> Path:
    return Path(os.path.abspath(path))


def copy_from_container(settings: Settings, ref: str, src: str, dest: str, archive: bool = False,
                        follow: bool = False) -> int:
    """``cp CONTAINER:SRC DEST`` (DEST on the host); the bytes of file data copied."""
    with container_root(settings, ref) as (record, root):
        source_ = _container_source(root, src, follow, record.name)
        into, rename = destination(_host_path(dest), dest, source_)
        owner = None if archive else (os.getuid(), os.getgid())
        _through_pipe(lambda out: write_tar(source_, out, rename),
                      lambda inp: extract_tar(inp, into, "/", owner))
        return _size(source_.path)


def copy_to_container(settings: Settings, ref: str, src: str, dest: str, archive: bool = False,
                      follow: bool = False) -> int:
    """``cp SRC CONTAINER:DEST`` (SRC on the host); the bytes of file data copied."""
    path = _host_path(src)
    if not _lexists(path):
        raise CopyError(f"lstat {path}: no such file or directory")
    with container_root(settings, ref) as (_record, root):
        source_ = source(path.resolve() if follow else path, src)
        target = secure_join(root, dest)
        into, rename = destination(target, dest, source_)
        owner = None if archive else (0, 0)
        rel = "/" + str(into.relative_to(root)) if into != root else "/"
        _through_pipe(lambda out: write_tar(source_, out, rename),
                      lambda inp: extract_tar(inp, root, rel, owner))
        return _size(source_.path)


def tar_from_container(settings: Settings, ref: str, src: str, out: BinaryIO, follow: bool = False) -> None:
    """``cp CONTAINER:SRC -``: a tar of SRC (owners as in the container) to `out`."""
    with container_root(settings, ref) as (record, root):
        write_tar(_container_source(root, src, follow, record.name), out)


def untar_to_container(settings: Settings, ref: str, dest: str, stream: BinaryIO,
                       archive: bool = False) -> None:
    """``cp - CONTAINER:DEST``: extract a tar from `stream` into directory DEST."""
    with container_root(settings, ref) as (_record, root):
        target = secure_join(root, dest)
        if not target.is_dir():
            raise CopyError(f"destination \"{dest}\" must be a directory" if _lexists(target)
                            else f"Could not find the file {dest} in container {ref}")
        extract_tar(stream, root, "/" + str(target.relative_to(root)) if target != root else "/",
                    None if archive else (0, 0))


def _container_source(root: Path, src: str, follow: bool, name: str) -> Source:
    path = resolve_in_root(root, src, follow_last=follow)
    if not _lexists(path):
        raise NotFound(f"Could not find the file {src} in container {name.lstrip('/')}")
    return source(path, src)


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def export(settings: Settings, ref: str, out: BinaryIO) -> None:
    """docker export: the container's whole root as a tar (owners as in the container) to `out`."""
    with container_root(settings, ref) as (_record, root):
        write_tar(Source(root, ".", True), out)
