"""katadocker networks: records, lifecycle, and container attachments.

A network is a record ``<state>/networks/<name>.json`` in the shape of docker's ``network inspect``
(plus a private ``Katadocker`` key) and, while it exists, these host objects:

- the namespace ``kd-<id[:12]>`` holding the bridge ``br0`` (gateway address) and the containers' TAPs;
- unless ``--internal``: the veth ``kd<id[:10]>`` on the host, peered with ``uplink`` in the namespace
  over the transfer /30 at the end of the subnet (see `ipam`), a host route to the subnet through it,
  the outbound MASQUERADE of `nat` (when nft or iptables exists; otherwise none, and the record's
  ``Options`` say so), and inside the namespace the `isolation` rule that keeps other networks out.

Host objects are (re)built from the record whenever a container attaches, so a reboot (which empties
``/run/netns``) needs no repair step. `remove` deletes them all. Every mutation holds the lock
``networks`` (one lock: subnet choice needs the view of every network anyway).

Name resolution: each attached container's name, aliases and short ID resolve to its address for
containers on the same network. The per-container monitors serve this from the record through
`katadocker.network.dns` on the gateway address; `hosts_entries` gives the same data for
``/etc/hosts``.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from katadocker.config import Settings
from katadocker.engine import events
from katadocker.errors import Conflict, InvalidArgument, NetworkError, NoSuchNetwork
from katadocker.network import ipam, isolation, nat, netns
from katadocker.state.atomic import read_json, write_json
from katadocker.state.lock import locked
from katadocker.state.paths import StateRoot

DEFAULT_NETWORK = "bridge"
DEFAULT_MTU = 1500
MTU_OPTION = "com.docker.network.driver.mtu"
NAT_OPTION = "katadocker.nat"
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


@dataclass(frozen=True)
class Attachment:
    """What a container needs to join a network: its VM's NIC on the TAP `tap_name` of the namespace
    `netns_name` (netns.open_tap), and the guest ``ip/prefix`` via `gateway` with `mtu` and `dns` as
    nameservers."""

    network: str
    network_id: str
    endpoint_id: str
    netns_name: str
    tap_name: str
    ip: str
    prefix: int
    gateway: str
    mac: str
    mtu: int
    dns: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Records


def _path(settings: Settings, name: str) -> Path:
    return settings.state.networks / f"{name}.json"


@contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    with locked(settings.state.locks, "networks"):
        yield


def _all(settings: Settings) -> list[dict]:
    d = settings.state.networks
    if not d.exists():
        return []
    return [read_json(p) for p in sorted(d.glob("*.json"))]


def _save(settings: Settings, record: dict) -> None:
    write_json(_path(settings, record["Name"]), record)


def _find(settings: Settings, ref: str) -> dict:
    """Docker's lookup: exact name, exact ID, then a unique ID prefix."""
    records = _all(settings)
    for key in ("Name", "Id"):
        for r in records:
            if r[key] == ref:
                return r
    matches = [r for r in records if ref and r["Id"].startswith(ref)]
    if len(matches) > 1:
        raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
    if not matches:
        raise NoSuchNetwork(ref)
    return matches[0]


def get(settings: Settings, ref: str) -> dict:
    """The record of network `ref` (name, ID or ID prefix); `NoSuchNetwork` if none.

    ``bridge`` is created on first use, so ``network inspect bridge`` always works.
    """
    if ref == DEFAULT_NETWORK:
        return ensure_default(settings)
    return _find(settings, ref)


def list_networks(settings: Settings) -> list[dict]:
    """Every network record (the default bridge included once it exists), sorted by name."""
    return sorted(_all(settings), key=lambda r: r["Name"])


def inspect_view(record: dict) -> dict:
    """The record as ``docker network inspect`` shows it: docker's key order, private keys dropped."""
    keys = ("Name", "Id", "Created", "Scope", "Driver", "EnableIPv4", "EnableIPv6", "IPAM", "Internal",
            "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels")
    return {k: record[k] for k in keys}


def _private(record: dict) -> dict:
    return record["Katadocker"]


def _subnet(record: dict) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(record["IPAM"]["Config"][0]["Subnet"])


def _gateway(record: dict) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(record["IPAM"]["Config"][0]["Gateway"])


# ---------------------------------------------------------------------------------------------
# Lifecycle


