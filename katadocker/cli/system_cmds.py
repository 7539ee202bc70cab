"""`version`, `info`, `events`, `system df`, `system prune` (and `system prepare`, `system build-kernel`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from katadocker.cli.app import FormatOpt, ShortFormatOpt, command


@command("version")
def version(
    format: ShortFormatOpt = None,
) -> None:
    """Show the katadocker version information"""
    from katadocker.cli import render
    from katadocker.engine import system

    render.template_or_text(format, system.version_report(), render.version_text)


@command("info", group="system")
def info(
    format: ShortFormatOpt = None,
) -> None:
    """Display system-wide information"""
    from katadocker.cli import context, render
    from katadocker.engine import system

    render.template_or_text(format, system.info_report(context.settings()), render.info_text)


@command("prepare", panel=None, group="system")
def prepare() -> None:
    """Build the guest assets (agent, kernel, initramfs, template VM) now instead of on the first run"""
    from katadocker.cli import context
    from katadocker.vm.assets import ensure_assets

    assets = ensure_assets(context.settings(), progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"kernel     {assets.kernel} ({assets.kernel_source}: {assets.reason})")
    typer.echo(f"initramfs  {assets.initramfs}")
    typer.echo(f"accel      {assets.accel.name} ({assets.accel.reason})")
    typer.echo(f"template   {assets.template or f'none, containers boot: {assets.template_failure}'}")


@command("build-kernel", panel=None, group="system")
def build_kernel(
    jobs: int = typer.Option(None, "-j", "--jobs", help="Parallel compile jobs (default: one per CPU)",
                             show_default=False),
    force: bool = typer.Option(False, "--force", help="Rebuild even when a build of the same inputs exists"),
) -> None:
    """Build katadocker's own guest kernel from Debian's linux-source package (used from then on)"""
    from katadocker.cli import context
    from katadocker.vm.kernel_build import build_kernel as build

    build(context.settings(), progress=lambda msg: typer.echo(msg, err=True), jobs=jobs, force=force)


# ---- events -------------------------------------------------------------------------------------


def event_line(msg: Any) -> str:
    """docker's default event line: local time with nine fraction digits, type, action, actor ID,
    then the attributes sorted by key:
    ``2026-11-27T11:00:00.000000000Z container start <id> (image=…, name=…)``."""
    from datetime import datetime

    secs, nanos = divmod(msg.TimeNano or msg.Time * 1_000_000_000, 1_000_000_000)
    local = datetime.fromtimestamp(secs).astimezone()
    zone = local.strftime("%z")
    zone = "Z" if zone == "+0000" else f"{zone[:3]}:{zone[3:]}"
    line = f"{local.strftime('%Y-%m-%dT%H:%M:%S')}.{nanos:09d}{zone} {msg.Type} {msg.Action} {msg.Actor.ID}"
    attrs = msg.Actor.Attributes
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


@command("events", group="system")
def events_(
    since: str = typer.Option(None, "--since", help="Show all events created since timestamp"),
    until: str = typer.Option(None, "--until", help="Stream events until this timestamp"),
    filter_: Annotated[list[str] | None, typer.Option("-f", "--filter",
            help="Filter output based on conditions provided")] = None,
    format_: FormatOpt = None,
) -> None:
    """Get real time events from the server"""
    import sys

    from katadocker.cli import context, gotemplate
    from katadocker.engine import event_filter, events
    from katadocker.engine.logs import parse_timestamp

    filters = event_filter.parse(list(filter_ or []))
    since_ns = parse_timestamp(since, "since") if since else None
    until_ns = parse_timestamp(until, "until") if until else None
    template = None
    if format_:
        template = gotemplate.parse("{{json .}}" if format_ == "json" else format_)
        template.execute(events.Message())  # docker validates the template on an empty event
    for msg in events.stream(context.settings().state, since_ns, until_ns):
        if event_filter.matches(filters, msg):
            sys.stdout.write((template.execute(msg) if template else event_line(msg)) + "\n")
            sys.stdout.flush()


# ---- system df ----------------------------------------------------------------------------------

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def _reclaimable(reclaimable: int, total: int) -> str:
    """docker's RECLAIMABLE cell: HumanSize, with the integer percentage of `total` when non-zero."""
    from katadocker.units import human_size

    size = human_size(max(reclaimable, 0), 4)
    return f"{size} ({reclaimable * 100 // total}%)" if total > 0 else size


def df_rows(usage: Any) -> list[dict[str, str]]:
    """The four summary rows of ``system df`` (docker's diskUsage contexts; all values strings)."""
    from katadocker.units import human_size

    used = sum(i.size - i.shared_size for i in usage.images if i.containers)
    containers_size = sum(c.size_rw for c in usage.containers)
    volumes_size = sum(v.size for v in usage.volumes)
    return [
        {"Type": "Images", "TotalCount": str(len(usage.images)),
         "Active": str(sum(1 for i in usage.images if i.containers)),
         "Size": human_size(usage.layers_size, 4), "Reclaimable": _reclaimable(usage.layers_size - used,
                                                                                 usage.layers_size)},
        {"Type": "Containers", "TotalCount": str(len(usage.containers)),
         "Active": str(sum(1 for c in usage.containers if c.active)), "Size": human_size(containers_size, 4),
         "Reclaimable": _reclaimable(sum(c.size_rw for c in usage.containers if not c.active),
                                     containers_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(usage.volumes)),
         "Active": str(sum(1 for v in usage.volumes if v.links)), "Size": human_size(volumes_size, 4),
         "Reclaimable": _reclaimable(sum(v.size for v in usage.volumes if not v.links), volumes_size)},
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"},
    ]


