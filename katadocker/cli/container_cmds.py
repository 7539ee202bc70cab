"""Container verbs: run, create, start, stop, kill, restart, rm, wait, rename, ps, logs, inspect, prune.

Parsing and rendering only; the work is in katadocker.engine.containers (imported inside each
command so `katadocker ps` starts fast). Docker's conventions: multi-object verbs echo each argument
as typed and exit 1 if any failed; `run`/`create` failures before the container ran exit 125
(126/127 when the command cannot be run / is not found) with ``katadocker: <error>`` and a help hint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from katadocker.cli import create_opts
from katadocker.cli.app import COMMON, FormatOpt, ShortFormatOpt, command
from katadocker.cli.context import settings as _settings

RUN_HELP_HINT = "\n\nRun 'katadocker {verb} --help' for more information"


# --- shared helpers -------------------------------------------------------------------------------

def _fail_run(verb: str, e: BaseException, code: int = 125) -> None:
    """docker's run/create failure: ``katadocker: Error response from daemon: …`` + hint; exit."""
    from katadocker.cli.main import report_error

    report_error(e, prefix="katadocker: ", suffix=RUN_HELP_HINT.format(verb=verb))
    raise typer.Exit(code)


def _for_each(refs: list[str], action: Callable[[str], Any], echo: bool = True) -> None:
    """Apply `action` to every argument in order; echo successes, print errors, exit 1 if any failed."""
    from katadocker.cli.main import report_error
    from katadocker.errors import KatadockerError

    failed = False
    for ref in refs:
        try:
            action(ref)
        except KatadockerError as e:
            report_error(e)
            failed = True
            continue
        if echo:
            typer.echo(ref)
    if failed:
        raise typer.Exit(1)


