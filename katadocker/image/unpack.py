"""Safe unpacking of one image layer into a directory usable directly as an overlayfs lower dir.

`unpack_layer(blob, target)` reads a gzip, zstd or uncompressed tar (detected by magic bytes), hashes
the uncompressed stream (the layer's diff ID) and applies each entry itself, never through
``extractall``:

- Names are normalized as docker's ``UnpackLayer`` does: ``filepath.Clean``, a leading ``/`` means the
  layer root (``/etc/x`` lands at ``etc/x``), and a name that still climbs out (``../x``) is refused.
- Every parent component is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's fd, so
  no write ever goes through a symlink: an entry beneath a symlink is refused (``UnsafeLayer``), as is
  a hardlink whose target climbs out of the layer or is not in it. Missing parents are created 0755.
- OCI whiteouts become overlayfs whiteouts: ``.wh.NAME`` -> a 0/0 character device ``NAME``;
  ``.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on its directory. Other ``.wh..wh.`` names (aufs
  metadata) are skipped, as docker does.
- Modes (setuid/setgid/sticky included), numeric owners, device nodes, fifos, symlinks, hardlinks,
  ``SCHILY.xattr.*`` extended attributes and mtimes are kept; directory mtimes are set last. Xattrs in
  ``trusted.overlay.`` are dropped: a layer must not forge overlayfs metadata.
- An existing path is replaced by a later entry of the same name unless both are directories.

Speed: decompression (one zlib/zstd call per multi-MiB chunk) and the diff-ID hash run in a reader
thread (`_ThreadedReader`; both release the GIL) while the calling thread parses the tar and creates
the files. A new entry is created first and its path looked at only when that fails (an existing
name is rare); a regular file gets its owner, mode, xattrs and mtime through its open fd.

Needs root (chown, mknod, trusted xattrs). On any failure the target directory is removed.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import zstandard

from katadocker.errors import BadLayer, DigestMismatch, UnsafeLayer

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_FORBIDDEN_XATTR_PREFIX = "trusted.overlay."
_CHUNK = 1 << 20
_TAR_BLOCK = 64 << 10
_BIG_CHUNK = 4 << 20  # the most one decompressing read returns
_QUEUE_CHUNKS = 4  # decompressed chunks (of _CHUNK) read ahead of the tar parser
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# Layer media types katadocker can unpack (OCI and Docker v2s2, distributable or not).
LAYER_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})


@dataclass(frozen=True)
class UnpackResult:
    """What unpacking measured: the diff ID (``sha256:`` of the uncompressed tar) and the sum of the
    sizes of the regular files written (docker's layer size)."""

    diff_id: str
    size: int


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _HashingReader:
    """Wraps a byte stream and hashes everything read through it."""

    def __init__(self, raw: _Reader) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        return data


class _ThreadedReader:
    """Reads `source` to its end in a thread, `_QUEUE_CHUNKS` chunks ahead of the consumer.

    The producer thread does the decompression and hashing (zlib, zstd and hashlib release the GIL),
    so it runs on another core while the consumer parses the tar and creates files. An exception in
    the producer (a corrupt stream, or one raised by an `on_progress` callback) is raised by the
    consumer's next `read`. `close()` stops the producer and waits for it.
    """

    def __init__(self, source: _Reader) -> None:
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._produce, args=(source,), name="unpack-read",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException) -> bool:
        """Queue `item` unless the consumer has gone away; False when stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: _Reader) -> None:
        try:
            while data := source.read(_BIG_CHUNK):
                if not self._put(data):
                    return
            self._put(b"")
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        if not self._buf and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
            self._buf = memoryview(item)
        data = bytes(self._buf[:size])
        self._buf = self._buf[size:]
        return data

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _CountingReader:
    """Wraps the raw (compressed) file and reports the bytes read so far to `on_progress`."""

    def __init__(self, raw: IO[bytes], on_progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_progress = on_progress
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._done += len(data)
        self._on_progress(self._done)
        return data


def check_layer_media_type(media_type: str | None) -> None:
    """Raise BadLayer unless `media_type` is None (unknown: trust the magic bytes) or a layer type."""
    if media_type is not None and media_type not in LAYER_MEDIA_TYPES:
        raise BadLayer(f"unsupported layer media type {media_type}")


def _decompressed(raw: IO[bytes], on_progress: Callable[[int], None] | None) -> _Reader:
    """The uncompressed stream of `raw`, chosen by its magic bytes (the media type is only a hint).

    `on_progress` gets the count of compressed bytes consumed so far. Reads return large chunks
    (up to `_BIG_CHUNK`) made by one call into zlib/zstd each, which release the GIL: run in the
    reader thread, decompression then needs next to no GIL time (see `_ThreadedReader`)."""
    head = raw.read(4)
    raw.seek(0)
    source: _Reader = _CountingReader(raw, on_progress) if on_progress else raw
    if head.startswith(GZIP_MAGIC):
        return _GunzipReader(source)
    if head == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().stream_reader(source, read_size=_CHUNK, read_across_frames=True,
                                                          closefd=False)
    return source


class _GunzipReader:
    """Decompresses a gzip stream (one or more members, trailing zero padding allowed, as
    `gzip.GzipFile` reads it) with one ``zlib`` call per read; CRC and length are checked by zlib.

    Raises zlib.error on corrupt data (garbage after a member included), EOFError when the stream
    is truncated."""

    def __init__(self, source: _Reader) -> None:
        self._source = source
        self._zlib = zlib.decompressobj(wbits=31)  # gzip header and trailer
        self._pending = b""  # compressed bytes not yet given to zlib
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        limit = _BIG_CHUNK if size < 0 else min(size, _BIG_CHUNK)
        while not self._eof:
            if not self._pending and not self._zlib.unconsumed_tail:
                self._pending = self._source.read(_CHUNK)
                if not self._pending:
                    if not self._zlib.eof:
                        raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                    self._eof = True
                    break
            data = self._zlib.unconsumed_tail or self._pending
            if data is self._pending:
                self._pending = b""
            out = self._zlib.decompress(data, limit)
            if self._zlib.eof:
                self._next_member()
            if out:
                return out
        return b""

    def _next_member(self) -> None:
        """After a member's end: skip zero padding, then start the next member (zlib checks its
        header) or end the stream."""
        rest = self._zlib.unused_data + self._pending
        self._pending = b""
        while not (rest := rest.lstrip(b"\0")):
            rest = self._source.read(_CHUNK)
            if not rest:
                self._eof = True
                return
        self._zlib = zlib.decompressobj(wbits=31)
        self._pending = rest


def entry_parts(name: str) -> list[str]:
    """Split a tar entry name into path components under the layer root, normalized as docker does.

    ``filepath.Clean`` semantics: ``a/./b`` -> ``a/b``, ``/etc/x`` -> ``etc/x``, ``/../x`` -> ``x``;
    ``.`` or ``/`` -> ``[]`` (the root itself). A name that climbs out (``../x``, ``a/../../x``) raises
    UnsafeLayer.
    """
    norm = posixpath.normpath(name)
    if norm.startswith("/"):
        norm = norm.lstrip("/") or "."
    if norm == ".." or norm.startswith("../"):
        raise UnsafeLayer(f"refusing layer entry {name!r}: it points outside the layer root")
    return [] if norm == "." else norm.split("/")


def _open_child(parent_fd: int, comp: str, where: str, name: str, *, create: bool) -> int:
    """Open directory `comp` in `parent_fd` without following a symlink (creating it 0755 when
    missing and `create`, else FileNotFoundError). A symlink or non-directory raises UnsafeLayer."""
    try:
        return os.open(comp, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        os.mkdir(comp, 0o755, dir_fd=parent_fd)
        return os.open(comp, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise UnsafeLayer(
            f"refusing layer entry {name!r}: {where!r} is a symlink or not a directory"
        ) from None


class _DirFds:
    """Open fds of directories below the layer root, keyed by path components (at most `LIMIT`, least
    recently used closed first): consecutive entries in one directory cost no path walk.

    Every cached fd was reached component by component with ``O_NOFOLLOW``, so it is a real directory
    inside the target. `forget()` must be called whenever a directory is removed, so that no entry
    lands in a deleted directory.
    """

    LIMIT = 64

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._fds: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def open(self, parts: list[str], name: str, *, create: bool) -> int:
        """A new fd (the caller closes it) of the directory at `parts`; see `_open_child` for errors
        (`name` is the entry named in them)."""
        start = next((i for i in range(len(parts), 0, -1) if tuple(parts[:i]) in self._fds), 0)
        fd = self.root_fd
        if start:
            self._fds.move_to_end(tuple(parts[:start]))
            fd = self._fds[tuple(parts[:start])]
        for i in range(start, len(parts)):
            # The newest entry is never the one evicted, so `fd` stays open for the next step.
            fd = self._remember(tuple(parts[: i + 1]),
                                _open_child(fd, parts[i], "/".join(parts[: i + 1]), name, create=create))
        return os.dup(fd)

    def _remember(self, key: tuple[str, ...], fd: int) -> int:
        self._fds[key] = fd
        if len(self._fds) > self.LIMIT:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def forget(self) -> None:
        """Close every cached fd."""
        while self._fds:
            os.close(self._fds.popitem()[1])


def _clear(dir_fd: int, leaf: str, *, keep_dir: bool) -> bool:
    """Remove whatever is at `leaf` (recursively), except a directory when `keep_dir`. Returns True
    when a directory was removed."""
    try:
        st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(leaf, dir_fd=dir_fd)
        return False
    if keep_dir:
        return False
    shutil.rmtree(leaf, dir_fd=dir_fd)
    return True


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """The entry's extended attributes from its PAX ``SCHILY.xattr.*`` records, minus forbidden ones."""
    found = {}
    for key, value in member.pax_headers.items():
        if key.startswith(_PAX_XATTR_PREFIX):
            attr = key[len(_PAX_XATTR_PREFIX):]
            if not attr.startswith(_FORBIDDEN_XATTR_PREFIX):
                found[attr] = value.encode("utf-8", "surrogateescape")
    return found


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


