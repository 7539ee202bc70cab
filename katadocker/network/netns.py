"""Named network namespaces and the links inside them: bridge, uplink veth, TAPs.

A namespace is a bind mount under ``/run/netns/<name>`` (the ``ip netns`` convention, so ``ip netns
exec`` works for debugging). Python 3.11 has no ``os.setns``; code that must act inside a namespace
runs in a thread that called ``setns(2)`` through ctypes. That affects only that thread, and a socket
(netlink included) created there stays bound to the namespace for its whole life, whichever thread
uses it later. `NetnsExecutor` keeps one such thread per namespace for repeated work (the relays ask
it for sockets); `run_in` is the one-shot form.

Inside each network namespace (names are local to it, so they are fixed)::

    lo (up)   br0 (gateway address, up)   uplink (veth to the host, transfer /30)   tap-* (on br0)

Every function here acts only on the namespace it is given and on the one host-side veth named by
its caller. Errors are `NetworkError`.
"""

from __future__ import annotations

import ctypes
import fcntl
import ipaddress
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socket import socket
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as _pyroute2_netns

from katadocker.errors import NetworkError

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
BRIDGE = "br0"
UPLINK = "uplink"
CLONE_NEWNET = 0x40000000

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000

_libc = ctypes.CDLL(None, use_errno=True)


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> None:
    """Create the named namespace with its loopback up. Idempotent."""
    if not exists(name):
        try:
            _pyroute2_netns.create(name)
        except OSError as e:
            raise NetworkError(f"cannot create network namespace {name}: {e}") from None
    run_in(name, _link_up, "lo")


def remove(name: str) -> None:
    """Delete the namespace; the kernel then destroys every link in it (and the peers of its veths).

    Idempotent. A process still running inside it keeps the namespace alive until it exits, but the
    name is gone at once.
    """
    if exists(name):
        try:
            _pyroute2_netns.remove(name)
        except OSError as e:
            raise NetworkError(f"cannot remove network namespace {name}: {e}") from None


def enter(name: str) -> None:
    """Move the calling thread (only it) into the namespace `name`."""
    try:
        fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetworkError(f"network namespace {name} not found: {e}") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetworkError(f"setns({name}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` in a fresh thread inside namespace `name`; return its result or raise its error."""
    result: list[Any] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            enter(name)
            result.append(fn(*args))
        except BaseException as e:  # re-raised in the caller's thread
            error.append(e)

    thread = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class NetnsExecutor:
    """One long-lived thread inside a namespace, for repeated calls (sockets for relayed connections)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{name}",
                                        initializer=enter, initargs=(name,))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the namespace thread and wait for it."""
        try:
            return self._pool.submit(fn, *args).result()
        except RuntimeError as e:  # BrokenThreadPool: the thread could not enter the namespace
            raise NetworkError(f"cannot enter network namespace {self.name}: {e}") from None

    def socket(self, family: int, kind: int) -> socket:
        """A new socket that belongs to the namespace."""
        return self.call(socket, family, kind)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


# ---------------------------------------------------------------------------------------------
# Links inside a namespace (each function below runs inside it through `run_in`)


def _link_up(ifname: str) -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=_index(ipr, ifname), state="up")


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetworkError(f"link {ifname} not found")
    return found[0]


def _write_sysctl(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value)


def setup_bridge(ns: str, gateway: ipaddress.IPv4Interface, mtu: int) -> None:
    """Create ``br0`` in `ns` holding the gateway address; let the namespace route between its links."""
    run_in(ns, _setup_bridge, gateway, mtu)


