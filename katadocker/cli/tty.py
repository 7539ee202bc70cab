"""The CLI's terminal for ``-t`` sessions (run -it, start -ai, attach, exec -it).

`Terminal` puts the input terminal in raw mode (so Ctrl-C, Ctrl-D and every other key reach the
container's pty as bytes), reports the window size at start and on every SIGWINCH, and restores
the terminal on every way out: a normal return, an exception, SIGTERM/SIGHUP (turned into
SystemExit so the restore runs). `DetachReader` reads the input and watches for docker's detach
keys (``ctrl-p,ctrl-q`` unless ``--detach-keys`` says otherwise).
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import sys
import termios
import tty
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
#: docker's message when -i and -t are asked for but stdin is not a terminal (docker 28).
NOT_A_TTY = "the input device is not a TTY"
_CTRL_SPECIALS = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """docker's detach-key syntax: comma-separated single characters or ``ctrl-<a-z@[\\]^_>``;
    ValueError with docker's message for anything else."""
    out = bytearray()
    for key in spec.split(","):
        low = key.lower()
        if len(key) == 1:
            out.append(ord(key))
        elif low.startswith("ctrl-") and len(key) == 6 and ("a" <= low[5] <= "z"):
            out.append(ord(low[5]) - ord("a") + 1)
        elif low.startswith("ctrl-") and len(key) == 6 and key[5] in _CTRL_SPECIALS:
            out.append(_CTRL_SPECIALS[key[5]])
        else:
            raise ValueError(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of the terminal on `fd`; None when it is not a terminal."""
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    except OSError:
        return None
    return rows, cols


class Terminal:
    """Raw mode on `in_fd` (when it is a terminal) and size reports from `out_fd` for a `with`.
    SIGTERM and SIGHUP restore the terminal and exit (128+N), unless the caller handles them
    already (`run`'s sig-proxy passes them on to the container and waits for its exit)."""

    def __init__(self, on_resize: Callable[[int, int], None], in_fd: int = 0, out_fd: int = 1) -> None:
        self.on_resize = on_resize
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._saved: list[Any] | None = None
        self._handlers: dict[int, Any] = {}

    def __enter__(self) -> Terminal:
        if os.isatty(self.in_fd):
            self._saved = termios.tcgetattr(self.in_fd)
            tty.setraw(self.in_fd, termios.TCSANOW)
        for signo, handler in ((signal.SIGWINCH, self._winch), (signal.SIGTERM, _exit_on_signal),
                               (signal.SIGHUP, _exit_on_signal)):
            if signo == signal.SIGWINCH or signal.getsignal(signo) == signal.SIG_DFL:
                self._handlers[signo] = signal.signal(signo, handler)
        self.report_size()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the terminal back as it was (idempotent)."""
        for signo, handler in self._handlers.items():
            signal.signal(signo, handler)
        self._handlers.clear()
        if self._saved is not None:
            sys.stdout.flush()
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def report_size(self) -> None:
        """Send the current size to `on_resize` (nothing when neither fd is a terminal)."""
        size = window_size(self.out_fd) or window_size(self.in_fd)
        if size is not None and size[0] and size[1]:
            self.on_resize(*size)

    def _winch(self, _signo: int, _frame: FrameType | None) -> None:
        self.report_size()


def _exit_on_signal(signo: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signo)


class DetachReader:
    """Reads `fd` (``read1``, for stdin pumps) until EOF or the `keys` sequence; then returns b""
    and sets `detached`. Bytes that start the sequence are held back until it is clear whether the
    sequence completes; if it does not, they are passed on, as docker does."""

    def __init__(self, fd: int, keys: bytes, on_detach: Callable[[], None]) -> None:
        self.fd = fd
        self.keys = keys
        self.on_detach = on_detach
        self.detached = False
        self._held = b""

    def read1(self, size: int = 65536) -> bytes:
        while not self.detached:
            data = os.read(self.fd, size)
            if not data:
                return self._flush()
            out = bytearray()
            for b in data:
                if not self.keys.startswith(self._held + bytes([b])):
                    out += self._held  # not the sequence after all: pass the held bytes on
                    self._held = b""
                if self.keys.startswith(self._held + bytes([b])):
                    self._held += bytes([b])
                    if self._held == self.keys:
                        self.detached = True
                        self.on_detach()
                        return bytes(out)
                else:
                    out.append(b)
            if out:
                return bytes(out)
        return b""

    def _flush(self) -> bytes:
        held, self._held = self._held, b""
        return held
