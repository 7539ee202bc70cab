"""The agent protocol's Python side: frames, payloads, the spec encoding, and agreement with protocol.h."""

from __future__ import annotations

import enum
import ipaddress
import re
import struct

import pytest

from katadocker.agent import protocol
from katadocker.agent.build import GUEST_DIR
from katadocker.agent.protocol import (
    ExitStatus,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    Mount,
    NetworkConfig,
    ProcessSpec,
    ProtocolError,
    SpecTag,
    StartError,
    Stream,
)


def header_constants() -> dict[str, int | str]:
    """Every `#define KD_NAME value` of protocol.h (numbers and strings)."""
    text = (GUEST_DIR / "protocol.h").read_text()
    found: dict[str, int | str] = {}
    for name, value in re.findall(r'^#define (KD_\w+) +("[^"]*"|\S+)', text, re.MULTILINE):
        found[name] = value.strip('"') if value.startswith('"') else int(value, 0)
    return found


@pytest.mark.parametrize(
    ("prefix", "enum_type"),
    [("KD_T_", FrameType), ("KD_STREAM_", Stream), ("KD_SPEC_", SpecTag)],
)
def test_enums_match_the_header(prefix: str, enum_type: type[enum.IntEnum]) -> None:
    in_header = {k.removeprefix(prefix): v for k, v in header_constants().items() if k.startswith(prefix)}
    assert in_header == {m.name: m.value for m in enum_type}


def test_scalars_match_the_header() -> None:
    h = header_constants()
    assert h["KD_PROTO_VERSION"] == protocol.PROTO_VERSION
    assert h["KD_HEADER_SIZE"] == protocol.HEADER_SIZE == len(Frame(FrameType.PING).encode())
    assert h["KD_MAX_PAYLOAD"] == protocol.MAX_PAYLOAD
    assert h["KD_WINDOW"] == protocol.WINDOW
    assert h["KD_DATA_CHUNK"] == protocol.DATA_CHUNK
    assert h["KD_PORT_NAME"] == protocol.PORT_NAME
    assert h["KD_MOUNT_READONLY"] == protocol.MOUNT_READONLY
    assert h["KD_MOUNT_FILE"] == protocol.MOUNT_FILE
    assert h["KD_MOUNT_FILE_NAME"] == protocol.MOUNT_FILE_NAME
    assert h["KD_WAITING_FOR_HOST"] == protocol.WAITING_FOR_HOST


def test_frame_layout() -> None:
    raw = Frame(FrameType.DATA, proc=7, stream=Stream.STDERR, payload=b"hi").encode()
    assert raw == struct.pack("<IBBHI", 2, 6, 2, 0, 7) + b"hi"


def test_frames_round_trip_through_any_split() -> None:
    frames = [
        Frame(FrameType.HELLO, 0, 0, b"\x01\x00\x00\x000.1"),
        Frame(FrameType.DATA, 3, Stream.STDOUT, bytes(range(256)) * 10),
        Frame(FrameType.EOF, 3, Stream.STDOUT),
        Frame(FrameType.EXIT, 3, 0, protocol.u32(137) + b"\x09"),
    ]
    wire = b"".join(f.encode() for f in frames)
    for step in (1, 5, 12, 13, 1000, len(wire)):
        decoder = FrameDecoder()
        got: list[Frame] = []
        for i in range(0, len(wire), step):
            got += decoder.feed(wire[i : i + step])
        assert got == frames


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(ProtocolError):
        Frame(FrameType.DATA, 1, 1, bytes(protocol.MAX_PAYLOAD + 1)).encode()
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(struct.pack("<IBBHI", protocol.MAX_PAYLOAD + 1, 6, 1, 0, 1))