def _setup_bridge(gateway: ipaddress.IPv4Interface, mtu: int) -> None:
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=BRIDGE):
            ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=mtu)
        idx = _index(ipr, BRIDGE)
        ipr.addr("replace", index=idx, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
        ipr.link("set", index=idx, state="up")
    # Forwarding between br0 and uplink; this is the namespace's own sysctl, not the host's.
    _write_sysctl("net/ipv4/ip_forward", "1")


def add_uplink(ns: str, host_ifname: str, host_side: ipaddress.IPv4Interface,
               ns_side: ipaddress.IPv4Interface, subnet: ipaddress.IPv4Network, mtu: int,
               host_forwarding: bool = True) -> None:
    """The veth pair host `host_ifname` <-> ``uplink`` in `ns`, addressed from the transfer /30.

    The namespace routes its default via the host side; the host routes `subnet` via the namespace
    side. The host side forwards (its own per-interface sysctl). With `host_forwarding` the host-wide
    ``net.ipv4.ip_forward`` is switched on too, as docker does (its ``ip-forward`` setting): without it
    replies from outside, which arrive on the host's other interfaces, are not forwarded back.
    """
    try:
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=host_ifname):
                ipr.link("add", ifname=host_ifname, kind="veth", mtu=mtu,
                         peer={"ifname": UPLINK, "net_ns_fd": ns, "mtu": mtu})
            idx = _index(ipr, host_ifname)
            ipr.addr("replace", index=idx, address=str(host_side.ip), prefixlen=host_side.network.prefixlen)
            ipr.link("set", index=idx, state="up")
            _write_sysctl(f"net/ipv4/conf/{host_ifname}/forwarding", "1")
            if host_forwarding:
                _write_sysctl("net/ipv4/ip_forward", "1")
            run_in(ns, _setup_uplink, ns_side, host_side.ip)
            ours = (str(subnet.network_address), subnet.prefixlen)
            for route in ipr.get_routes(family=2, table=254):
                # Never shadow a route someone else owns (another engine, another state root).
                if (route.get("dst"), route["dst_len"]) == ours and route.get("oif") != idx:
                    raise NetworkError(f"{subnet} is already routed on the host")
            ipr.route("replace", dst=str(subnet), gateway=str(ns_side.ip), oif=idx)
    except OSError as e:
        raise NetworkError(f"cannot set up the uplink {host_ifname} of {ns}: {e}") from None


def _setup_uplink(ns_side: ipaddress.IPv4Interface, via: ipaddress.IPv4Address) -> None:
    with IPRoute() as ipr:
        idx = _index(ipr, UPLINK)
        ipr.addr("replace", index=idx, address=str(ns_side.ip), prefixlen=ns_side.network.prefixlen)
        ipr.link("set", index=idx, state="up")
        ipr.route("replace", dst="default", gateway=str(via))


def remove_host_link(host_ifname: str) -> None:
    """Delete the host side of a network's veth (its route and address go with it). Idempotent."""
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=host_ifname):
            ipr.link("del", index=idx)


def add_tap(ns: str, tap: str, mtu: int) -> None:
    """A persistent TAP `tap` in `ns` attached to ``br0`` and up, ready for QEMU to open by name.

    Created like QEMU opens it (``IFF_TAP|IFF_NO_PI|IFF_VNET_HDR``, single queue), owned by root.
    """
    run_in(ns, _add_tap, tap, mtu)


def _add_tap(tap: str, mtu: int) -> None:
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=tap):
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            try:
                ifr = struct.pack("16sH22x", tap.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
                fcntl.ioctl(fd, TUNSETIFF, ifr)
                fcntl.ioctl(fd, TUNSETPERSIST, 1)
            finally:
                os.close(fd)
        ipr.link("set", index=_index(ipr, tap), master=_index(ipr, BRIDGE), mtu=mtu, state="up")


def remove_tap(ns: str, tap: str) -> None:
    """Delete the TAP `tap` from `ns`. Idempotent (also when the namespace is already gone)."""
    if exists(ns):
        run_in(ns, _remove_link, tap)


def _remove_link(ifname: str) -> None:
    with IPRoute() as ipr:
        for idx in ipr.link_lookup(ifname=ifname):
            ipr.link("del", index=idx)


def bridge_ports(ns: str) -> list[str]:
    """Names of the links enslaved to ``br0`` in `ns`."""
    return run_in(ns, _bridge_ports)


def _bridge_ports() -> list[str]:
    with IPRoute() as ipr:
        bridge = _index(ipr, BRIDGE)
        return sorted(link.get("ifname") for link in ipr.get_links() if link.get("master") == bridge)
