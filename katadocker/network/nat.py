"""Outbound NAT for one network: a MASQUERADE of its subnet, and nothing else on the host firewall.

With ``nft`` each network gets its own table ``ip kd-<short>`` (one postrouting nat chain, one rule),
so removal is deleting that table and never touches anyone else's rules. Without nft, one
``iptables -t nat`` POSTROUTING rule tagged with a comment, deleted by its exact spec. With neither
tool nothing is installed and the caller records that outbound NAT is absent. katadocker installs
no tool silently.

The rule matches packets from the subnet leaving through any interface other than the network's
own veth, so traffic from the host to the containers is never rewritten.
"""

from __future__ import annotations

import shutil
import subprocess

from katadocker.errors import NetworkError


def available_backend() -> str | None:
    """``"nft"``, ``"iptables"`` or None, in that order of preference."""
    for tool in ("nft", "iptables"):
        if shutil.which(tool):
            return tool
    return None


def _run(argv: list[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetworkError(f"{argv[0]} failed: {proc.stderr.strip()}", detail=" ".join(argv))
    return proc


def _iptables_rule(subnet: str, host_ifname: str, tag: str) -> list[str]:
    return ["POSTROUTING", "-s", subnet, "!", "-o", host_ifname, "-j", "MASQUERADE",
            "-m", "comment", "--comment", tag]


def add(backend: str, table: str, subnet: str, host_ifname: str) -> None:
    """Install the MASQUERADE for `subnet` under the name `table` (idempotent)."""
    if backend == "nft":
        remove(backend, table, subnet, host_ifname)
        _run(["nft", "-f", "-"], stdin=(
            f"table ip {table} {{\n"
            f"  chain postrouting {{\n"
            f"    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    ip saddr {subnet} oifname != "{host_ifname}" masquerade\n'
            f"  }}\n"
            f"}}\n"))
    elif backend == "iptables":
        rule = _iptables_rule(subnet, host_ifname, table)
        if _run(["iptables", "-t", "nat", "-C", *rule], check=False).returncode != 0:
            _run(["iptables", "-t", "nat", "-A", *rule])
    else:
        raise NetworkError(f"unknown NAT backend {backend!r}")


def remove(backend: str, table: str, subnet: str, host_ifname: str) -> None:
    """Remove what `add` installed; no error when it is already gone."""
    if backend == "nft":
        if _run(["nft", "list", "table", "ip", table], check=False).returncode == 0:
            _run(["nft", "delete", "table", "ip", table])
    elif backend == "iptables":
        rule = _iptables_rule(subnet, host_ifname, table)
        while _run(["iptables", "-t", "nat", "-C", *rule], check=False).returncode == 0:
            _run(["iptables", "-t", "nat", "-D", *rule])


def present(backend: str, table: str, subnet: str, host_ifname: str) -> bool:
    """Whether the rule `add` installs is in place (for tests and leak checks)."""
    if backend == "nft":
        return _run(["nft", "list", "table", "ip", table], check=False).returncode == 0
    rule = _iptables_rule(subnet, host_ifname, table)
    return _run(["iptables", "-t", "nat", "-C", *rule], check=False).returncode == 0
