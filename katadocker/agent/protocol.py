"""The agent protocol: frames between the host and the guest agent, and the START/EXEC spec.

The authoritative description is ``katadocker/guest/protocol.h`` (the C side); the constants here
mirror it and ``tests/unit/test_protocol.py`` checks that they agree. In brief: little-endian
frames of a 12-byte header (u32 payload length, u8 type, u8 stream, u16 flags, u32 process id)
and a payload of at most `MAX_PAYLOAD` bytes; the agent opens with HELLO; output and stdin flow
under per-stream credit (`WINDOW` bytes at first, more by CREDIT frames).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from katadocker.errors import VMError

PROTO_VERSION = 1
HEADER_SIZE = 12
MAX_PAYLOAD = 1048576
WINDOW = 262144
DATA_CHUNK = 32768
PORT_NAME = "org.katadocker.agent"
#: What the agent's console line says when it booted with no host on the port and waits for one
WAITING_FOR_HOST = "waiting for a host to connect"

_HEADER = struct.Struct("<IBBHI")
_U32 = struct.Struct("<I")


class FrameType(enum.IntEnum):
    """Frame types (``KD_T_*``); see protocol.h for direction and payload of each."""

    HELLO = 1
    START = 2
    EXEC = 3
    STARTED = 4
    ERROR = 5
    DATA = 6
    EOF = 7
    CREDIT = 8
    EXIT = 9
    SIGNAL = 10
    RESIZE = 11
    PING = 12
    PONG = 13
    SHUTDOWN = 14


class Stream(enum.IntEnum):
    """Streams of a process (``KD_STREAM_*``)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2


class SpecTag(enum.IntEnum):
    """Field tags of the START/EXEC payload (``KD_SPEC_*``)."""

    ARG = 1
    ENV = 2
    CWD = 3
    UID = 4
    GID = 5
    GROUP = 6
    HOSTNAME = 7
    HOSTS = 8
    RESOLV = 9
    TTY = 10
    WINSIZE = 11
    STDIN = 12
    ROOTFS = 13
    MOUNT = 14
    NET = 15
    READONLY_ROOT = 16
    INIT = 17
    CLOCK = 18
    SEED = 19


MOUNT_READONLY = 1
#: MOUNT flag: the share holds one file, `MOUNT_FILE_NAME`, which the agent bind-mounts onto the target
MOUNT_FILE = 2
MOUNT_FILE_NAME = "file"


class ProtocolError(VMError):
    """The agent link carried something that is not a valid frame."""


