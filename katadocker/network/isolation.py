"""Isolation between networks: a network's containers accept no connection that enters its namespace
through the uplink; only replies to connections they opened come back that way.

Without this, the host (which forwards for the uplinks) would route a container of network B to an
address of network A. Published ports never need the uplink (their relays open sockets inside the
namespace), so nothing legitimate is lost. The rule lives inside the network's own namespace
(``nft`` table ``inet kd_isolation``), never in the host's firewall, and goes with the namespace.
"""

from __future__ import annotations

import shutil
import subprocess

from katadocker.errors import NetworkError
from katadocker.network.netns import BRIDGE, UPLINK

TABLE = "kd_isolation"
RULESET = f"""\
table inet {TABLE} {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{UPLINK}" oifname "{BRIDGE}" ct state established,related accept
    iifname "{UPLINK}" oifname "{BRIDGE}" drop
  }}
}}
"""


def available() -> bool:
    """Whether ``nft`` is installed (without it networks are not isolated from each other)."""
    return shutil.which("nft") is not None


def install(ns: str) -> None:
    """Install (or replace) the isolation table inside namespace `ns`. Idempotent."""
    script = f"table inet {TABLE}\ndelete table inet {TABLE}\n{RULESET}"
    proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        raise NetworkError(f"cannot isolate network namespace {ns}: {proc.stderr.strip()}")
