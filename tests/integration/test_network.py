"""Networks in real namespaces: lifecycle leaves nothing behind, TAPs on the bridge, relays, NAT.

Needs root. Traffic goes only to loopback and to addresses inside namespaces these tests create.
Every namespace and link is removed in a finalizer, also when a test fails.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from katadocker.config import Settings
from katadocker.errors import Conflict, PortAllocated
from katadocker.network import dns, nat, netns, networks
from katadocker.network.ports import PortBinding
from katadocker.network.relay import PortRelay
from katadocker.state.paths import StateRoot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    s = Settings(state=StateRoot(tmp_path / "root").ensure(), docker_config=tmp_path / "docker")
    yield s
    networks.teardown_all(s)


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _fake_container(settings: Settings) -> str:
    """A container ID whose directory exists (attachments of vanished containers are dropped)."""
    cid = os.urandom(32).hex()
    settings.state.container_dir(cid).mkdir(parents=True)
    return cid


def _add_guest_address(ns: str, ip: str, prefix: int) -> None:
    """Stand in for the guest: put its address on the bridge so servers can bind it."""
    def add() -> None:
        with IPRoute() as ipr:
            ipr.addr("add", index=ipr.link_lookup(ifname=netns.BRIDGE)[0], address=ip, prefixlen=prefix)
    netns.run_in(ns, add)


def _serve(sock: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Accept on `sock` in a thread, one handler thread per connection (test side only)."""
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)  # half-close: answer EOF with EOF after the echo


def _tcp_server_in(ns: str, ip: str, handle: Callable[[socket.socket], None]) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, 0))
        s.listen(256)
        return s
    sock = netns.run_in(ns, make)
    _serve(sock, handle)
    return sock


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        chunks = []
        while data := c.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_create_and_remove_leave_nothing(settings: Settings) -> None:
    rec = networks.create(settings, "kdtest-a", labels={"k": "v"})
    priv = rec["Katadocker"]
    subnet = rec["IPAM"]["Config"][0]["Subnet"]
    assert netns.exists(priv["Netns"])
    assert _link_exists(priv["HostLink"])
    with IPRoute() as ipr:
        net = ipaddress.IPv4Network(subnet)
        assert ipr.get_routes(family=2, dst=str(net.network_address), dst_len=net.prefixlen)
    if priv["Nat"]:
        assert nat.present(priv["Nat"], priv["Netns"], subnet, priv["HostLink"])
    assert networks.get(settings, rec["Id"][:6])["Name"] == "kdtest-a"
    assert networks.inspect_view(rec)["Labels"] == {"k": "v"}

    assert networks.remove(settings, "kdtest-a") == "kdtest-a"
    assert not netns.exists(priv["Netns"])
    assert not _link_exists(priv["HostLink"])
    if priv["Nat"]:
        assert not nat.present(priv["Nat"], priv["Netns"], subnet, priv["HostLink"])
    assert networks.list_networks(settings) == []


def test_networks_get_distinct_subnets(settings: Settings) -> None:
    a = networks.create(settings, "kdtest-a")
    b = networks.create(settings, "kdtest-b", internal=True)
    c = networks.create(settings, "kdtest-c", subnet="10.213.0.0/24", gateway="10.213.0.254")
    subnets = [ipaddress.IPv4Network(r["IPAM"]["Config"][0]["Subnet"]) for r in (a, b, c)]
    assert not subnets[0].overlaps(subnets[1])
    assert c["IPAM"]["Config"][0]["Gateway"] == "10.213.0.254"
    assert b["Katadocker"]["HostLink"] == "" and "katadocker.nat" not in b["Options"]
    with pytest.raises(Conflict, match="already exists"):
        networks.create(settings, "kdtest-a")
    with pytest.raises(Conflict, match="overlaps"):
        networks.create(settings, "kdtest-d", subnet="10.213.0.0/16")


def test_attach_puts_tap_on_bridge_and_names_resolve(settings: Settings) -> None:
    networks.create(settings, "kdtest-a")
    cid, cid2 = _fake_container(settings), _fake_container(settings)
    att = networks.attach(settings, "kdtest-a", cid, "/web", aliases=["www"])
    att2 = networks.attach(settings, "kdtest-a", cid2, "client", ip=None)
    assert att.tap_name in netns.bridge_ports(att.netns_name)
    assert att.ip != att2.ip and att.gateway == att.dns[0]
    assert networks.attach(settings, "kdtest-a", cid, "web") == att  # idempotent
    assert networks.hosts_entries(settings, "kdtest-a")[0] == (att.ip, ["web", "www", cid[:12]])

    responder = dns.DnsResponder(settings, "kdtest-a", att.netns_name, att.gateway)
    responder.start()
    try:
        def ask(name: str) -> bytes:
            query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
                bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.sendto(query, (att.gateway, 53))
                return s.recv(512)
        reply = netns.run_in(att.netns_name, ask, "WWW")
        assert reply[-4:] == ipaddress.IPv4Address(att.ip).packed
    finally:
        responder.stop()

    with pytest.raises(Conflict, match="has active endpoints"):
        networks.remove(settings, "kdtest-a")
    networks.detach(settings, "kdtest-a", cid)
    networks.detach(settings, "kdtest-a", cid2)
    assert netns.bridge_ports(att.netns_name) == []
    networks.remove(settings, "kdtest-a")


