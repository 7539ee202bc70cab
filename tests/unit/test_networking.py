"""A container's networking settings: flag validation, the guest's /etc/hosts and resolv.conf, and
what inspect shows of an endpoint (no VMs, no namespaces)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from katadocker.config import Settings
from katadocker.engine import networking
from katadocker.errors import InvalidArgument
from katadocker.network.networks import Attachment, teardown_all
from katadocker.state.paths import StateRoot

ATT = Attachment(network="net", network_id="n" * 64, endpoint_id="e" * 64, netns_name="kd-x",
                 tap_name="tapx", ip="10.5.0.2", prefix=24, gateway="10.5.0.1", mac="02:42:0a:05:00:02",
                 mtu=1500, dns=["10.5.0.1", "192.0.2.53"])


@pytest.mark.parametrize(("spec", "parsed"), [
    ("db:10.0.0.5", ("db", "10.0.0.5")),
    ("db=10.0.0.5", ("db", "10.0.0.5")),
    ("v6:[::1]", ("v6", "::1")),
    ("gw:host-gateway", ("gw", "host-gateway")),
])
def test_parse_extra_host(spec: str, parsed: tuple[str, str]) -> None:
    assert networking.parse_extra_host(spec) == parsed


@pytest.mark.parametrize("spec", ["db", "db:", ":1.2.3.4", "db:notanip"])
def test_parse_extra_host_rejects(spec: str) -> None:
    with pytest.raises(InvalidArgument):
        networking.parse_extra_host(spec)


def test_hosts_file() -> None:
    text = networking.hosts_file("box", ATT, ["db:10.9.9.9", "hostgw:host-gateway"])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    # the host end of the network's transfer /30 (the last /30 of 10.5.0.0/24)
    assert lines[-3:] == ["10.9.9.9\tdb", "10.5.0.254\thostgw", "10.5.0.2\tbox"]
    assert "hostgw" not in networking.hosts_file("box", None, ["hostgw:host-gateway"])


def test_resolv_conf() -> None:
    assert networking.resolv_conf(ATT, [], [], []) == "nameserver 10.5.0.1\nnameserver 192.0.2.53\n"
    assert networking.resolv_conf(ATT, ["9.9.9.9"], ["a.test", "b.test"], ["ndots:2"]) == (
        "search a.test b.test\nnameserver 10.5.0.1\nnameserver 9.9.9.9\noptions ndots:2\n")
    assert networking.resolv_conf(None, ["9.9.9.9"], [], []) == ""


def test_dns_names() -> None:
    assert networking.dns_names("net", "/web", "a" * 64, ["www"]) == ["web", "www", "a" * 12]
    assert networking.dns_names("bridge", "/web", "a" * 64, None) is None


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """A state root of the test's own; the default network that validating ``bridge`` creates is
    torn down afterwards (no namespace, veth or NAT rule outlives the test)."""
    settings = Settings(state=StateRoot(tmp_path / "root").ensure(), docker_config=tmp_path / "docker")
    yield settings
    teardown_all(settings)


@pytest.mark.parametrize(("network", "opts", "message"), [
    ("bridge", networking.NetworkOptions(ip="172.17.0.9"), "user specified IP address is supported on user"),
    ("none", networking.NetworkOptions(aliases=["x"]), "network-scoped alias is supported only"),
    ("none", networking.NetworkOptions(dns=["nope"]), "nope is not an ip address"),
    ("none", networking.NetworkOptions(mac="zz"), "invalid MAC address: zz"),
    ("none", networking.NetworkOptions(extra_hosts=["bad"]), "bad format for add-host"),
])
def test_create_settings_rejects(settings: Settings, network: str, opts: networking.NetworkOptions,
                                 message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        networking.create_settings(settings, network, opts)


def test_create_settings_records_docker_shapes(settings: Settings) -> None:
    host, netcfg = networking.create_settings(settings, "none", networking.NetworkOptions(
        dns=["9.9.9.9"], dns_search=["x.test"], dns_options=["ndots:1"], extra_hosts=["a=1.2.3.4"]))
    assert host == {"Dns": ["9.9.9.9"], "DnsOptions": ["ndots:1"], "DnsSearch": ["x.test"],
                    "ExtraHosts": ["a:1.2.3.4"]}
    assert netcfg == {"EndpointsConfig": {}}


def test_attach_options_from_the_configured_endpoint() -> None:
    config = {"NetworkingConfig": {"EndpointsConfig": {
        "net": networking.endpoint_config(["www"], "10.5.0.9", "02:00:00:00:00:01")}}}
    assert networking.attach_options(config, "net") == {"aliases": ["www"], "ip": "10.5.0.9",
                                                        "mac": "02:00:00:00:00:01"}
    assert networking.attach_options({}, "net") == {"aliases": [], "ip": None, "mac": None}
