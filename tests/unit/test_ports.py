"""Docker's -p grammar, -P expansion and the port texts of ps, port and inspect."""

from __future__ import annotations

import pytest

from katadocker.errors import InvalidArgument, NoPublicPort
from katadocker.network.ports import (
    PortBinding,
    PublishedPort,
    display_ports,
    inspect_ports,
    parse_publish,
    port_lines,
    publish_all,
)


@pytest.mark.parametrize(("spec", "expected"), [
    ("8080:80", [PortBinding("", 8080, 80, "tcp")]),
    ("127.0.0.1:8080:80", [PortBinding("127.0.0.1", 8080, 80, "tcp")]),
    ("[::1]:8080:80", [PortBinding("::1", 8080, 80, "tcp")]),
    ("8080:80/udp", [PortBinding("", 8080, 80, "udp")]),
    ("8080:80/TCP", [PortBinding("", 8080, 80, "tcp")]),
    ("80", [PortBinding("", None, 80, "tcp")]),
    (":80", [PortBinding("", None, 80, "tcp")]),
    ("127.0.0.1::80", [PortBinding("127.0.0.1", None, 80, "tcp")]),
    ("8000-8001:80-81", [PortBinding("", 8000, 80), PortBinding("", 8001, 81)]),
    ("80-81", [PortBinding("", None, 80), PortBinding("", None, 81)]),
    ("9090-9092:80", [PortBinding("", 9090, 80, "tcp", 9092)]),
    ("published=8080,target=80,protocol=udp", [PortBinding("", 8080, 80, "udp")]),
    ("target=80", [PortBinding("", None, 80, "tcp")]),
    ("published=8080,target=80,host_ip=127.0.0.1", [PortBinding("127.0.0.1", 8080, 80, "tcp")]),
])
def test_parse_forms(spec: str, expected: list[PortBinding]) -> None:
    assert parse_publish([spec]) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("8080:80/xyz", "invalid proto: xyz"),
    ("foo:80", "invalid hostPort: foo"),
    ("8080:bar", "invalid containerPort: bar"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
    ("8000:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000"),
    ("9090-9089:80", "invalid hostPort: 9090-9089"),
    ("9090-:80", "invalid hostPort: 9090-"),
    ("-9090:80", "invalid hostPort: -9090"),
    ("70000:80", "invalid hostPort: 70000"),
    ("published=8080", "missing required target port"),
    ("target=80,bogus", "invalid publish opts format (should be name=value but got 'bogus')"),
])
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_publish([spec])
    assert e.value.message == message


def test_publish_all_skips_published_and_sorts() -> None:
    explicit = parse_publish(["8080:80"])
    assert publish_all(["443/tcp", "80/tcp", "53/udp"], explicit) == [
        PortBinding("", None, 53, "udp"), PortBinding("", None, 443, "tcp")]


WILD = [PublishedPort("0.0.0.0", 8080, 80), PublishedPort("::", 8080, 80)]


def test_display_ports() -> None:
    assert display_ports(WILD) == "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
    assert display_ports([PublishedPort("1.2.3.4", 7766, 6677)], ["9988/udp"]) == \
        "9988/udp, 1.2.3.4:7766->6677/tcp"
    same = [PublishedPort("::1", 9998, 9998, "udp"), PublishedPort("::1", 9999, 9999, "udp")]
    assert display_ports(same) == "[::1]:9998-9999->9998-9999/udp"
    assert display_ports([], ["80/tcp", "81/tcp", "82/tcp"]) == "80-82/tcp"


def test_port_lines_and_inspect() -> None:
    published = [*WILD, PublishedPort("127.0.0.1", 5353, 53, "udp")]
    assert port_lines(published, "c") == [
        "53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080"]
    assert port_lines(published, "c", "80") == ["0.0.0.0:8080", "[::]:8080"]
    with pytest.raises(NoPublicPort, match="No public port '81' published for c"):
        port_lines(published, "c", "81")
    assert inspect_ports(WILD, ["80/tcp", "443/tcp"]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
        "443/tcp": None,
    }
