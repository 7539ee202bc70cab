"""Leak checks for one katadocker state root: what a container or network no longer needs.

`find_leaks(root)` lists, as readable strings:

- TAPs in the namespaces of the root's networks whose container is not running, and endpoints
  (addresses, DNS names) in network records whose container is not running;
- monitor, QEMU and virtiofsd processes of the root whose container is gone or not running, and
  early VMs no monitor took over;
- listening sockets (TCP listen, bound UDP) held by such stray processes;
- namespaces and host veths of networks the root no longer has (pass the names seen earlier with
  `network_objects`).

Everything is read from /proc, /sys and the namespaces themselves; nothing is modified.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from katadocker.network import netns
from katadocker.state.containers import ContainerStore, reconcile
from katadocker.state.paths import StateRoot

HELPERS = ("katadocker.monitor", "qemu-system", "virtiofsd")
#: The owner `_helper_processes` gives an early VM's QEMU.
EARLY = "early"


def running_ids(root: Path) -> set[str]:
    """IDs of the root's containers that are running (after reconciling with their monitors)."""
    store = ContainerStore(StateRoot(root))
    return {r.id for r in (reconcile(store, rec) for rec in store.all()) if r.running}


def network_records(root: Path) -> list[dict]:
    d = StateRoot(root).networks
    return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))] if d.is_dir() else []


def network_objects(root: Path) -> set[str]:
    """``netns:<name>`` and ``link:<name>`` of every network the root has now."""
    out = set()
    for record in network_records(root):
        priv = record["Katadocker"]
        out.add(f"netns:{priv['Netns']}")
        if priv["HostLink"]:
            out.add(f"link:{priv['HostLink']}")
    return out


def network_taps(ns: str) -> list[str]:
    """The TAPs on the bridge of the network namespace `ns` (none when it is gone)."""
    if not netns.exists(ns):
        return []
    return [name for name in netns.bridge_ports(ns) if name.startswith("tap")]


def _open_paths(pid: int) -> list[str]:
    """The paths pid's open file descriptors name."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    out = []
    for fd in fds:
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def _helper_processes(root: Path) -> list[tuple[int, str, str]]:
    """(pid, helper kind, owner) of every helper process of `root`; the owner is a container id or
    EARLY. virtiofsd names paths under ROOT/containers/ID/ on its command line; a monitor gets its
    arguments on stdin and QEMU may have started as an early VM (vm/early.py), so those two are
    known by the files they hold open (a monitor's monitor.log and json log; QEMU's console log,
    under ROOT/tmp/early-PID/ until a monitor takes the VM over)."""
    out = []
    containers, early = f"{root}/containers/", f"{root}/tmp/early-"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv)
        kind = next((h for h in HELPERS if h in text), None)
        if kind is None:
            continue
        places = [text] if kind == "virtiofsd" else _open_paths(int(entry.name))
        owner = next((p.split(containers, 1)[1][:64] for p in places if containers in p), None)
        if owner is None and any(p.startswith(early) for p in places):
            owner = EARLY
        if owner is not None:
            out.append((int(entry.name), kind, owner))
    return out


def early_vms(root: Path) -> list[int]:
    """Pids of the QEMUs of `root` started as early VMs and not taken over by a monitor (yet)."""
    return [pid for pid, _, owner in _helper_processes(root) if owner == EARLY]


def _socket_inodes(pid: int) -> set[str]:
    return {target[8:-1] for target in _open_paths(pid) if target.startswith("socket:[")}


def listening_inodes() -> dict[str, str]:
    """Inode -> ``tcp:PORT``/``udp:PORT`` of the host namespace's listening TCP and bound UDP sockets."""
    out = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            state, inode = fields[3], fields[9]
            if proto.startswith("tcp") and state != "0A":  # TCP_LISTEN
                continue
            out[inode] = f"{proto.rstrip('6')}:{int(fields[1].rsplit(':', 1)[1], 16)}"
    return out


def find_leaks(root: Path, seen_networks: set[str] = frozenset()) -> list[str]:
    """Everything of `root` that no container or network needs any more (see the module doc)."""
    root = Path(root)
    live = running_ids(root)
    leaks = []
    records = network_records(root)
    for record in records:
        ns = record["Katadocker"]["Netns"]
        for tap in network_taps(ns):
            if not any(cid.startswith(tap[3:]) for cid in live):
                leaks.append(f"TAP {tap} in {ns} (network {record['Name']}) has no running container")
        for cid, ep in record["Containers"].items():
            if cid not in live:
                leaks.append(f"endpoint {ep['Name']} ({ep['IPv4Address']}) on {record['Name']} "
                             "belongs to no running container")
    listeners = listening_inodes()
    for pid, kind, owner in _helper_processes(root):
        if owner in live:
            continue
        leaks.append(f"early VM (QEMU process {pid}) that no monitor took over" if owner == EARLY
                     else f"{kind} process {pid} of container {owner[:12]} that is not running")
        leaks += [f"listener {listeners[i]} held by stray {kind} {pid}"
                  for i in _socket_inodes(pid) if i in listeners]
    for obj in sorted(set(seen_networks) - network_objects(root)):
        kind, _, name = obj.partition(":")
        present = netns.exists(name) if kind == "netns" else Path("/sys/class/net", name).exists()
        if present:
            leaks.append(f"{kind} {name} of a removed network is still there")
    return leaks


def wait_no_leaks(root: Path, seen_networks: set[str] = frozenset(), timeout: float = 45) -> list[str]:
    """`find_leaks` polled until it finds nothing or `timeout` passes (helpers exit asynchronously:
    a monitor finishing its teardown, QEMU powering off); the last findings."""
    deadline = time.monotonic() + timeout
    while (found := find_leaks(root, seen_networks)) and time.monotonic() < deadline:
        time.sleep(1)
    return found


def port_listening(port: int, proto: str = "tcp") -> bool:
    """Whether anything in the host namespace listens on `port` (TCP) or is bound to it (UDP)."""
    return f"{proto}:{port}" in listening_inodes().values()