@dataclass(frozen=True)
class Frame:
    """One frame. `proc` is 0 for link-level frames (HELLO, PING, PONG, SHUTDOWN)."""

    type: int
    proc: int = 0
    stream: int = 0
    payload: bytes = b""

    def encode(self) -> bytes:
        """The frame's bytes on the wire; raises ProtocolError for an oversized payload."""
        if len(self.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"frame payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        return _HEADER.pack(len(self.payload), self.type, self.stream, 0, self.proc) + self.payload


class FrameDecoder:
    """Turns a byte stream into frames: feed() whatever arrived, get back the complete frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Buffers `data` and returns every frame it completes; raises ProtocolError on garbage."""
        self._buf += data
        frames: list[Frame] = []
        pos = 0
        while len(self._buf) - pos >= HEADER_SIZE:
            length, ftype, stream, _flags, proc = _HEADER.unpack_from(self._buf, pos)
            if length > MAX_PAYLOAD:
                raise ProtocolError(f"agent sent a frame of {length} bytes (limit {MAX_PAYLOAD})")
            end = pos + HEADER_SIZE + length
            if end > len(self._buf):
                break
            frames.append(Frame(ftype, proc, stream, bytes(self._buf[pos + HEADER_SIZE : end])))
            pos = end
        del self._buf[:pos]
        return frames


# ----------------------------------------------------------------------------- payloads


def u32(value: int) -> bytes:
    """A u32 payload (CREDIT, SIGNAL)."""
    return _U32.pack(value)


def decode_u32(payload: bytes) -> int:
    """The u32 at the start of a payload (STARTED, CREDIT); raises ProtocolError when short."""
    if len(payload) < 4:
        raise ProtocolError("short frame payload")
    return _U32.unpack_from(payload)[0]


def resize_payload(rows: int, cols: int) -> bytes:
    return struct.pack("<HH", rows, cols)


@dataclass(frozen=True)
class Hello:
    """The agent's greeting."""

    version: int
    agent_version: str

    @classmethod
    def decode(cls, payload: bytes) -> Hello:
        if len(payload) < 4:
            raise ProtocolError("short HELLO frame")
        (version,) = struct.unpack_from("<H", payload)
        return cls(version, payload[4:].decode(errors="replace"))


@dataclass(frozen=True)
class StartError:
    """Why START/EXEC failed: `code` is the exit status docker reports (125, 126 or 127)."""

    code: int
    message: str

    @classmethod
    def decode(cls, payload: bytes) -> StartError:
        if len(payload) < 4:
            raise ProtocolError("short ERROR frame")
        return cls(_U32.unpack_from(payload)[0], payload[4:].decode(errors="replace"))


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: `code` is docker's exit code (the status, or 128+signal); `signal` 0
    when it exited by itself."""

    code: int
    signal: int

    @classmethod
    def decode(cls, payload: bytes) -> ExitStatus:
        if len(payload) < 5:
            raise ProtocolError("short EXIT frame")
        return cls(_U32.unpack_from(payload)[0], payload[4])


# ----------------------------------------------------------------------------- the process spec


@dataclass(frozen=True)
class Mount:
    """An extra mount in the container: `source` is a virtio-fs tag, or "tmpfs". `options` are
    mount(8)-style words: flag words (ro, nosuid, noexec, …) become mount flags, the rest (size=,
    mode=) filesystem data. `file`: the share holds the single file `MOUNT_FILE_NAME`, bound onto
    `target`."""

    source: str
    target: str
    readonly: bool = False
    options: str = ""
    file: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    """The container's interface: address with prefix, optional default gateway, MTU (0: keep)."""

    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address | None = None
    mtu: int = 0
    ifname: str = "eth0"


@dataclass
class ProcessSpec:
    """What START (container setup + main process) or EXEC (another process) runs.

    The host resolves everything the guest cannot: the user to numeric ids, PATH into `env`
    (the agent looks `args[0]` up in the PATH found there). EXEC uses only the process fields
    (args to stdin); the container fields (hostname and below) matter only for START.
    """

    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    tty: bool = False
    rows: int = 0
    cols: int = 0
    stdin: bool = False
    hostname: str | None = None
    hosts: str | None = None
    resolv_conf: str | None = None
    rootfs_tag: str = "rootfs"
    mounts: list[Mount] = field(default_factory=list)
    network: NetworkConfig | None = None
    readonly_root: bool = False
    init: bool = False  # START: an init runs the command as its child (docker's --init)
    #: START: the host's wall clock (ns since the epoch), which the guest's clock is set to: a VM
    #: restored from a template (vm/template.py) wakes up with the template's clock
    clock_ns: int | None = None
    #: START: host randomness the guest credits to its pool and reseeds from: every VM restored from
    #: one template starts with that template's random state, and a guest without a hardware RNG
    #: may not have initialized its crng yet (getrandom() blocks until then)
    seed: bytes = b""

    def encode(self) -> bytes:
        """The START/EXEC payload: (u16 tag, u32 length, value) fields, see protocol.h."""
        if not self.args:
            raise ValueError("a process needs at least one argument")
        return b"".join(_field(tag, value) for tag, value in self._fields())

    def _fields(self) -> Iterator[tuple[SpecTag, bytes]]:
        yield from ((SpecTag.ARG, _text(a)) for a in self.args)
        yield from ((SpecTag.ENV, _text(e)) for e in self.env)
        yield SpecTag.CWD, _text(self.cwd)
        yield SpecTag.UID, u32(self.uid)
        yield SpecTag.GID, u32(self.gid)
        yield from ((SpecTag.GROUP, u32(g)) for g in self.groups)
        yield SpecTag.TTY, bytes([self.tty])
        yield SpecTag.WINSIZE, resize_payload(self.rows, self.cols)
        yield SpecTag.STDIN, bytes([self.stdin])
        for tag, text in (
            (SpecTag.HOSTNAME, self.hostname),
            (SpecTag.HOSTS, self.hosts),
            (SpecTag.RESOLV, self.resolv_conf),
        ):
            if text is not None:
                yield tag, _text(text)
        yield SpecTag.ROOTFS, _text(self.rootfs_tag)
        yield from ((SpecTag.MOUNT, _mount(m)) for m in self.mounts)
        if self.network is not None:
            yield SpecTag.NET, _network(self.network)
        if self.readonly_root:
            yield SpecTag.READONLY_ROOT, bytes([1])
        if self.init:
            yield SpecTag.INIT, bytes([1])
        if self.clock_ns is not None:
            yield SpecTag.CLOCK, struct.pack("<Q", self.clock_ns)
        if self.seed:
            yield SpecTag.SEED, self.seed


def _text(s: str) -> bytes:
    data = s.encode()
    if b"\0" in data:
        raise ValueError(f"NUL byte in process spec string {s!r}")
    return data


def _field(tag: SpecTag, value: bytes) -> bytes:
    return struct.pack("<HI", tag, len(value)) + value


def _lstr(s: str) -> bytes:
    data = _text(s)
    return struct.pack("<H", len(data)) + data


def _mount(m: Mount) -> bytes:
    flags = (MOUNT_READONLY if m.readonly else 0) | (MOUNT_FILE if m.file else 0)
    return bytes([flags]) + _lstr(m.source) + _lstr(m.target) + _lstr(m.options)


def _network(n: NetworkConfig) -> bytes:
    gateway = n.gateway.packed if n.gateway is not None else bytes(4)
    return (
        n.address.ip.packed
        + bytes([n.address.network.prefixlen])
        + gateway
        + u32(n.mtu)
        + _text(n.ifname)
    )


def chunks(data: bytes, size: int = DATA_CHUNK) -> Iterable[bytes]:
    """`data` cut into DATA-sized pieces."""
    return (data[i : i + size] for i in range(0, len(data), size))
