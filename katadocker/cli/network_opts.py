"""The networking flags `run` and `create` share (docker's names, short and long), declared once.

Each is an ``Annotated`` type for a command parameter; `create_kwargs` turns the parsed values into
`katadocker.engine.containers.CreateOptions` keyword arguments. Imports only typer at module level
(fast start-up).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

NetworkAlias = Annotated[list[str] | None, typer.Option(
    "--network-alias", "--net-alias", help="Add network-scoped alias for the container")]
Ip = Annotated[str | None, typer.Option("--ip", help='IPv4 address (e.g., "172.30.100.104")')]
MacAddress = Annotated[str | None, typer.Option(
    "--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")]
Dns = Annotated[list[str] | None, typer.Option("--dns", help="Set custom DNS servers")]
DnsSearch = Annotated[list[str] | None, typer.Option("--dns-search", help="Set custom DNS search domains")]
DnsOption = Annotated[list[str] | None, typer.Option("--dns-option", "--dns-opt", help="Set DNS options")]
AddHost = Annotated[list[str] | None, typer.Option(
    "--add-host", help="Add a custom host-to-IP mapping (host:ip)")]


def create_kwargs(network_alias: list[str] | None, ip: str | None, mac_address: str | None,
                  dns: list[str] | None, dns_search: list[str] | None, dns_option: list[str] | None,
                  add_host: list[str] | None) -> dict[str, Any]:
    """``CreateOptions``'s ``net_options`` from the flags above."""
    from katadocker.engine.networking import NetworkOptions

    return {"net_options": NetworkOptions(network_alias or [], ip, mac_address, dns or [], dns_search or [],
                                          dns_option or [], add_host or [])}
