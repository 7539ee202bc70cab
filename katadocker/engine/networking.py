"""A container's networking settings: validated at create, turned into the guest's files at start,
changed by ``network connect``/``disconnect`` while the container is stopped.

Where things live in the container record (docker's shapes):

- ``HostConfig.NetworkMode`` (the network's name as given, ``none`` or ``bridge``), ``HostConfig.Dns``,
  ``DnsSearch``, ``DnsOptions`` and ``ExtraHosts`` (``name:ip``, ``host-gateway`` allowed);
- ``NetworkingConfig.EndpointsConfig[<network>]``: ``Aliases``, ``IPAMConfig.IPv4Address`` and
  ``MacAddress`` of the container's endpoint on that network.

A katadocker VM has one network interface, so a container is on exactly one network (or ``none``):
``connect`` to a second network is refused until the first is disconnected. Attaching (address, TAP,
name entries) happens when the monitor starts the container (`katadocker.network.networks.attach`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from katadocker.config import Settings
from katadocker.errors import ClientError, Conflict, InvalidArgument, KatadockerError
from katadocker.network import ipam

#: ``--add-host NAME:host-gateway`` resolves to the host's address as seen from the container.
HOST_GATEWAY = "host-gateway"
#: Modes without a network of their own (no address, no published ports).
NO_NETWORK = ("none", "host")
LOCALHOST_LINES = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                   "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
                   "ff02::2\tip6-allrouters")


@dataclass
class NetworkOptions:
    """The ``run``/``create`` networking flags beyond ``--network``, as parsed by the CLI."""

    aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    mac: str | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)


def _check_ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidArgument(f"{value} is not an ip address" if what == "dns"
                              else f"invalid IP address in {what}: {value}") from None


def parse_extra_host(spec: str) -> tuple[str, str]:
    """``name:ip`` or ``name=ip`` (docker's ``ValidateExtraHost``) -> (name, ip or ``host-gateway``)."""
    sep = "=" if "=" in spec else ":"
    name, found, ip = spec.partition(sep)
    ip = ip.strip("[]")
    if not found or not name or not ip:
        raise InvalidArgument(f"bad format for add-host: {spec!r}")
    return name, ip if ip == HOST_GATEWAY else _check_ip(ip, "add-host")


def create_settings(settings: Settings, network: str,
                    opts: NetworkOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate ``--network`` and the other flags; (HostConfig entries, NetworkingConfig) for the record.

    Raises docker's errors: `NoSuchNetwork` for an unknown network, `InvalidArgument` for ``--ip``
    or ``--network-alias`` outside a user-defined network, a bad address, MAC or ``--add-host``.
    """
    from katadocker.network import networks

    mode = network or "bridge"
    if mode not in NO_NETWORK:
        networks.get(settings, mode)  # NoSuchNetwork ("network x not found") as docker's create
    user_defined = mode not in (*NO_NETWORK, networks.DEFAULT_NETWORK)
    if opts.ip and not user_defined:
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    if opts.aliases and not user_defined:
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined "
                              "networks")
    if opts.ip:
        _check_ip(opts.ip, "--ip")
    if opts.mac:
        networks.check_mac(opts.mac)
    for server in opts.dns:
        _check_ip(server, "dns")
    extra = [":".join(parse_extra_host(h)) for h in opts.extra_hosts]
    host_config = {"Dns": list(opts.dns), "DnsOptions": list(opts.dns_options),
                   "DnsSearch": list(opts.dns_search), "ExtraHosts": extra or None}
    endpoints: dict[str, Any] = {}
    if mode not in NO_NETWORK:
        endpoints[mode] = endpoint_config(opts.aliases, opts.ip, opts.mac)
    return host_config, {"EndpointsConfig": endpoints}


def endpoint_config(aliases: list[str], ip: str | None, mac: str | None) -> dict[str, Any]:
    """Docker's ``EndpointSettings`` as a user configures it."""
    return {"IPAMConfig": {"IPv4Address": ip} if ip else None, "Links": None,
            "Aliases": list(aliases) or None, "MacAddress": mac or ""}


def endpoint_of(config: dict[str, Any], network: str) -> dict[str, Any]:
    """The configured endpoint of the container on `network` ({} if none was configured)."""
    return ((config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).get(network) or {}


def attach_options(config: dict[str, Any], network: str) -> dict[str, Any]:
    """Keyword arguments for `networks.attach` from the container's configured endpoint."""
    ep = endpoint_of(config, network)
    return {"aliases": list(ep.get("Aliases") or []),
            "ip": (ep.get("IPAMConfig") or {}).get("IPv4Address") or None,
            "mac": ep.get("MacAddress") or None}


# --- the guest's /etc files -----------------------------------------------------------------------

def host_address(ip: str, prefix: int, gateway: str) -> str:
    """The host as the container reaches it (``host-gateway``): the host end of the network's uplink."""
    subnet = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
    return str(ipam.transfer_link(subnet, ipaddress.IPv4Address(gateway))[1].ip)


def hosts_file(hostname: str, attachment: Any, extra_hosts: list[str] | None) -> str:
    """The guest's /etc/hosts: docker's localhost lines, ``--add-host`` entries, then the container's
    own address and hostname. Other containers' names are served by the network's DNS responder."""
    lines = list(LOCALHOST_LINES)
    for entry in extra_hosts or []:
        name, ip = parse_extra_host(entry)
        if ip == HOST_GATEWAY:
            if attachment is None:
                continue  # --network none: there is no host to reach
            ip = host_address(attachment.ip, attachment.prefix, attachment.gateway)
        lines.append(f"{ip}\t{name}")
    if attachment is not None:
        lines.append(f"{attachment.ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_conf(attachment: Any, dns: list[str] | None, search: list[str] | None,
                options: list[str] | None) -> str:
    """The guest's /etc/resolv.conf: the network's name server (the gateway) first, so containers find
    each other by name, then ``--dns`` servers (else the host's usable ones); ``search``/``options``."""
    servers: list[str] = []
    if attachment is not None:
        servers = [attachment.gateway, *dns] if dns else list(attachment.dns)
    lines = [f"search {' '.join(search)}"] if search else []
    lines += [f"nameserver {s}" for s in dict.fromkeys(servers)]
    if options:
        lines.append(f"options {' '.join(options)}")
    return "".join(line + "\n" for line in lines)


def dns_names(network: str, name: str, container_id: str, aliases: list[str] | None) -> list[str] | None:
    """Inspect's ``DNSNames`` of an endpoint: what the network's DNS answers for (None on ``bridge``,
    where docker resolves no names)."""
    from katadocker.network.networks import DEFAULT_NETWORK

    if network in (*NO_NETWORK, DEFAULT_NETWORK):
        return None
    return list(dict.fromkeys([name.lstrip("/"), *(aliases or []), container_id[:12]]))


def complete_endpoint(endpoint: dict[str, Any], config: dict[str, Any], network: str,
                      running: bool) -> dict[str, Any]:
    """Add what the user configured (``IPAMConfig``, ``Aliases``) and, while attached, ``DNSNames``
    to inspect's view of the container's endpoint on `network`; returns `endpoint`."""
    configured = endpoint_of(config, network)
    endpoint["IPAMConfig"] = configured.get("IPAMConfig")
    endpoint["Aliases"] = configured.get("Aliases")
    if not endpoint["MacAddress"]:
        endpoint["MacAddress"] = configured.get("MacAddress") or ""
    if running:
        endpoint["DNSNames"] = dns_names(network, config["Name"], config["Id"], configured.get("Aliases"))
    return endpoint


def publish_failed(error: KatadockerError, container_name: str, endpoint_id: str) -> Conflict:
    """Docker 28's text for a port that cannot be published (``…: Bind for 0.0.0.0:8080 failed: port
    is already allocated``)."""
    return Conflict(f"failed to set up container networking: driver failed programming external "
                    f"connectivity on endpoint {container_name.lstrip('/')} ({endpoint_id}): {error.message}")


def published_ports(settings: Settings, ref: str, private_port: str | None = None) -> list[Any]:
    """What the container's relays listen on (`PublishedPort`s; none unless it runs), after checking
    `private_port` the way ``docker port`` does (``Error: invalid port (x)``)."""
    from katadocker.engine.container_view import runtime_info
    from katadocker.engine.containers import get
    from katadocker.network.ports import PublishedPort

    if private_port is not None:
        number = private_port.partition("/")[0]
        if not number.isdigit() or int(number) > 65535:
            raise ClientError(f'Error: invalid port ({number}): strconv.ParseUint: parsing "{number}": '
                              "invalid syntax")
    record = get(settings, ref)
    return [PublishedPort(**p) for p in runtime_info(record).get("Ports", [])]


# --- network connect / disconnect -----------------------------------------------------------------

@contextmanager
def _stopped(settings: Settings, ref: str, verb: str) -> Iterator[Any]:
    """The record of stopped container `ref`, held under its lock; saved (config) on a clean exit."""
    from katadocker.engine.containers import store_of
    from katadocker.state.containers import reconcile

    store = store_of(settings)
    record = store.lookup(ref)
    with store.lock(record.id):
        record = reconcile(store, store.load(record.id))
        if record.running:
            raise Conflict(f"katadocker cannot {verb} the running container {record.name}: stop it first")
        yield record
        store.save_config(record)


def connect(settings: Settings, ref: str, network: str, aliases: list[str], ip: str | None) -> None:
    """``network connect``: put a stopped container on `network` (its only one, see the module doc)."""
    from katadocker.network import networks

    name = networks.get(settings, network)["Name"]
    if ip and name == networks.DEFAULT_NETWORK:
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    if ip:
        _check_ip(ip, "--ip")
    with _stopped(settings, ref, f"connect to {name}") as record:
        host = record.config["HostConfig"]
        current = host.get("NetworkMode") or "bridge"
        if current == name:
            raise Conflict(f"endpoint with name {record.name} already exists in network {name}")
        if current == "host":
            raise Conflict("container cannot be disconnected from host network or connected to host network")
        if current not in NO_NETWORK:
            raise Conflict(f"container {record.name} is already on network {current}: a katadocker VM has "
                           f"one network interface, disconnect it from {current} first")
        host["NetworkMode"] = name
        record.config["NetworkingConfig"] = {"EndpointsConfig": {name: endpoint_config(aliases, ip, None)}}


def disconnect(settings: Settings, ref: str, network: str, force: bool) -> None:
    """``network disconnect``: take a stopped container off `network` (it is then on ``none``);
    with `force`, a container not on `network` is no error."""
    from katadocker.network import networks

    name = networks.get(settings, network)["Name"]
    with _stopped(settings, ref, f"disconnect from {name}") as record:
        host = record.config["HostConfig"]
        if (host.get("NetworkMode") or "bridge") != name:
            if force:
                return
            raise Conflict(f"container {record.id} is not connected to network {name}")
        networks.detach(settings, name, record.id)
        host["NetworkMode"] = "none"
        record.config["NetworkingConfig"] = {"EndpointsConfig": {}}