def test_payload_decoders() -> None:
    assert Hello.decode(struct.pack("<HH", 1, 0) + b"0.1.0") == Hello(1, "0.1.0")
    assert StartError.decode(protocol.u32(127) + b"exec: nope") == StartError(127, "exec: nope")
    assert ExitStatus.decode(protocol.u32(143) + b"\x0f") == ExitStatus(143, 15)
    assert protocol.decode_u32(protocol.u32(2**32 - 1)) == 2**32 - 1
    for decode in (Hello.decode, StartError.decode, ExitStatus.decode, protocol.decode_u32):
        with pytest.raises(ProtocolError):
            decode(b"\x00")


def parse_fields(payload: bytes) -> list[tuple[int, bytes]]:
    """The (tag, value) fields of a spec payload, as agent.c reads them."""
    fields = []
    while payload:
        tag, length = struct.unpack_from("<HI", payload)
        fields.append((tag, payload[6 : 6 + length]))
        payload = payload[6 + length :]
    return fields


def test_spec_encoding() -> None:
    spec = ProcessSpec(
        args=["sh", "-c", "echo hi"],
        env=["PATH=/bin", "A=b"],
        cwd="/work",
        uid=1000,
        gid=100,
        groups=[27],
        tty=True,
        rows=24,
        cols=80,
        stdin=True,
        hostname="abc",
        hosts="127.0.0.1 localhost\n",
        resolv_conf=None,
        mounts=[Mount("vol0", "/data", readonly=True), Mount("tmpfs", "/tmp", options="size=1m")],
        network=NetworkConfig(
            ipaddress.IPv4Interface("172.17.0.2/16"), ipaddress.IPv4Address("172.17.0.1"), mtu=1500
        ),
    )
    fields = parse_fields(spec.encode())
    assert [v for t, v in fields if t == SpecTag.ARG] == [b"sh", b"-c", b"echo hi"]
    assert [v for t, v in fields if t == SpecTag.ENV] == [b"PATH=/bin", b"A=b"]
    one = {SpecTag(t): v for t, v in fields if t not in (SpecTag.ARG, SpecTag.ENV, SpecTag.MOUNT)}
    assert one[SpecTag.UID] == protocol.u32(1000) and one[SpecTag.GROUP] == protocol.u32(27)
    assert one[SpecTag.WINSIZE] == struct.pack("<HH", 24, 80)
    assert one[SpecTag.TTY] == one[SpecTag.STDIN] == b"\x01"
    assert one[SpecTag.ROOTFS] == b"rootfs" and SpecTag.RESOLV not in one and SpecTag.INIT not in one
    assert one[SpecTag.NET] == bytes([172, 17, 0, 2, 16, 172, 17, 0, 1]) + protocol.u32(1500) + b"eth0"
    mounts = [v for t, v in fields if t == SpecTag.MOUNT]
    assert mounts[0] == b"\x01" + b"\x04\x00vol0" + b"\x05\x00/data" + b"\x00\x00"
    assert mounts[1] == b"\x00" + b"\x05\x00tmpfs" + b"\x04\x00/tmp" + b"\x07\x00size=1m"


def test_spec_carries_the_hosts_clock_and_seed_only_when_given() -> None:
    fields = dict(parse_fields(ProcessSpec(args=["true"], clock_ns=1_700_000_000_123_456_789,
                                           seed=b"\x07" * 32).encode()))
    assert fields[SpecTag.CLOCK] == struct.pack("<Q", 1_700_000_000_123_456_789)
    assert fields[SpecTag.SEED] == b"\x07" * 32
    plain = dict(parse_fields(ProcessSpec(args=["true"]).encode()))
    assert SpecTag.CLOCK not in plain and SpecTag.SEED not in plain


def test_spec_asks_for_an_init() -> None:
    fields = dict(parse_fields(ProcessSpec(args=["sleep", "1"], init=True).encode()))
    assert fields[SpecTag.INIT] == b"\x01"


def test_spec_refuses_nul_and_empty_args() -> None:
    with pytest.raises(ValueError):
        ProcessSpec(args=["a\0b"]).encode()
    with pytest.raises(ValueError):
        ProcessSpec(args=[]).encode()
