"""``volume create|ls|inspect|rm|prune``: parsing and rendering only.

The work is in katadocker.engine.volumes (imported inside each command so start-up stays fast).
Output follows docker 28: ``create`` prints the name, ``ls`` the ``DRIVER  VOLUME NAME`` table
sorted by name, ``inspect`` a 4-space-indented JSON array, ``rm`` echoes each argument, ``prune``
lists what it deleted and the space reclaimed (anonymous volumes only, unless ``--all``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from katadocker.cli.app import FormatOpt, ShortFormatOpt, command
from katadocker.cli.context import settings as _settings

LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
              "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "CreatedAt": "CREATED AT",
              "Availability": "AVAILABILITY", "Group": "GROUP"}
LS_FILTERS = ("dangling", "driver", "label", "name")


def _matches(volume: dict[str, Any], in_use: bool, filters: dict[str, list[str]]) -> bool:
    """Docker's semantics: values of one key are OR'ed (labels AND'ed), different keys AND'ed."""
    from katadocker.engine.volumes import label_filter

    checks = {
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not in_use),
        "driver": lambda v: volume["Driver"] == v,
        "name": lambda v: v in volume["Name"],
    }
    for key, values in filters.items():
        if key == "label":
            if not all(label_filter(volume, v) for v in values):
                return False
        elif not any(checks[key](v) for v in values):
            return False
    return True


def _ls_row(volume: dict[str, Any]) -> dict[str, Any]:
    return {"Driver": volume["Driver"], "Name": volume["Name"], "Scope": volume["Scope"],
            "Mountpoint": volume["Mountpoint"], "CreatedAt": volume["CreatedAt"],
            "Labels": ",".join(f"{k}={v}" for k, v in sorted((volume["Labels"] or {}).items())),
            "Links": "N/A", "Size": "N/A", "Availability": "N/A", "Group": "N/A"}


@command("create", group="volume", panel=None)
def volume_create(
    name: str = typer.Argument(None, metavar="[VOLUME]"),
    name_flag: str = typer.Option(None, "--name", help="Specify volume name", hidden=True),
    driver: str = typer.Option("local", "-d", "--driver", help="Specify volume driver name"),
    label: Annotated[list[str] | None, typer.Option("--label", help="Set metadata for a volume")] = None,
    opt: Annotated[list[str] | None, typer.Option("-o", "--opt", help="Set driver specific options")] = None,
) -> None:
    """Create a volume"""
    from katadocker.engine.volumes import VolumeStore
    from katadocker.errors import UsageError
    from katadocker.filters import parse_pairs

    if name and name_flag and name != name_flag:
        raise UsageError("conflicting options: cannot specify a volume-name through both --name and "
                         "as a positional arg")
    volume = VolumeStore(_settings()).create(name or name_flag or None, parse_pairs(label or [], "--label"),
                                             parse_pairs(opt or [], "-o, --opt"), driver)
    typer.echo(volume["Name"])


@command("ls", group="volume", panel=None, group_aliases=("list",))
def volume_ls(
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only display volume names"),
    filter_: Annotated[list[str] | None, typer.Option("-f", "--filter",
            help="Provide filter values (e.g. \"dangling=true\")")] = None,
    format_: FormatOpt = None,
) -> None:
    """List volumes"""
    from katadocker.cli import render
    from katadocker.engine.volumes import VolumeStore
    from katadocker.filters import parse_filters

    filters = parse_filters(filter_ or [], LS_FILTERS)
    store = VolumeStore(_settings())
    rows = [_ls_row(v) for v in store.all()
            if _matches(v, "dangling" in filters and bool(store.users(v["Name"])), filters)]
    fmt = render.quiet_wins(quiet, format_)
    render.print_list("{{.Name}}" if quiet else fmt, rows, LS_HEADERS, LS_TABLE)


@command("inspect", group="volume", panel=None)
def volume_inspect(
    names: Annotated[list[str], typer.Argument(metavar="VOLUME...")],
    format_: ShortFormatOpt = None,
) -> None:
    """Display detailed information on one or more volumes"""
    from katadocker.cli.inspect_out import inspect_objects
    from katadocker.engine.volumes import VolumeStore

    inspect_objects(names, VolumeStore(_settings()).get, format_)


@command("rm", group="volume", panel=None, group_aliases=("remove",))
def volume_rm(
    names: Annotated[list[str], typer.Argument(metavar="VOLUME...")],
    force: bool = typer.Option(False, "-f", "--force", help="Force the removal of one or more volumes"),
) -> None:
    """Remove one or more volumes"""
    from katadocker.cli.main import report_error
    from katadocker.engine.volumes import VolumeStore
    from katadocker.errors import KatadockerError

    store = VolumeStore(_settings())
    failed = False
    for name in names:
        try:
            store.remove(name, force=force)
            typer.echo(name)
        except KatadockerError as e:
            report_error(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@command("prune", group="volume", panel=None)
def volume_prune(
    all_: bool = typer.Option(False, "-a", "--all",
            help="Remove all unused volumes, not just anonymous ones"),
    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation"),
    filter_: Annotated[list[str] | None, typer.Option("--filter",
            help='Provide filter values (e.g. "label=<label>")')] = None,
) -> None:
    """Remove unused local volumes"""
    from katadocker.engine.volumes import VolumeStore
    from katadocker.filters import parse_filters
    from katadocker.units import human_size

    filters = parse_filters(filter_ or [], ("label", "all"))
    all_ = all_ or any(v.lower() in ("true", "1") for v in filters.get("all", []))
    from katadocker.cli import render

    if not force:
        what = "all local volumes" if all_ else "anonymous local volumes"
        if not render.confirm(f"WARNING! This will remove {what} not used by at least one container."):
            return
    removed, reclaimed = VolumeStore(_settings()).prune(all_, filters.get("label", []))
    if removed:
        typer.echo("Deleted Volumes:\n" + "\n".join(removed) + "\n")
    typer.echo(f"Total reclaimed space: {human_size(reclaimed)}")