def create(settings: Settings, name: str, subnet: str | None = None, gateway: str | None = None,
           internal: bool = False, labels: dict[str, str] | None = None, driver: str = "bridge",
           options: dict[str, str] | None = None) -> dict:
    """Create network `name` with its namespace, bridge, uplink and NAT; return its record.

    Raises `Conflict` if the name exists or `subnet` overlaps another network, `InvalidArgument`
    for a bad name, driver, subnet or gateway, `NetworkError` if the host refuses; on failure
    nothing is left behind.
    """
    if driver != "bridge":
        raise InvalidArgument(f'plugin "{driver}" not found' if driver not in ("host", "null", "overlay")
                              else f'katadocker supports only the "bridge" driver, not "{driver}"')
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'invalid network name "{name}": must match [a-zA-Z0-9][a-zA-Z0-9_.-]*')
    with _lock(settings):
        records = _all(settings)
        if any(r["Name"] == name for r in records):
            raise Conflict(f"network with name {name} already exists")
        taken = [_subnet(r) for r in records]
        if subnet is not None:
            net = ipam.check_subnet(subnet, taken)
        else:
            net = ipam.choose_subnet(taken, ipam.host_routes(), default_bridge=name == DEFAULT_NETWORK)
        gw = ipam.gateway_for(net, gateway)
        options = dict(options or {})
        try:
            mtu = int(options.get(MTU_OPTION, DEFAULT_MTU))
        except ValueError:
            raise InvalidArgument(f"invalid MTU {options[MTU_OPTION]!r}") from None
        if name == DEFAULT_NETWORK:
            options.setdefault("com.docker.network.bridge.default_bridge", "true")
        net_id = secrets.token_hex(32)
        backend = None if internal else nat.available_backend()
        if not internal:
            options[NAT_OPTION] = backend or "none: neither nft nor iptables is installed, no outbound NAT"
        record = {
            "Name": name, "Id": net_id,
            "Created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "Scope": "local", "Driver": "bridge", "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": str(net), "Gateway": str(gw)}]},
            "Internal": internal, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": {}, "Options": options, "Labels": dict(labels or {}),
            "Katadocker": {"Netns": f"kd-{net_id[:12]}", "HostLink": "" if internal else f"kd{net_id[:10]}",
                           "Nat": backend or "", "Mtu": mtu, "Endpoints": {}},
        }
        try:
            _realize(record, _ip_forward(settings))
        except BaseException:
            _teardown(record)
            raise
        _save(settings, record)
        events.network(settings.state, "create", record)
        return record


def ensure_default(settings: Settings) -> dict:
    """The default ``bridge`` network, created on first use."""
    try:
        return _find(settings, DEFAULT_NETWORK)
    except NoSuchNetwork:
        pass
    try:
        return create(settings, DEFAULT_NETWORK)
    except Conflict:  # another command created it meanwhile
        return _find(settings, DEFAULT_NETWORK)


def _ip_forward(settings: Settings) -> bool:
    """docker's ``ip-forward`` setting (katadocker's config file; default true)."""
    return bool(settings.extra.get("ip-forward", True))


def _realize(record: dict, host_forwarding: bool = True) -> None:
    """Build (or rebuild, idempotently) the host objects of `record`; then mark them built
    (`_realized`)."""
    priv = _private(record)
    priv.pop("Realized", None)
    net, gw, mtu = _subnet(record), _gateway(record), priv["Mtu"]
    ns = priv["Netns"]
    netns.create(ns)
    netns.setup_bridge(ns, ipaddress.IPv4Interface(f"{gw}/{net.prefixlen}"), mtu)
    if not record["Internal"]:
        ns_side, host_side = ipam.transfer_link(net, gw)
        netns.add_uplink(ns, priv["HostLink"], host_side, ns_side, net, mtu, host_forwarding)
        if isolation.available():
            isolation.install(ns)
        if priv["Nat"]:
            nat.add(priv["Nat"], ns, str(net), priv["HostLink"])
    priv["Realized"] = _namespace_identity(ns)


def _namespace_identity(ns: str) -> str | None:
    """This boot's identity of the namespace `ns` (boot id + the namespace's inode), None if absent:
    a namespace deleted and re-made, or a reboot, gives a different one."""
    try:
        inode = (netns.NETNS_DIR / ns).stat().st_ino
        return f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}:{inode}"
    except OSError:
        return None


