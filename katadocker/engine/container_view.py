"""What `ps` and `inspect` show of a container: docker's Engine API shapes, built from a record.

`summary` is docker's ``ContainerSummary`` (what ``GET /containers/json`` returns, and what the CLI's
ps formatter reads); `inspect_document` is ``ContainerInspectResponse``. The STATUS text and its
human durations are computed here, as docker's daemon does.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from katadocker.errors import InvalidArgument
from katadocker.state import clock
from katadocker.state.containers import STATUSES, ContainerRecord
from katadocker.units import human_duration

FILTER_KEYS = ("ancestor", "before", "exited", "id", "label", "name", "since", "status")


def _since(ts: str, now_ns: int) -> float:
    return max(0.0, (now_ns - clock.parse_ns(ts)) / 1e9)


def status_text(record: ContainerRecord, now_ns: int | None = None) -> str:
    """docker's STATUS column: ``Up 3 seconds``, ``Exited (0) 2 minutes ago``, ``Created``…"""
    now = clock.now_ns() if now_ns is None else now_ns
    st = record.state
    status = st["Status"]
    if status in ("running", "paused"):
        text = f"Up {human_duration(_since(st['StartedAt'], now))}"
        return text + " (Paused)" if status == "paused" else text
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if status == "created" or st.get("FinishedAt", clock.ZERO_TIME) == clock.ZERO_TIME:
        return "Created"
    return f"Exited ({st['ExitCode']}) {human_duration(_since(st['FinishedAt'], now))} ago"


def command_text(record: ContainerRecord) -> str:
    """The daemon's Command: Path and Args, args with a space single-quoted."""
    args = [f"'{a}'" if " " in a else a for a in record.config["Args"]]
    return " ".join([record.config["Path"], *args])


def upper_size(record: ContainerRecord) -> int:
    """Bytes in the container's writable layer (docker's SizeRw)."""
    total = 0
    for dirpath, _dirs, files in os.walk(record.upper):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


def runtime_info(record: ContainerRecord) -> dict[str, Any]:
    """What the monitor recorded at start (published ports, network attachment); {} if nothing."""
    if not record.running:
        return {}
    try:
        return json.loads(record.runtime_path.read_text())
    except (OSError, ValueError):
        return {}


def _published(record: ContainerRecord) -> list[Any]:
    from katadocker.network.ports import PublishedPort

    return [PublishedPort(**p) for p in runtime_info(record).get("Ports", [])]


