"""One virtiofsd per shared directory: the host side of a virtio-fs share.

We create, bind and listen on the vhost-user socket ourselves and hand the listening fd to virtiofsd
(``--fd``), as mkosi does: the socket accepts QEMU's connection from the moment `start` returns, so
there is no race with virtiofsd creating it and nothing to poll for. If virtiofsd dies, the socket
closes with it and QEMU fails at once; `check()` then reports virtiofsd's own stderr.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from katadocker.errors import VMError
from katadocker.vm.children import wait_child

#: Where distributions install virtiofsd: Debian 12's QEMU ships the C one in /usr/lib/qemu; newer
#: systems ship the Rust one in /usr/libexec (both take the options used here).
VIRTIOFSD_PATHS = (
    Path("/usr/lib/qemu/virtiofsd"), Path("/usr/libexec/virtiofsd"), Path("/usr/lib/virtiofsd"),
)
#: Longest path a unix socket address can hold (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107


def find_virtiofsd() -> Path:
    """The virtiofsd binary: on PATH, else the distributions' locations; VMError when missing."""
    on_path = shutil.which("virtiofsd")
    for candidate in ((Path(on_path),) if on_path else ()) + VIRTIOFSD_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise VMError("virtiofsd not found", detail="install it (Debian 12: qemu-system-x86; later: virtiofsd)")


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a text file ("" when it is missing)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def listening_socket(path: Path) -> socket.socket:
    """A unix stream socket bound to `path` (replacing a stale file) and listening."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise VMError(f"socket path too long for a unix socket (> {MAX_SOCKET_PATH} bytes): {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


class Virtiofsd:
    """virtiofsd exporting `source` on the unix socket `socket_path`; its stderr goes to `log`.

    Use as a context manager or call `start()` / `stop()`. The process runs in its own session, so a
    terminal's Ctrl-C reaches katadocker, which decides when the share goes away.
    """

    def __init__(self, source: Path, socket_path: Path, log: Path, binary: Path | None = None) -> None:
        self.source = source
        self.socket_path = socket_path
        self.log = log
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, fd: int) -> list[str]:
        """virtiofsd's argv, serving the already-listening socket `fd`."""
        return [
            os.fspath(self.binary or find_virtiofsd()),
            f"--fd={fd}",                   # the socket we bound and listen on (no startup race)
            "-o", f"source={self.source}",  # the exported tree (the container's overlayfs root)
            # metadata and data cached in the guest for about a second: fast, and host-side changes
            # (docker cp into a running container) still show up promptly
            "-o", "cache=auto",
            # chroot into the share instead of new mount/pid/net namespaces: no user-namespace needs,
            # works inside containers; it keeps the guest's paths inside the share all the same
            "-o", "sandbox=chroot",
            # no xattrs (also the default, stated so the choice is visible): with them the guest sends
            # security.* xattr queries over the link; the cost is that file capabilities are not honoured
            "-o", "no_xattr",
            "-o", "log_level=warn",         # stderr (our log) only for problems, not per connection
        ]  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start virtiofsd; on return its socket accepts connections. VMError when it cannot start."""
        if not self.source.is_dir():
            raise VMError(f"virtiofsd: shared directory {self.source} does not exist")
        sock = listening_socket(self.socket_path)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.log.open("wb") as log:
                argv = self.command(sock.fileno())
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             pass_fds=(sock.fileno(),), start_new_session=True)
        except OSError as e:
            self.socket_path.unlink(missing_ok=True)
            raise VMError(f"cannot start virtiofsd: {e.strerror}") from None
        finally:
            sock.close()  # virtiofsd holds its own copy; ours would keep the socket alive after it dies

    def check(self) -> None:
        """Raise VMError (with virtiofsd's stderr) when the process has exited."""
        if self.proc and self.proc.poll() is not None:
            raise VMError(
                f"virtiofsd for {self.source} exited with status {self.proc.returncode}",
                detail=f"{' '.join(self.proc.args)}\n{tail(self.log)}",  # type: ignore[arg-type]
            )

    def terminate(self) -> None:
        """Ask virtiofsd to end (SIGTERM) without waiting for it; `stop` waits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self, timeout: float = 5.0) -> None:
        """End virtiofsd (SIGTERM, then SIGKILL after `timeout`) and remove its socket. Idempotent."""
        self.terminate()
        if self.proc and self.proc.poll() is None:
            try:
                wait_child(self.proc, timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                wait_child(self.proc, timeout)
        self.socket_path.unlink(missing_ok=True)

    def __enter__(self) -> Virtiofsd:
        self.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