def _parse_bytes(value: str, flag: str) -> int:
    """docker's RAMInBytes: ``512m``, ``1g``, ``1.5G``, plain bytes (binary units)."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)b?", value.strip().lower())
    if not m:
        raise _usage(f'invalid argument "{value}" for "{flag}" flag: invalid size: \'{value}\'')
    mult = 1024 ** "bkmgtp".index(m.group(2) or "b")
    return int(float(m.group(1)) * mult)


def _usage(message: str) -> Exception:
    from katadocker.errors import UsageError

    return UsageError(message)


# --- run / create ---------------------------------------------------------------------------------

def _create_options(image: str, args: list[str], **kw: Any) -> Any:
    from katadocker.engine.containers import CreateOptions

    memory = _parse_bytes(kw.pop("memory"), "-m, --memory") if kw.get("memory") else 0
    kw.pop("memory", None)
    cpus = kw.pop("cpus")
    try:
        nano = int(float(cpus) * 1e9) if cpus else 0
    except ValueError:
        raise _usage(f'invalid argument "{cpus}" for "--cpus" flag: '
                     f"failed to parse {cpus} as a rational number") from None
    return CreateOptions(image=image, args=list(args), memory=memory, nano_cpus=nano, **kw)


def _pull_event_printer() -> Callable[[Any], None]:
    """Pull progress for an implicit pull goes to stderr as plain lines (docker's non-tty form)."""
    def show(event: Any) -> None:
        if not (event.current or event.total):
            sys.stderr.write(event.line() + "\n")

    return show


def _asset_progress(step: str) -> None:
    """Show what building the guest assets on a first run is doing (stderr, as pull progress)."""
    sys.stderr.write(step + "\n")


def _do_create(verb: str, opts: Any, quiet: bool) -> Any:
    """Create the container; on failure print docker's run/create error and exit 125."""
    from katadocker.engine import containers
    from katadocker.errors import KatadockerError

    def message(text: str) -> None:
        if not quiet:
            sys.stderr.write(text + "\n")

    try:
        return containers.create(_settings(), opts, on_message=message,
                                 on_pull_event=None if quiet else _pull_event_printer())
    except KatadockerError as e:
        _fail_run(verb, e)


@command("run", panel=COMMON, group="container", passthrough=True)
@create_opts.shared_options('Pull image before running ("always", "missing", "never")')
def run(
    image: str = typer.Argument(..., metavar="IMAGE"),
    args: Annotated[list[str] | None, typer.Argument(metavar="[COMMAND] [ARG...]")] = None,
    detach: bool = typer.Option(False, "-d", "--detach",
            help="Run container in background and print container ID"),
    sig_proxy: bool = typer.Option(True, "--sig-proxy", help="Proxy received signals to the process"),
    detach_keys: str = typer.Option(None, "--detach-keys",
            help="Override the key sequence for detaching a container"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the pull output"),
    **opts: Any,
) -> None:
    """Create and run a new container from an image"""
    from katadocker.engine import containers
    from katadocker.errors import CommandNotExecutable, CommandNotFound, KatadockerError

    interactive, tty = opts["interactive"], opts["tty"]
    if detach and opts["attach"]:
        _fail_run("run", _usage("conflicting options: cannot specify both --attach and --detach"))
    default_streams = ["stdout", "stderr", *(["stdin"] if interactive else [])]
    streams = [a.lower() for a in opts["attach"] or []] or ([] if detach else default_streams)
    for s in streams:
        if s not in ("stdin", "stdout", "stderr"):
            _fail_run("run", _usage(f"invalid argument \"{s}\" for \"-a, --attach\" flag: valid streams are "
                                    "STDIN, STDOUT and STDERR"))
    from katadocker.cli.interactive_cmds import check_tty

    check_tty("stdin" in streams, tty)
    options = _create_options(image, args or [], **create_opts.create_kwargs(opts), attach=streams)
    record = _do_create("run", options, quiet)
    if detach:
        typer.echo(record.id)
        try:
            containers.start(_settings(), record.id, progress=_asset_progress)
        except KatadockerError as e:
            _fail_run("run", e)
        return
    try:
        containers.start(_settings(), record.id, attached=True, progress=_asset_progress)
    except CommandNotFound as e:
        _fail_run("run", e, 127)
    except CommandNotExecutable as e:
        _fail_run("run", e, 126)
    except KatadockerError as e:
        _fail_run("run", e)
    code = _attach(record, stdin="stdin" in streams, sig_proxy=sig_proxy, offset=0, detach_keys=detach_keys)
    if options.auto_remove:
        containers.wait_removed(record)
    raise typer.Exit(code)


def _attach(record: Any, stdin: bool, sig_proxy: bool, offset: int, detach_keys: str | None = None) -> int:
    """Stream the container's output, forward stdin and (with `sig_proxy`) the signals this process
    gets; the container's exit code."""
    import signal

    from katadocker.engine.attach import AttachSession

    session = AttachSession(_settings(), record, offset)
    if sig_proxy:
        for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                      signal.SIGUSR2):
            signal.signal(signo, lambda n, _f: session.send_signal(n))
    if record.config["Config"].get("Tty"):  # a pty: raw terminal, resizes, detach keys (cli/tty.py)
        from katadocker.cli.interactive_cmds import attach_tty

        return attach_tty(session, stdin, detach_keys)
    from katadocker.cli.interactive_cmds import write_out

    return session.run(write_out, sys.stdin.buffer if stdin else None)


@command("create", group="container", passthrough=True)
@create_opts.shared_options('Pull image before creating ("always", "missing", "never")')
def create(
    image: str = typer.Argument(..., metavar="IMAGE"),
    args: Annotated[list[str] | None, typer.Argument(metavar="[COMMAND] [ARG...]")] = None,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the pull output"),
    **opts: Any,
) -> None:
    """Create a new container"""
    options = _create_options(image, args or [], **create_opts.create_kwargs(opts),
                              attach=[a.lower() for a in opts["attach"] or []])
    record = _do_create("create", options, quiet)
    typer.echo(record.id)


# --- start / stop / kill / restart / rm / wait / rename -----------------------------------------

@command("start", group="container")
def start(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    attach: bool = typer.Option(False, "-a", "--attach", help="Attach STDOUT/STDERR and forward signals"),
    interactive: bool = typer.Option(False, "-i", "--interactive", help="Attach container's STDIN"),
    detach_keys: str = typer.Option(None, "--detach-keys",
            help="Override the key sequence for detaching a container"),
) -> None:
    """Start one or more stopped containers"""
    from katadocker.engine import containers
    from katadocker.errors import KatadockerError

    settings = _settings()
    if not (attach or interactive):
        _for_each(containers_, lambda ref: containers.start(settings, ref))
        return
    if len(containers_) > 1:
        raise _usage("you cannot start and attach multiple containers at once")
    try:
        record = containers.get(settings, containers_[0])
        offset = record.log_path.stat().st_size if record.log_path.exists() else 0
        containers.start(settings, record.id, attached=True)
    except KatadockerError as e:
        from katadocker.cli.main import report_error

        report_error(e)
        raise typer.Exit(getattr(e, "exit_code", 1)) from None
    # docker's `start -a` proxies signals only to a container without a terminal (`run` always does)
    raise typer.Exit(_attach(record, stdin=interactive, sig_proxy=not record.config["Config"].get("Tty"),
                             offset=offset, detach_keys=detach_keys))


# stop and restart take the same two flags.
StopTimeoutOpt = Annotated[int | None, typer.Option("-t", "--timeout", "--time",
                                                    help="Seconds to wait before killing the container")]
StopSignalOpt = Annotated[str | None, typer.Option("-s", "--signal", help="Signal to send to the container")]


@command("stop", group="container")
def stop(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    timeout: StopTimeoutOpt = None,
    signal_: StopSignalOpt = None,
) -> None:
    """Stop one or more running containers"""
    from katadocker.engine import containers

    settings = _settings()
    _for_each(containers_, lambda ref: containers.stop(settings, ref, timeout, signal_))


@command("kill", group="container")
def kill(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    signal_: str = typer.Option("KILL", "-s", "--signal", help="Signal to send to the container"),
) -> None:
    """Kill one or more running containers"""
    from katadocker.engine import containers

    settings = _settings()
    _for_each(containers_, lambda ref: containers.kill(settings, ref, signal_))


@command("restart", group="container")
def restart(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    timeout: StopTimeoutOpt = None,
    signal_: StopSignalOpt = None,
) -> None:
    """Restart one or more containers"""
    from katadocker.engine import containers

    settings = _settings()
    _for_each(containers_, lambda ref: containers.restart(settings, ref, timeout, signal_))


@command("rm", group="container", group_aliases=("remove",))
def rm(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    force: bool = typer.Option(False, "-f", "--force",
            help="Force the removal of a running container (uses SIGKILL)"),
    volumes: bool = typer.Option(False, "-v", "--volumes",
            help="Remove anonymous volumes associated with the container"),
) -> None:
    """Remove one or more containers"""
    from katadocker.engine import containers
    from katadocker.errors import NoSuchContainer

    settings = _settings()

    def remove(ref: str) -> None:
        if not ref:
            raise _usage("container name cannot be empty")
        try:
            containers.remove(settings, ref, force=force, volumes=volumes)
        except NoSuchContainer:
            if force:
                return
            raise

    _for_each(containers_, remove)


@command("wait", group="container")
def wait(containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Block until one or more containers stop, then print their exit codes"""
    from katadocker.engine import containers

    settings = _settings()
    _for_each(containers_, lambda ref: typer.echo(containers.wait(settings, ref)), echo=False)


@command("rename", group="container")
def rename(
    container: str = typer.Argument(...), new_name: str = typer.Argument(..., metavar="NEW_NAME")
) -> None:
    """Rename a container"""
    from katadocker.engine import containers

    containers.rename(_settings(), container, new_name)


# --- ps ------------------------------------------------------------------------------------------

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}


def _ellipsis(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _ps_row(c: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    """The CLI's ContainerContext for one summary: every ps placeholder as text."""
    import json
    import time

    from katadocker.network.ports import PublishedPort, display_ports
    from katadocker.units import human_duration, human_size

    image = c["Image"]
    if not no_trunc:
        if image.startswith("sha256:") or c["ImageID"].removeprefix("sha256:").startswith(image):
            image = c["ImageID"].removeprefix("sha256:")[:12]
        image = image.split("@")[0]
        for prefix in ("docker.io/library/", "docker.io/"):
            image = image.removeprefix(prefix)
    command = c["Command"] if no_trunc else _ellipsis(c["Command"], 20)
    published = [PublishedPort(p["IP"], p["PublicPort"], p["PrivatePort"], p["Type"])
                 for p in c["Ports"] if "PublicPort" in p]
    exposed = [f"{p['PrivatePort']}/{p['Type']}" for p in c["Ports"] if "PublicPort" not in p]
    size = ""
    if "SizeRw" in c:
        virtual = f" (virtual {human_size(c['SizeRootFs'])})" if c["SizeRootFs"] else ""
        size = human_size(c["SizeRw"]) + virtual
    return {
        "ID": c["Id"] if no_trunc else c["Id"][:12],
        "Image": image,
        "Command": json.dumps(command, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(c["Created"])),
        "RunningFor": human_duration(time.time() - c["Created"]) + " ago",
        "Ports": display_ports(published, exposed),
        "State": c["State"],
        "Status": c["Status"],
        "Size": size,
        "Names": ",".join(n.lstrip("/") for n in c["Names"]),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(c["Labels"].items())),
        "Mounts": "",
        "Networks": ",".join(c["NetworkSettings"]["Networks"]),
        "LocalVolumes": "0",
        "Platform": None,
    }


@command("ps", panel=COMMON, group="container", group_name="ls", group_aliases=("ps", "list"))
def ps(
    all_: bool = typer.Option(False, "-a", "--all", help="Show all containers (default shows just running)"),
    filter_: Annotated[list[str] | None, typer.Option("-f", "--filter",
            help="Filter output based on conditions provided")] = None,
    format_: FormatOpt = None,
    last: int = typer.Option(-1, "-n", "--last", help="Show n last created containers (includes all states)"),
    latest: bool = typer.Option(False, "-l", "--latest", help="Show the latest created container"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only display container IDs"),
    size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes"),
) -> None:
    """List containers"""
    from katadocker.engine import containers

    for f in filter_ or []:
        if "=" not in f:
            raise _usage(f'invalid argument "{f}" for "-f, --filter" flag: bad format of filter '
                         "(expected name=value)")
    from katadocker.cli import render

    format_ = render.quiet_wins(quiet, format_)
    wants_size = size or bool(format_ and ".Size" in format_)
    summaries = containers.list_containers(_settings(), all=all_, filters=filter_ or [],
                                           last=1 if latest else last, size=wants_size)
    if quiet:
        for c in summaries:
            typer.echo(c["Id"] if no_trunc else c["Id"][:12])
        return
    rows = [_ps_row(c, no_trunc) for c in summaries]
    template = format_ or (PS_TABLE + ("\t{{.Size}}" if size else ""))
    if template == "table":
        template = PS_TABLE + ("\t{{.Size}}" if size else "")

    out = render.format_list(template, rows, PS_HEADERS, template)
    if out:
        sys.stdout.write(out)


# --- logs ----------------------------------------------------------------------------------------

@command("logs", group="container")
def logs(
    container: str = typer.Argument(...),
    follow: bool = typer.Option(False, "-f", "--follow", help="Follow log output"),
    tail: str = typer.Option("all", "-n", "--tail", help="Number of lines to show from the end of the logs"),
    timestamps: bool = typer.Option(False, "-t", "--timestamps", help="Show timestamps"),
    since: str = typer.Option(None, "--since", help="Show logs since timestamp or relative (e.g. 42m)"),
    until: str = typer.Option(None, "--until", help="Show logs before a timestamp or relative (e.g. 42m)"),
    details: bool = typer.Option(False, "--details", help="Show extra details provided to logs"),
) -> None:
    """Fetch the logs of a container"""
    from katadocker.cli.interactive_cmds import write_out
    from katadocker.engine import log_stream
    from katadocker.engine.logs import LogOptions, parse_tail, parse_timestamp, render

    del details
    opts = LogOptions(
        tail=parse_tail(tail),
        since=parse_timestamp(since, "since") if since and since != "0" else None,
        until=parse_timestamp(until, "until") if until else None,
        timestamps=timestamps)
    for rec in log_stream.stream(_settings(), container, opts, follow):
        write_out(rec.stream, render(rec, timestamps))


# --- inspect / prune -----------------------------------------------------------------------------

@command("inspect", panel=None, group="container")
def container_inspect(
    containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    format_: ShortFormatOpt = None,
    size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes"),
) -> None:
    """Display detailed information on one or more containers"""
    from katadocker.cli.inspect_out import inspect_objects
    from katadocker.engine import containers

    inspect_objects(containers_, lambda ref: containers.inspect(_settings(), ref, size=size), format_)


@command("inspect")
def inspect(
    objects: Annotated[list[str], typer.Argument(metavar="NAME|ID...")],
    format_: ShortFormatOpt = None,
    size: bool = typer.Option(False, "-s", "--size",
            help="Display total file sizes if the type is container"),
    type_: str = typer.Option(None, "--type", help="Only inspect objects of the given type"),
) -> None:
    """Return low-level information on Docker objects"""
    from katadocker.cli.inspect_out import inspect_objects
    from katadocker.engine import containers
    from katadocker.errors import NoSuchObject, NotFound

    def find(ref: str) -> Any:
        if type_ in (None, "container"):
            try:
                return containers.inspect(_settings(), ref, size=size)
            except NotFound:
                pass
        if type_ in (None, "image"):
            try:
                from katadocker.engine.images import inspect_image

                return inspect_image(_settings(), ref)
            except (NotFound, ImportError):
                pass
        raise NoSuchObject(ref)

    inspect_objects(objects, find, format_)


@command("prune", panel=None, group="container")
def prune(
    force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation"),
    filter_: Annotated[list[str] | None, typer.Option("--filter",
            help='Provide filter values (e.g. "until=<timestamp>")')] = None,
) -> None:
    """Remove all stopped containers"""
    from katadocker.cli import render
    from katadocker.engine import containers
    from katadocker.engine.logs import parse_timestamp

    if not force and not render.confirm("WARNING! This will remove all stopped containers."):
        return
    until, labels = None, []
    for f in filter_ or []:
        key, _, value = f.partition("=")
        if key == "until":
            until = parse_timestamp(value, "until")
        elif key == "label":
            labels.append(value)
        else:
            raise _usage(f"invalid filter '{key}'")
    from katadocker.units import human_size

    removed, reclaimed = containers.prune(_settings(), until=until, labels=labels)
    if removed:
        typer.echo("Deleted Containers:")
        for cid in removed:
            typer.echo(cid)
        typer.echo("")
    typer.echo(f"Total reclaimed space: {human_size(reclaimed, 4)}")