def df_verbose_text(usage: Any) -> str:
    """``system df -v``: the images, containers, volumes and build cache sections, each a table."""
    import time

    from katadocker.cli import render
    from katadocker.cli.container_cmds import _ps_row
    from katadocker.units import human_duration, human_size

    image_rows = []
    for i in usage.images:
        cells = {"ID": i.id.removeprefix("sha256:")[:12],
                 "CreatedSince": human_duration(time.time() - i.created) + " ago",
                 "Size": human_size(i.size), "SharedSize": human_size(i.shared_size),
                 "UniqueSize": human_size(i.size - i.shared_size), "Containers": str(i.containers)}
        names = [t.rsplit(":", 1) for t in i.repo_tags] or [["<none>", "<none>"]]
        image_rows += [{"Repository": repo, "Tag": tag, **cells} for repo, tag in names]
    container_rows = [{**_ps_row(c.summary, no_trunc=False), "Size": human_size(c.size_rw)}
                      for c in usage.containers]
    volume_rows = [{"Name": v.name, "Links": str(v.links), "Size": human_size(v.size)} for v in usage.volumes]
    return "".join([
        "Images space usage:\n\n",
        render.table(image_rows, [("REPOSITORY", "Repository"), ("TAG", "Tag"), ("IMAGE ID", "ID"),
                                  ("CREATED", "CreatedSince"), ("SIZE", "Size"),
                                  ("SHARED SIZE", "SharedSize"), ("UNIQUE SIZE", "UniqueSize"),
                                  ("CONTAINERS", "Containers")]),
        "\nContainers space usage:\n\n",
        render.table(container_rows, [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                                      ("LOCAL VOLUMES", "LocalVolumes"), ("SIZE", "Size"),
                                      ("CREATED", "RunningFor"), ("STATUS", "Status"), ("NAMES", "Names")]),
        "\nLocal Volumes space usage:\n\n",
        render.table(volume_rows, [("VOLUME NAME", "Name"), ("LINKS", "Links"), ("SIZE", "Size")]),
        "\nBuild cache usage: 0B\n\n",
        render.table([], [("CACHE ID", "ID"), ("CACHE TYPE", "CacheType"), ("SIZE", "Size"),
                          ("CREATED", "CreatedSince"), ("LAST USED", "LastUsedSince"),
                          ("USAGE", "UsageCount"), ("SHARED", "Shared")]),
    ])


@command("df", panel=None, group="system")
def df(
    format_: FormatOpt = None,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show detailed information on space usage"),
) -> None:
    """Show docker disk usage"""
    from katadocker.cli import context, render
    from katadocker.engine import inventory

    usage = inventory.disk_usage(context.settings())
    if verbose and not format_:
        typer.echo(df_verbose_text(usage), nl=False)
        return
    render.print_list(format_, df_rows(usage), DF_HEADERS, DF_TABLE)


# ---- system prune -------------------------------------------------------------------------------


def prune_warning(all_: bool, volumes: bool, filters: dict[str, list[str]]) -> str:
    """docker's confirmation text for ``system prune`` (without the ``[y/N]`` prompt)."""
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        warnings.append("all anonymous volumes not used by at least one container")
    warnings.append("all images without at least one container associated to them" if all_
                    else "all dangling images")
    warnings.append("unused build cache" if not all_ else "all build cache")
    text = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)
    shown = sorted(f"{k}={v}" for k in ("label", "label!", "until") for v in filters.get(k, []))
    if shown:
        text += "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in shown)
    return text + "\nAre you sure you want to continue?"


@command("prune", panel=None, group="system")
def system_prune(
    all_: bool = typer.Option(False, "-a", "--all", help="Remove all unused images not just dangling ones"),
    filter_: Annotated[list[str] | None, typer.Option("--filter",
            help='Provide filter values (e.g. "label=<key>=<value>")')] = None,
    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation"),
    volumes: bool = typer.Option(False, "--volumes", help="Prune anonymous volumes"),
) -> None:
    """Remove unused data"""

    from katadocker.cli import context
    from katadocker.engine import images, system
    from katadocker.units import human_size

    filters = images.parse_filters(list(filter_ or []), system.PRUNE_FILTERS)
    from katadocker.cli import render

    if not force and not render.confirm(prune_warning(all_, volumes, filters)):
        return
    report = system.prune(context.settings(), all_, volumes, filters)
    sections = [("Deleted Containers:", report.containers), ("Deleted Networks:", report.networks),
                ("Deleted Volumes:", report.volumes),
                ("Deleted Images:", [f"{'untagged' if i.untagged else 'deleted'}: {i.untagged or i.deleted}"
                                     for i in report.images])]
    for title, lines in sections:
        if lines:
            typer.echo(title + "\n" + "".join(f"{line}\n" for line in lines))
    typer.echo(f"Total reclaimed space: {human_size(report.reclaimed, 4)}")