@pytest.fixture
def relay_target(settings: Settings) -> networks.Attachment:
    networks.create(settings, "kdtest-r")
    att = networks.attach(settings, "kdtest-r", _fake_container(settings), "guest")
    _add_guest_address(att.netns_name, att.ip, att.prefix)
    return att


def test_tcp_relay_concurrency_and_half_close(relay_target: networks.Attachment) -> None:
    att = relay_target
    server = _tcp_server_in(att.netns_name, att.ip, _echo)
    port = _free_port()
    relay = PortRelay([PortBinding("127.0.0.1", port, server.getsockname()[1])], att.netns_name, att.ip)
    try:
        published = relay.start()
        assert [(p.host_ip, p.host_port) for p in published] == [("127.0.0.1", port)]
        big = os.urandom(4 * 1024 * 1024)  # larger than every buffer: exercises backpressure
        assert _roundtrip(port, big) == big
        payloads = [os.urandom(random.randint(1, 200_000)) for _ in range(64)]
        with ThreadPoolExecutor(max_workers=64) as pool:
            assert list(pool.map(lambda p: _roundtrip(port, p), payloads)) == payloads
        assert threading.active_count() < 100  # the relay has no thread per connection
    finally:
        relay.stop()
        server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_udp_relay(relay_target: networks.Attachment) -> None:
    att = relay_target

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((att.ip, 0))
        return s
    server = netns.run_in(att.netns_name, make)

    def echo() -> None:
        while True:
            try:
                data, peer = server.recvfrom(65535)
                server.sendto(data[::-1], peer)
            except OSError:
                return
    threading.Thread(target=echo, daemon=True).start()
    port = _free_port(socket.SOCK_DGRAM)
    binding = PortBinding("127.0.0.1", port, server.getsockname()[1], "udp")
    relay = PortRelay([binding], att.netns_name, att.ip)
    relay.start()
    try:
        for i in range(5):  # separate peers get separate sessions
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(5)
                c.sendto(f"hello {i}".encode(), ("127.0.0.1", port))
                assert c.recv(100) == f"hello {i}".encode()[::-1]
    finally:
        relay.stop()
        server.close()


def test_port_in_use_raises_port_allocated(relay_target: networks.Attachment) -> None:
    att = relay_target
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = _free_port()
        relay = PortRelay([PortBinding("127.0.0.1", free, 80), PortBinding("127.0.0.1", taken, 81)],
                          att.netns_name, att.ip)
        with pytest.raises(PortAllocated) as e:
            relay.start()
        assert e.value.message == f"Bind for 127.0.0.1:{taken} failed: port is already allocated"
        relay.stop()
        with socket.socket() as probe:  # the first listener was closed again
            probe.bind(("127.0.0.1", free))


def test_random_and_wildcard_ports(relay_target: networks.Attachment) -> None:
    att = relay_target
    server = _tcp_server_in(att.netns_name, att.ip, _echo)
    relay = PortRelay([PortBinding("", None, server.getsockname()[1])], att.netns_name, att.ip)
    try:
        published = relay.start()
        assert {p.host_ip for p in published} <= {"0.0.0.0", "::"}
        assert len({p.host_port for p in published}) == 1
        assert _roundtrip(published[0].host_port, b"ping") == b"ping"
    finally:
        relay.stop()
        server.close()


@pytest.fixture
def peer_namespace() -> Iterator[tuple[str, str]]:
    """Another namespace, linked to the host by a veth on a 198.18.x.y/30 (benchmark range)."""
    tag = os.urandom(3).hex()
    ns, host_if = f"kdt-peer-{tag}", f"kdtp{tag}"
    third, fourth = random.randint(0, 255), random.randrange(0, 256, 4)
    host_ip, peer_ip = f"198.18.{third}.{fourth + 1}", f"198.18.{third}.{fourth + 2}"
    netns.create(ns)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": ns})
            idx = ipr.link_lookup(ifname=host_if)[0]
            ipr.addr("add", index=idx, address=host_ip, prefixlen=30)
            ipr.link("set", index=idx, state="up")
        Path(f"/proc/sys/net/ipv4/conf/{host_if}/forwarding").write_text("1")

        def inside() -> None:
            with IPRoute() as ipr:
                idx = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=idx, address=peer_ip, prefixlen=30)
                ipr.link("set", index=idx, state="up")
        netns.run_in(ns, inside)
        yield ns, peer_ip
    finally:
        netns.remove_host_link(host_if)
        netns.remove(ns)


def test_outbound_nat_reaches_another_namespace(settings: Settings, peer_namespace: tuple[str, str]) -> None:
    if nat.available_backend() is None:
        pytest.skip("neither nft nor iptables installed")
    peer_ns, peer_ip = peer_namespace
    rec = networks.create(settings, "kdtest-n")

    def tell_source(conn: socket.socket) -> None:
        with conn:
            conn.sendall(conn.getpeername()[0].encode())
    server = _tcp_server_in(peer_ns, peer_ip, tell_source)
    try:
        def fetch() -> str:
            with socket.create_connection((peer_ip, server.getsockname()[1]), timeout=10) as c:
                return c.recv(100).decode()
        seen = netns.run_in(rec["Katadocker"]["Netns"], fetch)
    finally:
        server.close()
    # The peer has no route to the network's subnet: it saw the host's address, i.e. NAT worked.
    assert ipaddress.IPv4Address(seen) not in ipaddress.IPv4Network(rec["IPAM"]["Config"][0]["Subnet"])
