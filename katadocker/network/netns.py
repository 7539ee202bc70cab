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
import errno
import fcntl
import ipaddress
import os
import socket as _socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socket import socket
from typing import TYPE_CHECKING, Any, TypeVar

from katadocker.errors import NetworkError

if TYPE_CHECKING:
    from pyroute2 import IPRoute

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
# <linux/sockios.h>, <linux/if.h>: the per-container TAP is set up with plain ioctls
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
SIOCBRADDIF = 0x89A2
IFF_UP = 0x1
# <linux/netlink.h>, <linux/rtnetlink.h>: RTM_DELLINK, the one netlink request sent without pyroute2
RTM_DELLINK = 17
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _iproute() -> IPRoute:
    """pyroute2's IPRoute, imported only when a network is built or torn down: importing pyroute2 costs
    ~0.2-0.35 s and ~17 MiB RSS, which a container's monitor (attach/detach of its TAP, below, uses
    ioctls and one netlink message instead) no longer pays."""
    from pyroute2 import IPRoute as _IPRoute

    return _IPRoute()


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> None:
    """Create the named namespace with its loopback up. Idempotent."""
    if not exists(name):
        try:
            from pyroute2 import netns as _pyroute2_netns

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
            from pyroute2 import netns as _pyroute2_netns

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
    with _iproute() as ipr:
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
    with _iproute() as ipr:
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
        with _iproute() as ipr:
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
    with _iproute() as ipr:
        idx = _index(ipr, UPLINK)
        ipr.addr("replace", index=idx, address=str(ns_side.ip), prefixlen=ns_side.network.prefixlen)
        ipr.link("set", index=idx, state="up")
        ipr.route("replace", dst="default", gateway=str(via))


def remove_host_link(host_ifname: str) -> None:
    """Delete the host side of a network's veth (its route and address go with it). Idempotent."""
    with _iproute() as ipr:
        for idx in ipr.link_lookup(ifname=host_ifname):
            ipr.link("del", index=idx)


def add_tap(ns: str, tap: str, mtu: int) -> None:
    """A persistent TAP `tap` in `ns` attached to ``br0`` and up, ready for `open_tap`.

    Created like QEMU opens a TAP (``IFF_TAP|IFF_NO_PI|IFF_VNET_HDR``, single queue), owned by root.
    """
    run_in(ns, _add_tap, tap, mtu)


def _ifreq(ifname: str, data: bytes = b"") -> bytes:
    """A ``struct ifreq``: the name, then the 24-byte union (`data`, zero-padded)."""
    return struct.pack("16s24s", ifname.encode(), data)


def _if_index(ifname: str) -> int | None:
    """The index of `ifname` in the calling thread's namespace, or None."""
    try:
        return _socket.if_nametoindex(ifname)
    except OSError:
        return None


def open_tap(ns: str, tap: str) -> int:
    """An open descriptor of the TAP `tap` in `ns` (made by `add_tap`; the caller closes it), for QEMU
    to take over: a descriptor, unlike a name, works from any namespace."""
    return run_in(ns, _open_tap, tap)


def unpersist_tap(fd: int) -> None:
    """Make the TAP that `fd` has open (an `open_tap` descriptor) go away by itself when its last
    descriptor closes. Once QEMU holds its own copy, the kernel deletes the TAP as the VM dies,
    however it dies (a monitor killed with -9 included), and a container's teardown need not delete
    it: that takes the kernel ~20 ms."""
    fcntl.ioctl(fd, TUNSETPERSIST, 0)


def _open_tap(tap: str) -> int:
    """Open (creating if missing) the TAP `tap` of the calling thread's namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", tap.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    except OSError as e:
        os.close(fd)
        raise NetworkError(f"cannot open {tap}: {e.strerror}") from None
    return fd


def _add_tap(tap: str, mtu: int) -> None:
    if _if_index(tap) is None:
        fd = _open_tap(tap)
        try:
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        finally:
            os.close(fd)
    index = _if_index(tap)
    if index is None or _if_index(BRIDGE) is None:
        raise NetworkError(f"link {tap if index is None else BRIDGE} not found")
    # a socket made in this thread belongs to the namespace; the ioctls act on its links
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s, SIOCSIFMTU, _ifreq(tap, struct.pack("i", mtu)))
            try:
                fcntl.ioctl(s, SIOCBRADDIF, _ifreq(BRIDGE, struct.pack("i", index)))
            except OSError as e:
                if e.errno != errno.EBUSY:  # EBUSY: already a port of br0 (the only bridge here)
                    raise
            flags = struct.unpack_from("H", fcntl.ioctl(s, SIOCGIFFLAGS, _ifreq(tap)), 16)[0]
            fcntl.ioctl(s, SIOCSIFFLAGS, _ifreq(tap, struct.pack("H", flags | IFF_UP)))
        except OSError as e:
            raise NetworkError(f"cannot set up {tap}: {e.strerror}") from None


def remove_tap(ns: str, tap: str) -> None:
    """Delete the TAP `tap` from `ns`. Idempotent (also when the namespace is already gone)."""
    if exists(ns):
        run_in(ns, _remove_link, tap)


def _remove_link(ifname: str) -> None:
    """``ip link del`` as one RTM_DELLINK netlink request (no pyroute2); nothing if `ifname` is gone."""
    index = _if_index(ifname)
    if index is None:
        return
    with _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, _socket.NETLINK_ROUTE) as nl:
        # nlmsghdr (len, type, flags, seq, pid) + ifinfomsg (family, pad, type, index, flags, change)
        nl.send(struct.pack("=LHHLLBxHiII", 32, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 0,
                            _socket.AF_UNSPEC, 0, index, 0, 0))
        reply = nl.recv(4096)
    kind, code = struct.unpack_from("=H", reply, 4)[0], struct.unpack_from("=i", reply, 16)[0]
    if kind == NLMSG_ERROR and code < 0 and -code != errno.ENODEV:
        raise NetworkError(f"cannot delete {ifname}: {os.strerror(-code)}")


def bridge_ports(ns: str) -> list[str]:
    """Names of the links enslaved to ``br0`` in `ns`."""
    return run_in(ns, _bridge_ports)


def _bridge_ports() -> list[str]:
    with _iproute() as ipr:
        bridge = _index(ipr, BRIDGE)
        return sorted(link.get("ifname") for link in ipr.get_links() if link.get("master") == bridge)
