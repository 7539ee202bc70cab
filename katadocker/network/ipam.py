"""IPv4 address management: which subnet a network gets, which address a container gets.

Pure functions over explicit inputs; `networks` holds the lock and persists the results in each
network's record.

Subnets follow docker's default pools: the default ``bridge`` network asks for 172.17.0.0/16,
user networks for 172.18.0.0/16 ... 172.31.0.0/16 then 192.168.0.0/16 cut into /20s. A candidate is
skipped when it overlaps another katadocker network or any non-default route of the host (so a
LAN, VPN or another engine's bridge is never shadowed).

Inside a subnet: the network address, the gateway (first host by default) and the broadcast address
are never given out, nor the last /30 of the subnet not holding the gateway, which is the network's
transfer link to the host (see `transfer_link`). Containers get the lowest free address from ``.2`` upward.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from katadocker.errors import Conflict, InvalidArgument

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address
IPv4Interface = ipaddress.IPv4Interface

BRIDGE_SUBNET = IPv4Network("172.17.0.0/16")
#: Smallest subnet that still holds a gateway, a container and the transfer /30.
MAX_PREFIX = 28


def default_pools() -> Iterator[IPv4Network]:
    """Docker's default address pools for user networks, in order (172.17/16 is the bridge's)."""
    for second in range(18, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    yield from IPv4Network("192.168.0.0/16").subnets(new_prefix=20)


def host_routes(path: Path = Path("/proc/net/route")) -> list[IPv4Network]:
    """Destinations of the host's IPv4 routes (main table, as the kernel lists them), minus the default."""
    routes = []
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        net = IPv4Network(f"{dest}/{mask}", strict=False)
        if net.prefixlen:
            routes.append(net)
    return routes


def choose_subnet(taken: Iterable[IPv4Network], routes: Iterable[IPv4Network], *,
                  default_bridge: bool = False) -> IPv4Network:
    """The first pool subnet overlapping neither a katadocker network in `taken` nor a host route."""
    busy = [*taken, *routes]
    candidates = default_pools()
    if default_bridge:
        candidates = iter([BRIDGE_SUBNET, *candidates])
    for net in candidates:
        if not any(net.overlaps(other) for other in busy):
            return net
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults "
                   "to assign to the network")


def check_subnet(subnet: str, taken: Iterable[IPv4Network]) -> IPv4Network:
    """Validate a user's ``--subnet``: well formed, large enough, not overlapping another network."""
    try:
        net = IPv4Network(subnet, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {subnet}: only IPv4 CIDR subnets are supported") from None
    if subnet.partition("/")[0] != str(net.network_address):
        raise InvalidArgument(f"invalid subnet {subnet} : it should be {net}")
    if net.prefixlen > MAX_PREFIX:
        raise InvalidArgument(f"invalid subnet {subnet}: katadocker needs a /{MAX_PREFIX} or larger")
    if any(net.overlaps(other) for other in taken):
        raise Conflict("Pool overlaps with other one on this address space")
    return net


def gateway_for(subnet: IPv4Network, gateway: str | None = None) -> IPv4Address:
    """The gateway: `gateway` when given (must be a host address of `subnet`), else the first host."""
    if gateway is None:
        return subnet.network_address + 1
    try:
        addr = IPv4Address(gateway)
    except ValueError:
        raise InvalidArgument(f"invalid gateway address {gateway}") from None
    if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    return addr


def _transfer_net(subnet: IPv4Network, gateway: IPv4Address) -> IPv4Network:
    """The last /30 of `subnet` that does not hold the gateway."""
    # computed, not enumerated: listing a /16's 16384 quads took ~0.17 s of every container start
    last = IPv4Network(f"{subnet.broadcast_address - 3}/30")
    return last if gateway not in last else IPv4Network(f"{last.network_address - 4}/30")


def transfer_link(subnet: IPv4Network, gateway: IPv4Address) -> tuple[IPv4Interface, IPv4Interface]:
    """(namespace side, host side) of the network's uplink veth, in the transfer /30."""
    quad = _transfer_net(subnet, gateway)
    return (IPv4Interface(f"{quad.network_address + 1}/30"), IPv4Interface(f"{quad.network_address + 2}/30"))


def reserved(subnet: IPv4Network, gateway: IPv4Address) -> set[IPv4Address]:
    """Addresses of `subnet` never given to a container."""
    out = {subnet.network_address, subnet.broadcast_address, gateway}
    out.update(_transfer_net(subnet, gateway))
    return out


def allocate(subnet: IPv4Network, gateway: IPv4Address, used: Iterable[IPv4Address],
             requested: str | None = None) -> IPv4Address:
    """An address for a container: `requested` (``--ip``) if free and valid, else the lowest free one."""
    unavailable = reserved(subnet, gateway) | set(used)
    if requested is not None:
        try:
            addr = IPv4Address(requested)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {requested}") from None
        if addr not in subnet:
            raise InvalidArgument(f"no configured subnet contains IP address {requested}")
        if addr in unavailable:
            raise Conflict(f"Address already in use: {requested}")
        return addr
    for addr in subnet.hosts():
        if addr not in unavailable:
            return addr
    raise Conflict(f"no available IPv4 addresses on this network's address pools: {subnet}")
