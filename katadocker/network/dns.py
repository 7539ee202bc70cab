"""Name resolution between containers of one network: a tiny DNS responder on the gateway address.

Design: every running container's monitor runs one `DnsResponder` for each network it is attached to.
They all bind UDP port 53 on the network's gateway address inside the network's namespace with
``SO_REUSEPORT``, so the responder lives exactly as long as some container on the network runs: no
per-network daemon to start, supervise or reap. Each answers from the network record on disk
(re-read when its mtime changes), so names follow containers as they attach and detach.

Answers: an A record for a container name, alias or short ID on the network (case-insensitive,
trailing dot ignored); an empty NOERROR for other types of such a name; REFUSED for every other
name, which makes stub resolvers move on to the next nameserver in resolv.conf (the host's, listed
after the gateway by `networks.attach`). Nothing is forwarded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Callable

from katadocker.config import Settings
from katadocker.network import netns, networks
from katadocker.state.atomic import read_json

TTL = 60
QTYPE_A = 1
QCLASS_IN = 1
RCODE_NOTIMP = 4
RCODE_REFUSED = 5


def answer(query: bytes, lookup: Callable[[str], str | None]) -> bytes | None:
    """The response to one DNS query datagram, or None for garbage not worth an answer."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels = []
    pos = 12
    while True:
        if pos >= len(query):
            return None
        length = query[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0 or pos + 1 + length > len(query):
            return None
        labels.append(query[pos + 1:pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if pos + 4 > len(query):
        return None
    qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
    question = query[12:pos + 4]
    opcode = flags & 0x7800
    base = 0x8000 | opcode | (flags & 0x0100) | 0x0080  # QR, opcode and RD echoed, RA
    if opcode:
        return struct.pack("!HHHHHH", qid, base | RCODE_NOTIMP, 1, 0, 0, 0) + question
    ip = lookup(".".join(labels).lower()) if qclass == QCLASS_IN else None
    if ip is None:
        return struct.pack("!HHHHHH", qid, base | RCODE_REFUSED, 1, 0, 0, 0) + question
    records = b""
    if qtype == QTYPE_A:
        records = struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, TTL, 4) + ipaddress.IPv4Address(ip).packed
    return struct.pack("!HHHHHH", qid, base | 0x0400, 1, 1 if records else 0, 0, 0) + question + records


class NameTable:
    """Names of a network's containers, from its record, re-read when the record changes."""

    def __init__(self, settings: Settings, network_name: str) -> None:
        self.path = networks.record_path(settings, network_name)
        self._mtime = -1
        self._names: dict[str, str] = {}

    def lookup(self, name: str) -> str | None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self._mtime:
            self._names = {n.lower(): ip for ip, names in networks.entries_of(read_json(self.path))
                           for n in names}
            self._mtime = mtime
        return self._names.get(name.rstrip(".").lower())


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((address, 53))
    return sock


class DnsResponder:
    """Serve the names of network `network_name` on ``gateway:53`` inside `netns_name`, in a thread."""

    def __init__(self, settings: Settings, network_name: str, netns_name: str, gateway: str) -> None:
        self.table = NameTable(settings, network_name)
        self.netns_name = netns_name
        self.gateway = gateway
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (inside the namespace) and start answering. Raises OSError if the bind fails."""
        self._sock = netns.run_in(self.netns_name, _bind, self.gateway)
        self._sock.settimeout(1.0)
        self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock = self._sock
        while sock is not None and sock.fileno() >= 0:
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            response = answer(query, self.table.lookup)
            if response is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(response, peer)

    def stop(self) -> None:
        """Stop answering and release the socket. Idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            # shutdown wakes the thread blocked in recvfrom (close alone does not: it slept out its
            # 1 s timeout, 0.5-0.9 s of every container's teardown); Linux does it and says ENOTCONN
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