def summary(record: ContainerRecord, size: bool = False, image_size: int = 0) -> dict[str, Any]:
    """docker's ContainerSummary for `ps`."""
    cfg = record.config
    ports = [{"IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto}
             for p in _published(record)]
    for key in (cfg["Config"].get("ExposedPorts") or {}) if record.running else ():  # stopped: none
        number, _, proto = key.partition("/")
        published = any(p["PrivatePort"] == int(number) and p["Type"] == proto for p in ports) \
            if number.isdigit() else True
        if not published:
            ports.append({"PrivatePort": int(number), "Type": proto})
    out: dict[str, Any] = {
        "Id": record.id,
        "Names": [cfg["Name"]],
        "Image": cfg["Config"]["Image"],
        "ImageID": cfg["Image"],
        "Command": command_text(record),
        "Created": clock.parse_ns(cfg["Created"]) // 1_000_000_000,
        "Ports": ports,
        "Labels": cfg["Config"].get("Labels") or {},
        "State": record.status,
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": cfg["HostConfig"].get("NetworkMode", "bridge")},
        "NetworkSettings": {"Networks": _networks(record)},
        "Mounts": _mounts(record),
    }
    if size:
        out["SizeRw"] = upper_size(record)
        out["SizeRootFs"] = out["SizeRw"] + image_size
    return out


def _mounts(record: ContainerRecord) -> list[dict[str, Any]]:
    from katadocker.engine.mounts import inspect_mounts
    from katadocker.state.paths import StateRoot

    # a record lives in <root>/containers/<id>
    return inspect_mounts(StateRoot(record.dir.parent.parent).volumes, record.config)


def _networks(record: ContainerRecord) -> dict[str, Any]:
    att = runtime_info(record).get("Attachment")
    mode = record.config["HostConfig"].get("NetworkMode", "bridge")
    if mode == "none":
        return {"none": _endpoint(None)}
    from katadocker.engine.networking import complete_endpoint

    return {mode: complete_endpoint(_endpoint(att), record.config, mode, running=att is not None)}


def _endpoint(att: dict[str, Any] | None) -> dict[str, Any]:
    att = att or {}
    return {
        "IPAMConfig": None, "Links": None, "Aliases": att.get("aliases") or None,
        "MacAddress": att.get("mac", ""), "DriverOpts": None, "GwPriority": 0,
        "NetworkID": att.get("network_id", ""), "EndpointID": att.get("endpoint_id", ""),
        "Gateway": att.get("gateway", ""), "IPAddress": att.get("ip", ""),
        "IPPrefixLen": att.get("prefix", 0), "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None,
    }


def inspect_document(record: ContainerRecord, size: bool = False) -> dict[str, Any]:
    """docker's ContainerInspectResponse, fields in docker's order."""
    from katadocker.network.ports import inspect_ports

    cfg = record.config
    st = record.state
    status = st["Status"]
    networks = _networks(record)
    primary = next(iter(networks.values()))
    doc: dict[str, Any] = {
        "Id": record.id,
        "Created": cfg["Created"],
        "Path": cfg["Path"],
        "Args": cfg["Args"],
        "State": {
            "Status": status,
            "Running": status in ("running", "paused"),
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(st.get("OOMKilled")),
            "Dead": status == "dead",
            "Pid": int(st.get("Pid") or 0),
            "ExitCode": int(st.get("ExitCode") or 0),
            "Error": st.get("Error", ""),
            "StartedAt": st.get("StartedAt", clock.ZERO_TIME),
            "FinishedAt": st.get("FinishedAt", clock.ZERO_TIME),
        },
        "Image": cfg["Image"],
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": str(record.log_path),
        "Name": cfg["Name"],
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": cfg.get("Platform", "linux"),
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": cfg["HostConfig"],
        "GraphDriver": {"Data": {"UpperDir": str(record.upper), "WorkDir": str(record.work),
                                 "MergedDir": str(record.rootfs)}, "Name": "overlay"},
    }
    if size:
        doc["SizeRw"] = upper_size(record)
        doc["SizeRootFs"] = doc["SizeRw"]
    doc["Mounts"] = _mounts(record)
    doc["Config"] = cfg["Config"]
    doc["NetworkSettings"] = {
        "Bridge": "", "SandboxID": "", "SandboxKey": "",
        "Ports": inspect_ports(_published(record),
                               (cfg["Config"].get("ExposedPorts") or {}) if record.running else ()),
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": primary["EndpointID"], "Gateway": primary["Gateway"],
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": primary["IPAddress"],
        "IPPrefixLen": primary["IPPrefixLen"], "IPv6Gateway": "", "MacAddress": primary["MacAddress"],
        "Networks": networks,
    }
    return doc


# --- ps filters -----------------------------------------------------------------------------------

def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """``-f key=value`` flags → {key: [values]}; docker's errors for a bad key or value."""
    out: dict[str, list[str]] = {}
    for v in values:
        key, sep, value = v.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f'invalid argument "{v}" for "-f, --filter" flag: '
                                  "bad format of filter (expected name=value)")
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "status" and value not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={value}'")
        if key == "exited" and not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={value}'")
        out.setdefault(key, []).append(value)
    return out


def _search(pattern: str, text: str) -> bool:
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def label_match(record: ContainerRecord, spec: str) -> bool:
    """``key`` (present) or ``key=value`` (equal)."""
    labels = record.config["Config"].get("Labels") or {}
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def matches(record: ContainerRecord, filters: dict[str, list[str]], ancestor_ids: set[str] | None) -> bool:
    """docker's ps filter semantics: values of one key OR'ed, keys AND'ed (labels all AND'ed)."""
    if "id" in filters and not any(_search(v, record.id) for v in filters["id"]):
        return False
    if "name" in filters and not any(_search(v, record.name) or _search(v, "/" + record.name)
                                     for v in filters["name"]):
        return False
    if "status" in filters and record.status not in filters["status"]:
        return False
    if "label" in filters and not all(label_match(record, v) for v in filters["label"]):
        return False
    if "exited" in filters:
        started = record.state.get("StartedAt", clock.ZERO_TIME) != clock.ZERO_TIME
        if record.running or not started or str(record.state["ExitCode"]) not in filters["exited"]:
            return False
    return not (ancestor_ids is not None and record.config["Image"] not in ancestor_ids)