class _Extractor:
    """Applies the entries of one tar stream below an open root directory fd."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.size = 0
        self._dirs = _DirFds(root_fd)
        self._dir_times: list[tuple[list[str], int]] = []

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Apply one entry (see the module docstring for the rules)."""
        parts = entry_parts(member.name)
        if not parts:
            self._apply_root(member)
            return
        *parent, leaf = parts
        dir_fd = self._dirs.open(parent, member.name, create=True)
        try:
            if leaf.startswith(WHITEOUT_PREFIX):
                self._whiteout(dir_fd, leaf, member)
            else:
                self._entry(tar, dir_fd, leaf, parts, member)
        finally:
            os.close(dir_fd)

    def _clear(self, dir_fd: int, leaf: str, *, keep_dir: bool) -> None:
        if _clear(dir_fd, leaf, keep_dir=keep_dir):
            self._dirs.forget()

    def close(self) -> None:
        """Release the cached directory fds."""
        self._dirs.forget()

    def _apply_root(self, member: tarfile.TarInfo) -> None:
        if not member.isdir():
            raise UnsafeLayer(f"refusing layer entry {member.name!r}: the layer root must be a directory")
        os.chown(self.root_fd, member.uid, member.gid)
        os.chmod(self.root_fd, member.mode)
        self._set_xattrs(f"/proc/self/fd/{self.root_fd}", member)
        self._dir_times.append(([], _mtime_ns(member)))

    def _whiteout(self, dir_fd: int, leaf: str, member: tarfile.TarInfo) -> None:
        """OCI whiteout -> overlayfs whiteout (0/0 char device) or opaque-dir xattr."""
        if leaf == WHITEOUT_OPAQUE:
            os.setxattr(f"/proc/self/fd/{dir_fd}", OVERLAY_OPAQUE_XATTR, b"y")
            return
        if leaf.startswith(WHITEOUT_META_PREFIX):
            return
        hidden = leaf[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise BadLayer(f"invalid whiteout entry {member.name!r} in layer")
        self._clear(dir_fd, hidden, keep_dir=False)
        os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
        os.chown(hidden, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)

    def _entry(
        self, tar: tarfile.TarFile, dir_fd: int, leaf: str, parts: list[str], member: tarfile.TarInfo
    ) -> None:
        """Create one ordinary entry named `leaf` in `dir_fd`, then set its metadata.

        Creation is tried first (an existing path is the rare case: only then is it looked at and
        cleared, and creation retried), so a new entry costs no extra stat."""
        if member.isreg():
            self._write_file(tar, dir_fd, leaf, member)
            return  # metadata set on the open file
        if member.islnk():
            self._replacing(dir_fd, leaf, lambda: self._hardlink(dir_fd, leaf, member))
            return  # a hardlink shares its target's inode and metadata
        if member.isdir():
            try:
                os.mkdir(leaf, 0o700, dir_fd=dir_fd)
            except FileExistsError:
                # An earlier directory of that name keeps its contents (metadata updated below);
                # anything else there is replaced.
                self._clear(dir_fd, leaf, keep_dir=True)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(leaf, 0o700, dir_fd=dir_fd)
            self._dir_times.append((parts, _mtime_ns(member)))
        elif member.issym():
            self._replacing(dir_fd, leaf, lambda: os.symlink(member.linkname, leaf, dir_fd=dir_fd))
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            self._replacing(dir_fd, leaf, lambda: os.mknod(leaf, kind | 0o600, device, dir_fd=dir_fd))
        elif member.isfifo():
            self._replacing(dir_fd, leaf, lambda: os.mkfifo(leaf, 0o600, dir_fd=dir_fd))
        else:
            raise BadLayer(f"layer entry {member.name!r} has unsupported tar type {member.type!r}")
        self._set_metadata(dir_fd, leaf, member)

    def _replacing(self, dir_fd: int, leaf: str, create: Callable[[], object]) -> None:
        """`create()` the (non-directory) entry `leaf`; if something is already there, remove it
        (recursively) and create again."""
        try:
            create()
        except FileExistsError:
            self._clear(dir_fd, leaf, keep_dir=False)
            create()

    def _write_file(self, tar: tarfile.TarFile, dir_fd: int, leaf: str, member: tarfile.TarInfo) -> None:
        """Write a regular file, then set owner, mode, xattrs and mtime on its open fd."""
        src = tar.extractfile(member)
        assert src is not None  # a regular file always has a data stream
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(leaf, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            self._clear(dir_fd, leaf, keep_dir=False)
            fd = os.open(leaf, flags, 0o600, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as dst:
            if member.size:
                shutil.copyfileobj(src, dst, _CHUNK)
                dst.flush()
            # Owner, then mode (chown clears setuid bits), xattrs (after chown: it clears
            # capabilities), mtime last.
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode)
            self._set_xattrs(fd, member)
            mtime = _mtime_ns(member)
            os.utime(fd, ns=(mtime, mtime))
        self.size += member.size

    def _hardlink(self, dir_fd: int, leaf: str, member: tarfile.TarInfo) -> None:
        """Link `leaf` to an entry already unpacked in this layer, resolving no symlink on the way."""
        target = entry_parts(member.linkname)
        if not target:
            raise UnsafeLayer(f"refusing hardlink {member.name!r} to the layer root")
        try:
            target_fd = self._dirs.open(target[:-1], member.name, create=False)
        except FileNotFoundError:
            raise UnsafeLayer(
                f"refusing hardlink {member.name!r}: target {member.linkname!r} is not in this layer"
            ) from None
        try:
            os.link(target[-1], leaf, src_dir_fd=target_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeLayer(
                f"refusing hardlink {member.name!r}: target {member.linkname!r} is not in this layer"
            ) from None
        except PermissionError:
            raise BadLayer(f"layer hardlink {member.name!r} targets a directory") from None
        finally:
            os.close(target_fd)

    def _set_metadata(self, dir_fd: int, leaf: str, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs (after chown: it clears capabilities),
        then mtime for non-directories (directory mtimes are set by `finish`)."""
        os.chown(leaf, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
        if not member.issym():
            os.chmod(leaf, member.mode, dir_fd=dir_fd)
        self._set_xattrs(f"/proc/self/fd/{dir_fd}/{leaf}", member)
        if not member.isdir():
            mtime = _mtime_ns(member)
            os.utime(leaf, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)

    @staticmethod
    def _set_xattrs(path: str | int, member: tarfile.TarInfo) -> None:
        """Set the entry's xattrs on `path` (never following a symlink) or on an open fd."""
        for attr, value in _xattrs(member).items():
            try:
                if isinstance(path, int):
                    os.setxattr(path, attr, value)
                else:
                    os.setxattr(path, attr, value, follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.ENOTSUP:
                    raise

    def finish(self) -> None:
        """Set directory mtimes, last so that creating their contents does not change them again.

        A directory replaced or removed by a later entry is skipped.
        """
        for parts, mtime in reversed(self._dir_times):
            if not parts:
                os.utime(self.root_fd, ns=(mtime, mtime))
                continue
            try:
                dir_fd = self._dirs.open(parts[:-1], "/".join(parts), create=False)
            except (FileNotFoundError, UnsafeLayer):
                continue
            try:
                if stat.S_ISDIR(os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    os.utime(parts[-1], ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            finally:
                os.close(dir_fd)


def unpack_layer(blob: Path, target: Path, expected_diff_id: str | None = None,
                 on_progress: Callable[[int], None] | None = None) -> UnpackResult:
    """Unpack the layer archive `blob` into the existing empty directory `target`.

    Returns the diff ID and size. `on_progress(n)` is told how many bytes of `blob` were consumed so
    far (an exception it raises aborts the unpack, e.g. on cancellation).
    When `expected_diff_id` is given and differs, raises DigestMismatch.
    Raises UnsafeLayer for entries that would write outside `target`, BadLayer for corrupt archives.
    On any failure (Ctrl-C included) `target` is removed entirely, so nothing half-unpacked survives.
    """
    try:
        result = _unpack(blob, target, on_progress)
        if expected_diff_id is not None and result.diff_id != expected_diff_id:
            raise DigestMismatch(f"layer {blob.name} (diff ID)", expected_diff_id, result.diff_id)
        return result
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _unpack(blob: Path, target: Path, on_progress: Callable[[int], None] | None) -> UnpackResult:
    root_fd = os.open(target, _DIR_FLAGS)
    extractor = _Extractor(root_fd)
    try:
        with open(blob, "rb") as raw:
            hashing = _HashingReader(_decompressed(raw, on_progress))
            reader = _ThreadedReader(hashing)  # decompresses and hashes on another core
            try:
                _each_entry(reader, extractor.apply)
                while reader.read(_CHUNK):  # tar padding after the end-of-archive marker counts
                    pass
            finally:
                reader.close()
            extractor.finish()
    except (tarfile.TarError, zlib.error, EOFError, gzip.BadGzipFile, zstandard.ZstdError) as e:
        raise BadLayer(f"layer {blob.name} is corrupt: {e}") from None
    finally:
        extractor.close()
        os.close(root_fd)
    return UnpackResult(diff_id="sha256:" + hashing.sha256.hexdigest(), size=extractor.size)


def _each_entry(reader: _Reader, apply: Callable[[tarfile.TarFile, tarfile.TarInfo], None]) -> None:
    """Stream the tar (mode ``r|``: one pass, no seeking) and hand every entry to `apply`."""
    # A modest block size: tarfile's stream re-slices its whole buffer on every small read.
    with tarfile.open(fileobj=reader, mode="r|", bufsize=_TAR_BLOCK) as tar:
        for member in tar:
            apply(tar, member)
