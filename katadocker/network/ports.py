"""Docker's published-port grammar and the texts that show published ports.

Parsing follows docker's ``nat.ParsePortSpec`` and the CLI's long-form conversion, with docker's
error texts; every error is an `InvalidArgument` (``docker run`` exits 125 on it). Rendering follows
docker's ``DisplayablePorts`` (``ps`` PORTS column), ``docker port`` and inspect's
``NetworkSettings.Ports``.

Two kinds of values:

- `PortBinding` is what the user asked for: host IP ("" = every address), a host port or None (a
  random free port), the container port and the protocol.
- `PublishedPort` is what a relay actually listens on: a concrete host IP (``0.0.0.0`` and ``::``
  for a wildcard binding, one entry per listening socket) and a concrete host port. Rendering
  takes these, so what ``ps`` and ``port`` show is what is listening.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from katadocker.errors import InvalidArgument, NoPublicPort

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortBinding:
    """One requested publication: ``host_ip:host_port -> container_port/proto``.

    `host_ip` is "" for every address (IPv4 and IPv6). `host_port` None means a random free port;
    with `host_port_end` set, the host port is the first free one in ``host_port..host_port_end``
    (docker's ``-p 9090-9092:80``).
    """

    host_ip: str
    host_port: int | None
    container_port: int
    proto: str = "tcp"
    host_port_end: int | None = None

    @property
    def key(self) -> str:
        """Docker's port key, e.g. ``80/tcp``."""
        return f"{self.container_port}/{self.proto}"


@dataclass(frozen=True)
class PublishedPort:
    """One listening socket of a relay: concrete host address and port, and where it leads."""

    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    @property
    def host_address(self) -> str:
        """``0.0.0.0:8080`` or ``[::]:8080`` (Go's ``net.JoinHostPort``)."""
        return join_host_port(self.host_ip, str(self.host_port))


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_publish(specs: Iterable[str]) -> list[PortBinding]:
    """Parse every ``-p/--publish`` value (short and long forms) into bindings, in order."""
    out: list[PortBinding] = []
    for spec in specs:
        out.extend(parse_port_spec(_standard_notation(spec) if "=" in spec else spec))
    return out


def _standard_notation(spec: str) -> str:
    """Docker's ``convertToStandardNotation``: ``published=8080,target=80,protocol=udp`` -> ``8080:80/udp``.
    """
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = value
    if "target" not in params:
        raise InvalidArgument("missing required target port")
    head = f"{params['host_ip']}:" if "host_ip" in params else ""
    return f"{head}{params.get('published', '')}:{params['target']}/{params['protocol']}"


def parse_port_spec(raw: str) -> list[PortBinding]:
    """Parse one short-form spec (``[ip:][hostPort:]containerPort[/proto]``), docker's ParsePortSpec."""
    host_ip, host_port, container_port = _split_parts(raw)
    proto, container_port = _split_proto_port(container_port)
    if host_ip.startswith("["):
        if not host_ip.endswith("]"):
            raise InvalidArgument(f"invalid IP address {host_ip}: missing ']' in address")
        host_ip = host_ip[1:-1]
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    if not container_port:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument(
                f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    count = end - start + 1
    bindings = []
    for i in range(count):
        hp: int | None = None
        hp_end: int | None = None
        if host_port and host_start + i != 0:  # host port 0 means "pick one", as in docker
            hp = host_start + i
            if count == 1 and host_start != host_end:
                hp_end = host_end
        bindings.append(PortBinding(host_ip, hp, start + i, proto, hp_end))
    return bindings


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_proto_port(raw: str) -> tuple[str, str]:
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


_UINT = re.compile(r"[0-9]+")


def parse_port_range(text: str) -> tuple[int, int]:
    """``80`` -> (80, 80); ``8000-8010`` -> (8000, 8010). ValueError on anything else."""
    first, sep, last = text.partition("-")
    if not _UINT.fullmatch(first) or (sep and not _UINT.fullmatch(last)):
        raise ValueError(text)
    start = int(first)
    end = int(last) if sep else start
    if start > 65535 or end > 65535 or end < start:
        raise ValueError(text)
    return start, end


def parse_exposed_key(key: str) -> tuple[int, int, str]:
    """An ``ExposedPorts`` key or ``--expose`` value (``80``, ``80/tcp``, ``7000-7001/udp``)."""
    proto, ports = _split_proto_port(key)
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        start, end = parse_port_range(ports)
    except ValueError:
        raise InvalidArgument(f"invalid range format for --expose: {key}") from None
    return start, end, proto


def publish_all(exposed: Iterable[str], bindings: Iterable[PortBinding]) -> list[PortBinding]:
    """``-P``: a random host port on every address for each exposed port not already published."""
    taken = {b.key for b in bindings}
    out: list[PortBinding] = []
    for key in exposed:
        start, end, proto = parse_exposed_key(key)
        for port in range(start, end + 1):
            binding = PortBinding("", None, port, proto)
            if binding.key not in taken:
                taken.add(binding.key)
                out.append(binding)
    return sorted(out, key=lambda b: (b.container_port, b.proto))


def exposed_ports(bindings: Iterable[PortBinding]) -> dict[str, dict]:
    """Published ports are also exposed: the ``Config.ExposedPorts`` entries for `bindings`."""
    return {b.key: {} for b in bindings}


# ---------------------------------------------------------------------------------------------
# Rendering


def join_host_port(host: str, port: str) -> str:
    """Go's ``net.JoinHostPort``: brackets around hosts containing a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def display_ports(published: Iterable[PublishedPort], exposed: Iterable[str] = ()) -> str:
    """The ``ps`` PORTS column (docker's ``DisplayablePorts``).

    `exposed` holds exposed port keys (``80/tcp``); those without a publication render bare.
    """
    published = list(published)
    entries: list[tuple[int, str, int, str]] = [
        (p.container_port, p.host_ip, p.host_port, p.proto) for p in published]
    keys = {p.key for p in published}
    for key in exposed:
        start, end, proto = parse_exposed_key(key)
        entries.extend((port, "", 0, proto) for port in range(start, end + 1)
                       if f"{port}/{proto}" not in keys)
    entries.sort()

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    host_mappings: list[str] = []
    for private, ip, public, proto in entries:
        group_key = proto
        if ip:
            if public != private:
                host_mappings.append(f"{join_host_port(ip, str(public))}->{private}/{proto}")
                continue
            group_key = f"{ip}/{proto}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_form_group(group_key, *group))
            groups[group_key] = [private, private]
    result.extend(_form_group(key, *group) for key, group in groups.items())
    return ", ".join(result + host_mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    text = str(first) if first == last else f"{first}-{last}"
    if ip:
        text = f"{join_host_port(ip, text)}->{text}"
    return f"{text}/{proto}"


def inspect_ports(published: Iterable[PublishedPort], exposed: Iterable[str] = ()) -> dict[str, list | None]:
    """Inspect's ``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp", "HostPort"}], "443/tcp": None}``."""
    out: dict[str, list | None] = {}
    for key in exposed:
        start, end, proto = parse_exposed_key(key)
        for port in range(start, end + 1):
            out.setdefault(f"{port}/{proto}", None)
    for p in published:
        entry = out.get(p.key) or []
        entry.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
        out[p.key] = entry
    return out


def port_lines(published: Iterable[PublishedPort], container: str, port: str | None = None) -> list[str]:
    """``docker port CONTAINER [PRIVATE_PORT[/PROTO]]`` output lines, naturally sorted.

    Without `port`: ``80/tcp -> 0.0.0.0:8080`` per binding. With it: ``0.0.0.0:8080`` per binding of
    that port (proto defaults to tcp); `NoPublicPort` when it has none.
    """
    published = list(published)
    if port is None:
        lines = [f"{p.key} -> {p.host_address}" for p in published]
    else:
        number, _, proto = port.partition("/")
        key = f"{number}/{(proto or 'tcp').lower()}"
        lines = [p.host_address for p in published if p.key == key]
        if not lines:
            raise NoPublicPort(port, container)
    return sorted(lines, key=_natural_key)


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """Natural order (``sortorder.NaturalLess``): digit runs compare as numbers."""
    return [(0, int(tok)) if tok.isdigit() else (1, tok) for tok in re.findall(r"\d+|\D+", text)]
