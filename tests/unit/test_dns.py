"""The DNS responder's wire format (pure logic)."""

from __future__ import annotations

import struct

from katadocker.network.dns import answer


def _query(name: str, qtype: int = 1) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def lookup(name: str) -> str | None:
    return {"web": "172.18.0.2"}.get(name)


def test_a_record_for_known_name() -> None:
    reply = answer(_query("Web"), lookup)
    assert reply is not None
    qid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, flags & 0xF, qd, an) == (0xBEEF, 0, 1, 1)
    assert flags & 0x8000 and flags & 0x0100  # a response, RD echoed
    assert reply[-4:] == bytes([172, 18, 0, 2])


def test_unknown_name_is_refused_and_other_types_empty() -> None:
    reply = answer(_query("example.org"), lookup)
    assert reply is not None and struct.unpack("!H", reply[2:4])[0] & 0xF == 5
    reply = answer(_query("web", qtype=28), lookup)
    assert reply is not None and struct.unpack("!HH", reply[2:4] + reply[6:8]) == (0x8580, 0)


def test_garbage_gets_no_answer() -> None:
    assert answer(b"\x00\x01", lookup) is None
    assert answer(_query("web")[:14], lookup) is None
