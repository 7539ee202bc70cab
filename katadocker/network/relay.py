"""Published-port relays: host listeners that carry TCP and UDP into a network namespace.

The per-container monitor owns one `PortRelay`. `start()` binds every listener in the host namespace
(all or nothing: on failure every socket opened so far is closed) and starts one background thread
running a selector loop; `stop()` closes everything. Upstream sockets are created inside the
network's namespace (through a `NetnsExecutor`) and connect to the guest's address, so the guest
sees connections from its gateway.

What is bound, so that ``ps``/``port``/inspect (fed from `published`) tell the truth:

- a binding on every address ("" host IP) is one dual-stack socket on ``::`` (IPv6 and IPv4-mapped),
  published as ``0.0.0.0`` and ``::``; on a host without IPv6, one socket on ``0.0.0.0``;
- an explicit address is bound as given.

TCP: each accepted connection gets one upstream connection; bytes are relayed both ways with at most
`BUFFER` bytes buffered per direction (reading stops while the peer is slow), a FIN is passed on as
``shutdown(SHUT_WR)`` once the buffered bytes are out (half-close), and an error on either side
closes both. UDP: one upstream socket per peer address, forgotten after `UDP_IDLE` seconds without
traffic.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable

from katadocker.errors import InvalidArgument, NetworkError, PortAllocated
from katadocker.network.netns import NetnsExecutor
from katadocker.network.ports import PortBinding, PublishedPort

BUFFER = 256 * 1024
CHUNK = 64 * 1024
UDP_IDLE = 60.0
UDP_MAX_DATAGRAM = 65535

Handler = Callable[[int], None]


def ipv6_available() -> bool:
    """Whether the host can bind IPv6 sockets (a dual-stack wildcard is then possible)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _bind(host_ip: str, port: int, proto: str, dual_stack: bool) -> socket.socket:
    """A bound (and for TCP listening) non-blocking socket; `PortAllocated` if the port is taken."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in host_ip or dual_stack else socket.AF_INET
    address = "::" if dual_stack else host_ip
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        if kind == socket.SOCK_STREAM:
            # Lets a restarted container take its port back while old connections sit in TIME_WAIT;
            # Linux still refuses the bind while anything listens there.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(512)
        sock.setblocking(False)
        return sock
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortAllocated(f"{host_ip or '0.0.0.0'}:{port}") from None
        raise NetworkError(f"cannot bind {host_ip or '0.0.0.0'}:{port}/{proto}: {e.strerror}") from None


class PortRelay:
    """Listeners for `bindings` on the host, relaying to `guest_ip` inside namespace `netns_name`."""

    def __init__(self, bindings: list[PortBinding], netns_name: str, guest_ip: str) -> None:
        self.bindings = list(bindings)
        self.netns_name = netns_name
        self.guest_ip = guest_ip
        #: One entry per listening socket, filled by `start`.
        self.published: list[PublishedPort] = []
        self._listeners: list[tuple[socket.socket, PublishedPort]] = []
        self._selector = selectors.DefaultSelector()
        self._executor: NetnsExecutor | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._tcp: set[_TcpPair] = set()
        self._udp: dict[tuple[socket.socket, object], _UdpSession] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> list[PublishedPort]:
        """Bind every listener and start relaying; return `published`.

        Raises `PortAllocated` for a taken port and `InvalidArgument` for sctp; nothing stays open then.
        """
        dual = ipv6_available()
        try:
            for b in self.bindings:
                if b.proto not in ("tcp", "udp"):
                    raise InvalidArgument(f"publishing {b.proto} ports is not supported by katadocker")
                self._listen(b, dual and not b.host_ip)
            self._executor = NetnsExecutor(self.netns_name)
        except BaseException:
            self._close_all()
            raise
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        for sock, pub in self._listeners:
            handler = self._on_accept if pub.proto == "tcp" else self._on_udp_listener
            self._selector.register(sock, selectors.EVENT_READ, _bound(handler, sock, pub))
        self._thread = threading.Thread(target=self._loop, name="port-relay", daemon=True)
        self._thread.start()
        return self.published

    def _listen(self, b: PortBinding, dual_stack: bool) -> None:
        first = b.host_port or 0
        ports = [first] if b.host_port_end is None else range(first, b.host_port_end + 1)
        last: PortAllocated | None = None
        for port in ports:
            try:
                sock = _bind(b.host_ip, port, b.proto, dual_stack)
                break
            except PortAllocated as e:
                last = e
        else:
            assert last is not None
            raise last
        actual = sock.getsockname()[1]
        ips = ["0.0.0.0", "::"] if dual_stack else [b.host_ip or "0.0.0.0"]
        pubs = [PublishedPort(ip, actual, b.container_port, b.proto) for ip in ips]
        self._listeners.append((sock, pubs[0]))
        self.published.extend(pubs)

    def stop(self) -> None:
        """Close every listener and connection and end the thread. Idempotent."""
        self._stopping = True
        if self._thread is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
            self._thread.join(timeout=10)
            self._thread = None
        else:
            self._close_all()

    def _close_all(self) -> None:
        for sock, _ in self._listeners:
            sock.close()
        self._listeners.clear()
        for pair in list(self._tcp):
            pair.close()
        for session in list(self._udp.values()):
            session.close()
        self._udp.clear()
        if self._executor is not None:
            self._executor.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            next_sweep = time.monotonic() + 1.0
            while not self._stopping:
                for key, mask in self._selector.select(timeout=1.0):
                    key.data(mask)
                now = time.monotonic()
                if now >= next_sweep:
                    self._expire_udp(now)
                    next_sweep = now + 1.0
        finally:
            self._close_all()

    def _on_wake(self, _mask: int) -> None:
        self._stopping = True

    # -- TCP --------------------------------------------------------------------------------

    def _on_accept(self, listener: socket.socket, pub: PublishedPort, _mask: int) -> None:
        for _ in range(64):  # bounded, so one busy listener cannot starve the others
            try:
                client, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            assert self._executor is not None
            try:
                upstream = self._executor.socket(socket.AF_INET, socket.SOCK_STREAM)
            except (OSError, NetworkError):
                client.close()
                continue
            pair = _TcpPair(self, client, upstream, (self.guest_ip, pub.container_port))
            if not pair.closed:
                self._tcp.add(pair)

    # -- UDP --------------------------------------------------------------------------------

    def _on_udp_listener(self, listener: socket.socket, pub: PublishedPort, _mask: int) -> None:
        for _ in range(64):
            try:
                data, peer = listener.recvfrom(UDP_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            session = self._udp.get((listener, peer))
            if session is None:
                assert self._executor is not None
                try:
                    upstream = self._executor.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    upstream.setblocking(False)
                    upstream.connect((self.guest_ip, pub.container_port))
                except (OSError, NetworkError):
                    continue
                session = _UdpSession(self, listener, peer, upstream)
                self._udp[(listener, peer)] = session
            session.forward(data)

    def _expire_udp(self, now: float) -> None:
        for key, session in list(self._udp.items()):
            if now - session.last_active > UDP_IDLE:
                session.close()
                del self._udp[key]


def _bound(fn: Callable[..., None], *args: object) -> Handler:
    return lambda mask: fn(*args, mask)


class _UdpSession:
    """One peer of a UDP listener and its upstream socket in the namespace."""

    def __init__(self, relay: PortRelay, listener: socket.socket, peer: object,
                 upstream: socket.socket) -> None:
        self.relay, self.listener, self.peer, self.upstream = relay, listener, peer, upstream
        self.last_active = time.monotonic()
        relay._selector.register(upstream, selectors.EVENT_READ, self._on_reply)

    def forward(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        # UDP: a lost datagram is the sender's problem, as on a real network.
        with contextlib.suppress(OSError):
            self.upstream.send(data)

    def _on_reply(self, _mask: int) -> None:
        for _ in range(64):
            try:
                data = self.upstream.recv(UDP_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ECONNREFUSED from an ICMP port unreachable
            self.last_active = time.monotonic()
            try:
                self.listener.sendto(data, self.peer)
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.relay._selector.unregister(self.upstream)
        self.upstream.close()


class _TcpPair:
    """A relayed TCP connection: client (host side) and upstream (namespace side)."""

    def __init__(self, relay: PortRelay, client: socket.socket, upstream: socket.socket,
                 target: tuple[str, int]) -> None:
        self.relay = relay
        self.sel = relay._selector
        client.setblocking(False)
        upstream.setblocking(False)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client, self.upstream = client, upstream
        self.connected = False
        # Per direction: bytes waiting to be written to the destination, and whether the source hit EOF.
        self.buf = {client: bytearray(), upstream: bytearray()}  # keyed by destination
        self.eof = {client: False, upstream: False}  # keyed by source
        self.shut = {client: False, upstream: False}  # keyed by destination: SHUT_WR sent
        self.registered: dict[socket.socket, int] = {}
        self.closed = False
        err = upstream.connect_ex(target)
        if err not in (0, errno.EINPROGRESS):
            self.close()
            return
        self._update()

    def _other(self, s: socket.socket) -> socket.socket:
        return self.upstream if s is self.client else self.client

    def _wanted(self, s: socket.socket) -> int:
        if not self.connected:
            return selectors.EVENT_WRITE if s is self.upstream else 0
        events = 0
        if not self.eof[s] and len(self.buf[self._other(s)]) < BUFFER:
            events |= selectors.EVENT_READ
        if self.buf[s]:
            events |= selectors.EVENT_WRITE
        return events

    def _update(self) -> None:
        for s in (self.client, self.upstream):
            want, have = self._wanted(s), self.registered.get(s, 0)
            if want == have:
                continue
            if not have:
                self.sel.register(s, want, _bound(self._on_event, s))
            elif not want:
                self.sel.unregister(s)
            else:
                self.sel.modify(s, want, _bound(self._on_event, s))
            self.registered[s] = want

    def _on_event(self, s: socket.socket, mask: int) -> None:
        if self.closed:
            return
        try:
            if not self.connected:
                err = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, "connect")
                self.connected = True
            else:
                if mask & selectors.EVENT_WRITE:
                    self._flush(s)
                if mask & selectors.EVENT_READ:
                    self._read(s)
            self._finish_half_close()
        except OSError:
            self.close()
            return
        if not self.closed:
            self._update()

    def _read(self, src: socket.socket) -> None:
        dst = self._other(src)
        data = src.recv(CHUNK)
        if not data:
            self.eof[src] = True
            return
        self.buf[dst] += data
        self._flush(dst)

    def _flush(self, dst: socket.socket) -> None:
        buf = self.buf[dst]
        while buf:
            try:
                sent = dst.send(buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:sent]

    def _finish_half_close(self) -> None:
        for src in (self.client, self.upstream):
            dst = self._other(src)
            if self.eof[src] and not self.buf[dst] and not self.shut[dst]:
                dst.shutdown(socket.SHUT_WR)
                self.shut[dst] = True
        if all(self.shut.values()):
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.upstream):
            if self.registered.get(s):
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(s)
            s.close()
        self.relay._tcp.discard(self)
