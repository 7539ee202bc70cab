"""Networking of real containers (QEMU VMs, TCG here) with the real nginx and busybox images:
published ports over loopback (TCP and UDP, ``-p`` and ``-P``), ``port``/``ps``/``inspect``, names
and aliases on a user network, isolation between networks, ``--network none``, the port-conflict
failure, and teardown after ``stop``, ``rm`` and a ``kill -9`` of the monitor.

Traffic goes only to 127.0.0.1 and to addresses inside namespaces katadocker creates. After every
test the containers it created are removed and `tests.support.leaks` must find nothing left over.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support import leaks
from tests.support.cli import Katadocker

pytestmark = [pytest.mark.vm, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PERL_UDP_ECHO = ('perl -MIO::Socket::INET -e \'$s = IO::Socket::INET->new(LocalPort => 9999, Proto => "udp") '
                 'or die; while ($s->recv($d, 65535)) { $s->send("echo:$d") }\'')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_page(port: int, timeout: float = 120) -> bytes:
    """GET / on 127.0.0.1:`port`, retrying while the guest's server comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
        except OSError:
            assert time.monotonic() < deadline, f"nothing answered on 127.0.0.1:{port}"
            time.sleep(0.5)


def inspect(kd: Katadocker, ref: str) -> dict:
    return json.loads(kd.ok("inspect", ref))[0]


@pytest.fixture(scope="module")
def images_pulled(vm_kd: Katadocker, nginx_image: str, busybox_image: str) -> tuple[str, str]:
    """(nginx, busybox) present in the shared state root."""
    vm_kd.ok("pull", "-q", nginx_image)
    vm_kd.ok("pull", "-q", busybox_image)
    return nginx_image, busybox_image


@pytest.fixture
def kd(vm_kd: Katadocker, images_pulled: tuple[str, str]) -> Iterator[Katadocker]:
    """The shared VM state root; afterwards this test's containers and networks are removed and
    nothing of them may be left (TAPs, endpoints, listeners, helper processes, namespaces)."""
    before_c = set(vm_kd.ok("ps", "-aq", "--no-trunc").split())
    before_n = set(vm_kd.ok("network", "ls", "-q", "--no-trunc").split())
    yield vm_kd
    seen = leaks.network_objects(vm_kd.root)
    created = set(vm_kd.ok("ps", "-aq", "--no-trunc").split()) - before_c
    if created:
        vm_kd("rm", "-f", *created)
    nets = set(vm_kd.ok("network", "ls", "-q", "--no-trunc").split()) - before_n
    if nets:
        vm_kd("network", "rm", *nets)
    assert leaks.wait_no_leaks(vm_kd.root, seen) == []