def _realized(record: dict) -> bool:
    """Whether `_realize` completed for the namespace that exists now and the host-side veth is still
    there. `attach` then skips rebuilding: rebuilding runs `nft` (isolation, NAT) and netlink round
    trips, ~0.2 s of every container start on a loaded 2-core host."""
    priv = _private(record)
    identity = priv.get("Realized")
    if identity is None or identity != _namespace_identity(priv["Netns"]):
        return False
    return record["Internal"] or Path("/sys/class/net", priv["HostLink"]).exists()


def _teardown(record: dict) -> None:
    """Remove every host object of `record`; tolerant of parts that are already gone."""
    priv = _private(record)
    errors = []
    if priv["Nat"]:
        try:
            nat.remove(priv["Nat"], priv["Netns"], str(_subnet(record)), priv["HostLink"])
        except NetworkError as e:
            errors.append(e.message)
    if priv["HostLink"]:
        netns.remove_host_link(priv["HostLink"])
    netns.remove(priv["Netns"])
    if errors:
        raise NetworkError("; ".join(errors))


def _drop_stale_endpoints(settings: Settings, record: dict) -> None:
    """Forget endpoints whose container no longer exists (its removal was interrupted)."""
    for cid in list(record["Containers"]):
        if not settings.state.container_dir(cid).exists():
            _forget(record, cid)


def remove(settings: Settings, ref: str) -> str:
    """Remove network `ref` and its host objects; return its name.

    Refused for ``bridge`` and while containers are attached (docker's texts).
    """
    with _lock(settings):
        record = _find(settings, ref)
        name = record["Name"]
        if name == DEFAULT_NETWORK:
            raise Conflict(f"{name} is a pre-defined network and cannot be removed")
        _drop_stale_endpoints(settings, record)
        if record["Containers"]:
            raise Conflict(f"error while removing network: network {name} id {record['Id']} "
                           "has active endpoints")
        _teardown(record)
        _path(settings, name).unlink(missing_ok=True)
        events.network(settings.state, "destroy", record)
        return name


def teardown_all(settings: Settings) -> list[str]:
    """Remove every network of this state root, ``bridge`` included, forgetting its endpoints
    (for uninstalling and for tests). Returns the names removed."""
    with _lock(settings):
        names = []
        for record in _all(settings):
            _teardown(record)
            _path(settings, record["Name"]).unlink(missing_ok=True)
            names.append(record["Name"])
        return names


def prune(settings: Settings, label_filters: list[str] | None = None) -> list[str]:
    """Remove every unused user network (matching all ``label=k`` / ``label=k=v`` filters); names removed."""
    removed = []
    for record in list_networks(settings):
        if record["Name"] == DEFAULT_NETWORK or not _labels_match(record["Labels"], label_filters or []):
            continue
        try:
            removed.append(remove(settings, record["Id"]))
        except (Conflict, NoSuchNetwork):
            continue
    return removed


def _labels_match(labels: dict[str, str], filters: list[str]) -> bool:
    for f in filters:
        key, sep, value = f.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Attachments


