"""``network create|ls|inspect|rm|prune|connect|disconnect``: parsing and rendering only.

The work is in katadocker.network.networks (imported inside each command so start-up stays fast).
Output follows docker 28: ``create`` prints the full ID, ``ls`` is the ``NETWORK ID  NAME  DRIVER
SCOPE`` table sorted by name, ``inspect`` a 4-space-indented JSON array, ``rm`` echoes each argument.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from katadocker.cli.app import FormatOpt, ShortFormatOpt, command
from katadocker.cli.context import settings as _settings

LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
              "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
LS_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")


def _matches(record: dict, filters: dict[str, list[str]]) -> bool:
    """Docker's semantics: values of one key are OR'ed, different keys AND'ed."""
    import re

    checks = {
        "driver": lambda v: record["Driver"] == v,
        "id": lambda v: record["Id"].startswith(v),
        "name": lambda v: record["Name"] == v or re.search(v, record["Name"]) is not None,
        "scope": lambda v: record["Scope"] == v,
        "type": lambda v: (v == "builtin") == (record["Name"] == "bridge"),
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not record["Containers"]
                                                                and record["Name"] != "bridge"),
        "label": lambda v: _label_match(record["Labels"], v),
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items())


def _label_match(labels: dict[str, str], spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def _ls_row(record: dict, no_trunc: bool) -> dict[str, Any]:
    return {
        "ID": record["Id"] if no_trunc else record["Id"][:12],
        "Name": record["Name"], "Driver": record["Driver"], "Scope": record["Scope"],
        "IPv4": "true", "IPv6": "false", "Internal": str(record["Internal"]).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(record["Labels"].items())),
        "CreatedAt": record["Created"],
    }


@command("create", group="network", panel=None)
def network_create(
    name: str = typer.Argument(..., metavar="NETWORK"),
    driver: str = typer.Option("bridge", "-d", "--driver", help="Driver to manage the Network"),
    subnet: Annotated[list[str] | None, typer.Option("--subnet",
            help="Subnet in CIDR format that represents a network segment")] = None,
    gateway: Annotated[list[str] | None, typer.Option("--gateway",
            help="IPv4 Gateway for the master subnet")] = None,
    internal: bool = typer.Option(False, "--internal", help="Restrict external access to the network"),
    label: Annotated[list[str] | None, typer.Option("--label", help="Set metadata on a network")] = None,
    opt: Annotated[list[str] | None, typer.Option("-o", "--opt", help="Set driver specific options")] = None,
    attachable: bool = typer.Option(False, "--attachable", help="Enable manual container attachment"),
    ipv6: bool = typer.Option(False, "--ipv6", help="Enable or disable IPv6 networking"),
) -> None:
    """Create a network"""
    from katadocker.errors import InvalidArgument
    from katadocker.filters import parse_pairs
    from katadocker.network import networks

    subnet, gateway = subnet or [], gateway or []
    if ipv6:
        raise InvalidArgument("katadocker networks are IPv4 only")
    if len(subnet) > 1 or len(gateway) > 1:
        raise InvalidArgument("katadocker networks have one IPv4 subnet")
    if gateway and not subnet:
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    record = networks.create(_settings(), name, subnet=subnet[0] if subnet else None,
                             gateway=gateway[0] if gateway else None, internal=internal,
                             labels=parse_pairs(label or [], "--label"), driver=driver,
                             options=parse_pairs(opt or [], "-o, --opt"))
    del attachable  # every katadocker network accepts `connect`
    typer.echo(record["Id"])


@command("ls", group="network", panel=None, group_aliases=("list",))
def network_ls(
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only display network IDs"),
    filter_: Annotated[list[str] | None, typer.Option("-f", "--filter",
            help="Provide filter values (e.g. \"driver=bridge\")")] = None,
    format_: FormatOpt = None,
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate the output"),
) -> None:
    """List networks"""
    from katadocker.cli import render
    from katadocker.filters import parse_filters
    from katadocker.network import networks

    settings = _settings()
    filters = parse_filters(filter_ or [], LS_FILTERS)
    networks.ensure_default(settings)
    records = [r for r in networks.list_networks(settings) if _matches(r, filters)]
    rows = [_ls_row(r, no_trunc) for r in records]
    fmt = render.quiet_wins(quiet, format_)
    render.print_list("{{.ID}}" if quiet else fmt, rows, LS_HEADERS, LS_TABLE)


@command("inspect", group="network", panel=None)
def network_inspect(
    refs: Annotated[list[str], typer.Argument(metavar="NETWORK...")],
    format_: ShortFormatOpt = None,
) -> None:
    """Display detailed information on one or more networks"""
    from katadocker.cli.inspect_out import inspect_objects
    from katadocker.network import networks

    settings = _settings()
    inspect_objects(refs, lambda ref: networks.inspect_view(networks.get(settings, ref)), format_)


@command("rm", group="network", panel=None, group_aliases=("remove",))
def network_rm(
    refs: Annotated[list[str], typer.Argument(metavar="NETWORK...")],
    force: bool = typer.Option(False, "-f", "--force", help="Do not error if the network does not exist"),
) -> None:
    """Remove one or more networks"""
    from katadocker.cli.main import report_error
    from katadocker.errors import KatadockerError, NoSuchNetwork
    from katadocker.network import networks

    settings = _settings()
    failed = False
    for ref in refs:
        try:
            networks.remove(settings, ref)
            typer.echo(ref)
        except NoSuchNetwork:
            if not force:
                report_error(NoSuchNetwork(ref))
                failed = True
        except KatadockerError as e:
            report_error(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@command("prune", group="network", panel=None)
def network_prune(
    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation"),
    filter_: Annotated[list[str] | None, typer.Option("--filter",
            help='Provide filter values (e.g. "until=<timestamp>")')] = None,
) -> None:
    """Remove all unused networks"""
    from katadocker.errors import InvalidArgument
    from katadocker.filters import parse_filters
    from katadocker.network import networks

    filters = parse_filters(filter_ or [], LS_FILTERS)
    for key in filters:
        if key != "label":
            raise InvalidArgument(f"invalid filter '{key}'")
    labels = filters.get("label", [])
    from katadocker.cli import render

    warning = "WARNING! This will remove all custom networks not used by at least one container."
    if not force and not render.confirm(warning):
        return
    removed = networks.prune(_settings(), labels)
    if removed:
        typer.echo("Deleted Networks:\n" + "\n".join(removed))


@command("connect", group="network", panel=None)
def network_connect(
    network: str = typer.Argument(..., metavar="NETWORK"),
    container: str = typer.Argument(..., metavar="CONTAINER"),
    alias: Annotated[list[str] | None, typer.Option("--alias",
            help="Add network-scoped alias for the container")] = None,
    ip: str = typer.Option(None, "--ip", help="IPv4 address (e.g., \"172.30.100.104\")"),
) -> None:
    """Connect a container to a network"""
    from katadocker.engine import networking

    networking.connect(_settings(), container, network, aliases=alias or [], ip=ip)


@command("disconnect", group="network", panel=None)
def network_disconnect(
    network: str = typer.Argument(..., metavar="NETWORK"),
    container: str = typer.Argument(..., metavar="CONTAINER"),
    force: bool = typer.Option(False, "-f", "--force",
            help="Force the container to disconnect from a network"),
) -> None:
    """Disconnect a container from a network"""
    from katadocker.engine import networking

    networking.disconnect(_settings(), container, network, force=force)