def test_nginx_page_port_ps_inspect_and_teardown(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    nginx, _ = images_pulled
    port = free_port()
    cid = kd.ok("run", "-d", "--name", "kdnet-web", "-p", f"{port}:80", nginx).strip()
    assert b"Welcome to nginx" in get_page(port)
    deadline = time.monotonic() + 30
    while '"GET / HTTP/1.1" 200' not in kd.ok("logs", "kdnet-web"):
        assert time.monotonic() < deadline, kd.ok("logs", "kdnet-web")
        time.sleep(0.5)

    assert kd.ok("port", "kdnet-web") == f"80/tcp -> 0.0.0.0:{port}\n80/tcp -> [::]:{port}\n"
    assert kd.ok("port", "kdnet-web", "80/tcp") == f"0.0.0.0:{port}\n[::]:{port}\n"
    r = kd("port", "kdnet-web", "81")
    assert (r.rc, r.err) == (1, "Error: No public port '81' published for kdnet-web\n")
    assert kd.ok("ps", "--filter", "name=kdnet-web", "--format", "{{.Ports}}") == \
        f"0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp\n"

    doc = inspect(kd, "kdnet-web")
    ns = doc["NetworkSettings"]
    assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)},
                                      {"HostIp": "::", "HostPort": str(port)}]}
    bridge = ns["Networks"]["bridge"]
    ipam = json.loads(kd.ok("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]
    assert bridge["Gateway"] == ipam["Gateway"] and bridge["IPPrefixLen"] == int(ipam["Subnet"].split("/")[1])
    assert ipaddress.IPv4Address(bridge["IPAddress"]) in ipaddress.IPv4Network(ipam["Subnet"])
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in bridge["IPAddress"].split("."))
    assert bridge["MacAddress"] == mac
    assert bridge["MacAddress"] == mac
    assert len(bridge["NetworkID"]) == 64 and len(bridge["EndpointID"]) == 64
    assert (ns["IPAddress"], ns["Gateway"], ns["MacAddress"]) == \
        (bridge["IPAddress"], bridge["Gateway"], bridge["MacAddress"])
    assert leaks.find_leaks(kd.root) == []  # running: its TAP and listeners are needed

    kd.ok("stop", "kdnet-web")
    assert not leaks.port_listening(port)
    assert kd.ok("port", "kdnet-web") == ""
    assert kd.ok("ps", "-a", "--filter", "name=kdnet-web", "--format", "{{.Ports}}") == "\n"
    assert leaks.find_leaks(kd.root) == []  # stopped: TAP, endpoint and listeners gone
    kd.ok("rm", cid)


def test_publish_all_and_udp(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    nginx, _ = images_pulled
    udp = free_port()
    kd.ok("run", "-d", "--name", "kdnet-all", "-P", "-p", f"127.0.0.1:{udp}:9999/udp", nginx, "sh", "-c",
          f"{PERL_UDP_ECHO} & exec nginx -g 'daemon off;'")
    lines = kd.ok("port", "kdnet-all", "80").split()
    port = int(lines[0].rsplit(":", 1)[1])
    assert lines == [f"0.0.0.0:{port}", f"[::]:{port}"]
    assert kd.ok("port", "kdnet-all", "9999/udp") == f"127.0.0.1:{udp}\n"
    assert b"Welcome to nginx" in get_page(port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        deadline = time.monotonic() + 60
        while True:
            s.sendto(b"ping", ("127.0.0.1", udp))
            try:
                assert s.recv(100) == b"echo:ping"
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no UDP echo"
        for i in range(20):  # the same peer session carries many datagrams
            s.sendto(b"x%d" % i, ("127.0.0.1", udp))
            assert s.recv(100) == b"echo:x%d" % i


def test_names_and_aliases_on_a_user_network_and_isolation(kd: Katadocker,
                                                          images_pulled: tuple[str, str]) -> None:
    nginx, busybox = images_pulled
    kd.ok("network", "create", "--subnet", "10.213.0.0/24", "kdnet-a")
    kd.ok("network", "create", "--subnet", "10.214.0.0/24", "kdnet-b")
    kd.ok("run", "-d", "--name", "kdnet-named", "--network", "kdnet-a", "--network-alias", "www", nginx)
    # The client is the Debian image: its glibc resolves through resolv.conf (busybox-static's wget
    # cannot resolve names at all); bash's /dev/tcp connects by name.
    r = kd("run", "--rm", "--network", "kdnet-a", "--ip", "10.213.0.77", "--mac-address", "02:aa:bb:cc:dd:ee",
           "--add-host", "static.test:192.0.2.7", "--add-host", "hostgw:host-gateway",
           "--dns", "10.213.0.1", "--dns-search", "example.test", "--dns-option", "ndots:2",
           nginx, "bash", "-c",
           "for h in kdnet-named www; do for i in $(seq 60); do exec 3<>/dev/tcp/$h/80 && break; sleep 1;"
           " done;"
           " printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' >&3; grep -o 'Welcome to nginx' <&3 | head -1;"
           " exec 3<&-; done; cat /etc/resolv.conf /etc/hosts /sys/class/net/eth0/address;"
           " grep -c 10.213.0.77 /proc/net/fib_trie", timeout=600)
    assert r.rc == 0, r
    out = r.out
    assert out.count("Welcome to nginx") == 2, r
    assert "nameserver 10.213.0.1\n" in out and "search example.test\n" in out and "options ndots:2\n" in out
    assert "192.0.2.7\tstatic.test\n" in out
    assert "\thostgw\n" in out
    assert "02:aa:bb:cc:dd:ee\n" in out and not out.endswith("\n0\n"), r

    doc = inspect(kd, "kdnet-named")
    ep = doc["NetworkSettings"]["Networks"]["kdnet-a"]
    assert ep["Aliases"] == ["www"]
    assert ep["DNSNames"] == ["kdnet-named", "www", doc["Id"][:12]]
    assert ep["IPAddress"].startswith("10.213.0.") and ep["Gateway"] == "10.213.0.1"
    assert doc["NetworkSettings"]["IPAddress"] == ep["IPAddress"]

    # Another network: neither the name nor the address of kdnet-named is reachable.
    r = kd("run", "--rm", "--network", "kdnet-b", "--dns", "10.214.0.1", busybox, "sh", "-c",
           f"nslookup www >/dev/null 2>&1 && echo RESOLVED; "
           f"wget -q -T 5 -O - http://{ep['IPAddress']}/ && echo REACHED; echo done", timeout=600)
    assert r.rc == 0, r
    assert "RESOLVED" not in r.out and "REACHED" not in r.out and "done" in r.out
    r = kd("network", "rm", "kdnet-a")
    assert r.rc == 1 and "has active endpoints" in r.err


def test_port_conflict_leaves_a_created_container_and_nothing_else(kd: Katadocker,
                                                                   images_pulled: tuple[str, str]) -> None:
    _, busybox = images_pulled
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = kd("run", "-d", "--name", "kdnet-conflict", "-p", f"{port}:80", busybox, "sleep", "60")
    assert r.rc == 125, r
    cid = r.out.strip()
    assert len(cid) == 64
    assert ("Error response from daemon: failed to set up container networking: driver failed programming "
            "external connectivity on endpoint kdnet-conflict (") in r.err
    assert f"): Bind for 0.0.0.0:{port} failed: port is already allocated" in r.err
    assert kd.ok("ps", "-a", "--filter", "name=kdnet-conflict", "--format", "{{.Status}}") == "Created\n"
    assert leaks.find_leaks(kd.root) == []


def test_network_none_has_only_loopback(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    _, busybox = images_pulled
    r = kd("run", "--rm", "--network", "none", busybox, "sh", "-c", "ls /sys/class/net; cat /etc/resolv.conf")
    assert (r.rc, r.out) == (0, "lo\n"), r


def test_kill_9_of_the_monitor_leaves_nothing(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    _, busybox = images_pulled
    port = free_port()
    kd.ok("run", "-d", "--name", "kdnet-crash", "-p", f"127.0.0.1:{port}:8080", busybox, "sh", "-c",
          "echo up > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    assert get_page(port) == b"up\n"
    os.kill(inspect(kd, "kdnet-crash")["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while kd.ok("ps", "-a", "--filter", "name=kdnet-crash", "--format", "{{.State}}") != "exited\n":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not leaks.port_listening(port)
    assert leaks.find_leaks(kd.root) == []


def test_the_tap_goes_with_the_vm(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    """Once QEMU holds the NIC's TAP, the kernel deletes it when the VM dies: after a kill -9 of the
    monitor (which takes QEMU along) it is gone before any katadocker command runs."""
    _, busybox = images_pulled
    cid = kd.ok("run", "-d", busybox, "sleep", "600").strip()
    ns = next(r for r in leaks.network_records(kd.root) if r["Name"] == "bridge")["Katadocker"]["Netns"]
    tap = f"tap{cid[:11]}"
    assert tap in leaks.network_taps(ns)
    os.kill(inspect(kd, cid)["State"]["Pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while tap in leaks.network_taps(ns):
        assert time.monotonic() < deadline, f"{tap} outlived its VM"
        time.sleep(0.1)


def test_connect_and_disconnect_a_stopped_container(kd: Katadocker, images_pulled: tuple[str, str]) -> None:
    _, busybox = images_pulled
    kd.ok("network", "create", "kdnet-c")
    kd.ok("create", "--name", "kdnet-moved", busybox, "true")
    r = kd("network", "connect", "kdnet-c", "kdnet-moved")
    assert r.rc == 1 and "disconnect it from bridge first" in r.err, r
    kd.ok("network", "disconnect", "bridge", "kdnet-moved")
    assert list(inspect(kd, "kdnet-moved")["NetworkSettings"]["Networks"]) == ["none"]
    kd.ok("network", "connect", "--alias", "moved-alias", "kdnet-c", "kdnet-moved")
    doc = inspect(kd, "kdnet-moved")
    assert doc["HostConfig"]["NetworkMode"] == "kdnet-c"
    assert doc["NetworkSettings"]["Networks"]["kdnet-c"]["Aliases"] == ["moved-alias"]
    r = kd("network", "disconnect", "bridge", "kdnet-moved")
    assert r.rc == 1 and "is not connected to network bridge" in r.err
