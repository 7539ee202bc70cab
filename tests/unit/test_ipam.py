"""Subnet and address allocation (pure logic; no host changes)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from katadocker.errors import Conflict, InvalidArgument
from katadocker.network import ipam


def test_bridge_gets_172_17_unless_routed() -> None:
    assert ipam.choose_subnet([], [], default_bridge=True) == IPv4Network("172.17.0.0/16")
    routed = [IPv4Network("172.17.5.0/24")]
    assert ipam.choose_subnet([], routed, default_bridge=True) == IPv4Network("172.18.0.0/16")


def test_user_networks_skip_taken_and_routes() -> None:
    taken = [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.0.0/16")]
    assert ipam.choose_subnet(taken, [IPv4Network("172.19.0.0/24")]) == IPv4Network("172.20.0.0/16")
    everything = [IPv4Network(f"172.{n}.0.0/16") for n in range(16, 32)]
    assert ipam.choose_subnet(everything, []) == IPv4Network("192.168.0.0/20")


def test_host_routes_parse_proc_net_route(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert ipam.host_routes(table) == [IPv4Network("192.0.2.0/24")]


def test_check_subnet() -> None:
    assert ipam.check_subnet("10.1.0.0/24", []) == IPv4Network("10.1.0.0/24")
    with pytest.raises(InvalidArgument, match="it should be 10.1.0.0/24"):
        ipam.check_subnet("10.1.0.5/24", [])
    with pytest.raises(Conflict, match="Pool overlaps"):
        ipam.check_subnet("10.1.0.0/16", [IPv4Network("10.1.2.0/24")])
    with pytest.raises(InvalidArgument):
        ipam.check_subnet("10.1.0.0/30", [])


def test_transfer_link_avoids_gateway_and_is_reserved() -> None:
    net = IPv4Network("10.9.0.0/24")
    ns_side, host_side = ipam.transfer_link(net, IPv4Address("10.9.0.1"))
    assert (str(ns_side), str(host_side)) == ("10.9.0.253/30", "10.9.0.254/30")
    ns_side, _ = ipam.transfer_link(net, IPv4Address("10.9.0.254"))
    assert str(ns_side) == "10.9.0.249/30"
    assert IPv4Address("10.9.0.253") in ipam.reserved(net, IPv4Address("10.9.0.1"))


def test_allocate() -> None:
    net, gw = IPv4Network("10.9.0.0/28"), IPv4Address("10.9.0.1")
    assert ipam.allocate(net, gw, []) == IPv4Address("10.9.0.2")
    assert ipam.allocate(net, gw, [IPv4Address("10.9.0.2")]) == IPv4Address("10.9.0.3")
    assert ipam.allocate(net, gw, [], "10.9.0.7") == IPv4Address("10.9.0.7")
    with pytest.raises(Conflict):
        ipam.allocate(net, gw, [IPv4Address("10.9.0.7")], "10.9.0.7")
    with pytest.raises(InvalidArgument, match="no configured subnet"):
        ipam.allocate(net, gw, [], "10.10.0.7")
    used = [IPv4Address(f"10.9.0.{i}") for i in range(2, 12)]
    with pytest.raises(Conflict, match="no available"):
        ipam.allocate(net, gw, used)