def _mac_for(ip: ipaddress.IPv4Address) -> str:
    """Docker's classic MAC: 02:42 then the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ip.packed)


def check_mac(mac: str) -> str:
    if not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
        raise InvalidArgument(f"invalid MAC address: {mac}")
    return mac.lower()


def host_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's nameservers usable from a container: IPv4, not loopback."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(fields[1])
            except ValueError:
                continue
            if addr.version == 4 and not addr.is_loopback:
                out.append(str(addr))
    return out


def attach(settings: Settings, network_name: str, container_id: str, container_name: str,
           aliases: list[str] | tuple[str, ...] = (), ip: str | None = None,
           mac: str | None = None) -> Attachment:
    """Join a container to a network: allocate its address, create its TAP, record the endpoint.

    Idempotent for the same container (returns the existing attachment, re-creating the TAP and the
    network's host objects if they are gone). The TAP is named ``tap<id[:11]>``. `dns` lists the
    gateway (the network's name server, served by the monitors) then the host's usable nameservers,
    which the gateway's REFUSED answers make resolvers fall through to.
    """
    container_name = container_name.lstrip("/")
    if network_name == DEFAULT_NETWORK:
        ensure_default(settings)
    with _lock(settings):
        record = _find(settings, network_name)
        _drop_stale_endpoints(settings, record)
        priv = _private(record)
        net, gw = _subnet(record), _gateway(record)
        existing = record["Containers"].get(container_id)
        connecting = existing is None
        if existing is None:
            for cid, ep in record["Containers"].items():
                if ep["Name"] == container_name:
                    raise Conflict(f"endpoint with name {container_name} already exists in network "
                                   f"{record['Name']} (container {cid[:12]})")
            used = [ipaddress.IPv4Interface(ep["IPv4Address"]).ip for ep in record["Containers"].values()]
            addr = ipam.allocate(net, gw, used, ip)
            existing = {"Name": container_name, "EndpointID": secrets.token_hex(32),
                        "MacAddress": check_mac(mac) if mac else _mac_for(addr),
                        "IPv4Address": f"{addr}/{net.prefixlen}", "IPv6Address": ""}
            record["Containers"][container_id] = existing
            priv["Endpoints"][container_id] = {"Aliases": list(aliases), "Tap": f"tap{container_id[:11]}"}
        endpoint = priv["Endpoints"][container_id]
        if not _realized(record):
            _realize(record, _ip_forward(settings))
        netns.add_tap(priv["Netns"], endpoint["Tap"], priv["Mtu"])
        _save(settings, record)
        if connecting:
            events.network(settings.state, "connect", record, container_id)
        dns = [str(gw)] + ([] if record["Internal"] else host_nameservers())
        return Attachment(
            network=record["Name"], network_id=record["Id"], endpoint_id=existing["EndpointID"],
            netns_name=priv["Netns"], tap_name=endpoint["Tap"],
            ip=str(ipaddress.IPv4Interface(existing["IPv4Address"]).ip), prefix=net.prefixlen,
            gateway=str(gw), mac=existing["MacAddress"], mtu=priv["Mtu"], dns=dns,
            aliases=list(endpoint["Aliases"]))


def _forget(record: dict, container_id: str) -> str | None:
    """Drop the endpoint from the record; return its TAP name (None if it was not attached)."""
    record["Containers"].pop(container_id, None)
    endpoint = _private(record)["Endpoints"].pop(container_id, None)
    return endpoint["Tap"] if endpoint else None


def detach(settings: Settings, network_name: str, container_id: str, delete_tap: bool = True) -> None:
    """Leave a network: delete the TAP (unless not `delete_tap`: a TAP a VM held goes with the VM,
    netns.unpersist_tap), release the address and the names. Idempotent."""
    with _lock(settings):
        try:
            record = _find(settings, network_name)
        except NoSuchNetwork:
            return
        tap = _forget(record, container_id)
        if tap and delete_tap:
            netns.remove_tap(_private(record)["Netns"], tap)
        _save(settings, record)
        if tap:
            events.network(settings.state, "disconnect", record, container_id)


def release_lost(state: StateRoot, runtime_path: Path, container_id: str) -> None:
    """Detach a container whose monitor died without detaching (``kill -9``): its TAP, address and
    names go at once rather than at ``rm``. Reads the monitor's ``runtime.json``; marks it Detached."""
    try:
        runtime = read_json(runtime_path)
    except (OSError, ValueError):
        return
    att = runtime.get("Attachment")
    if not att or runtime.get("Detached"):
        return
    try:
        detach(Settings(state=state, docker_config=Path("/nonexistent")), att["network"], container_id)
    except (NetworkError, OSError):
        return  # `rm` tries again (engine.containers.cleanup_after_crash)
    runtime["Detached"] = True
    write_json(runtime_path, runtime)


def hosts_entries(settings: Settings, network_name: str) -> list[tuple[str, list[str]]]:
    """``(ip, [name, aliases..., short id])`` for every container on the network, by address."""
    record = _find(settings, network_name)
    return entries_of(record)


def entries_of(record: dict) -> list[tuple[str, list[str]]]:
    """`hosts_entries` of an already loaded record."""
    endpoints = _private(record)["Endpoints"]
    out = []
    for cid, ep in record["Containers"].items():
        names = [ep["Name"], *endpoints.get(cid, {}).get("Aliases", []), cid[:12]]
        out.append((str(ipaddress.IPv4Interface(ep["IPv4Address"]).ip), list(dict.fromkeys(names))))
    return sorted(out, key=lambda e: ipaddress.IPv4Address(e[0]))


def record_path(settings: Settings, network_name: str) -> Path:
    """Where the record of `network_name` lives (the DNS responder watches its mtime)."""
    return _path(settings, network_name)

