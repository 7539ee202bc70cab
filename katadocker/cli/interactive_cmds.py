"""Interactive verbs: exec, attach, pause, unpause, top, stats, cp, diff, export.

Parsing and rendering only; the work is in katadocker.engine (exec.py, attach.py, pause.py,
top.py, stats.py, copy.py, changes.py), imported inside each command so `katadocker ps` stays fast.
Terminal handling for ``-t`` (raw mode, window size, detach keys) is in cli/tty.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from katadocker.cli.app import COMMON, FormatOpt, command
from katadocker.cli.context import settings as _settings


def write_out(stream: str, data: bytes) -> None:
    """Write a container's output chunk to our stdout or stderr, as it arrives."""
    target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
    target.write(data)
    target.flush()


def check_tty(interactive: bool, tty: bool) -> None:
    """docker's CheckTty: ``-i -t`` needs a terminal on stdin (exit 1 with docker's message)."""
    from katadocker.cli.tty import NOT_A_TTY

    if interactive and tty and not sys.stdin.isatty():
        sys.stderr.write(NOT_A_TTY + "\n")
        raise typer.Exit(1)


def _detach_keys(spec: str | None) -> bytes:
    from katadocker.cli.tty import DEFAULT_DETACH_KEYS, parse_detach_keys
    from katadocker.errors import InvalidArgument

    try:
        return parse_detach_keys(spec or DEFAULT_DETACH_KEYS)
    except ValueError as e:
        raise InvalidArgument(str(e)) from None


def run_on_terminal(resize: Callable[[int, int], None], detach: Callable[[], None], interactive: bool,
                    keys: bytes, relay: Callable[[Any], int]) -> int:
    """Run `relay(stdin_reader)` with the terminal raw and its size forwarded to `resize`; stdin
    (when `interactive`) is read through the detach-key watcher, which calls `detach`. 0 after a
    detach, else what `relay` returns."""
    from katadocker.cli.tty import DetachReader, Terminal

    reader = DetachReader(sys.stdin.fileno(), keys, detach) if interactive else None
    with Terminal(resize):
        code = relay(reader)
    return 0 if reader is not None and reader.detached else code


def attach_tty(session: Any, stdin: bool, detach_keys: str | None) -> int:
    """Run the attach `session` (engine/attach.py) of a ``-t`` container: its pty output raw on
    stdout, keys to its pty, our window size to its pty, docker's detach keys; the container's exit
    code (0 after a detach)."""
    keys = _detach_keys(detach_keys)
    return run_on_terminal(session.resize, session.detach, stdin, keys,
                           lambda reader: session.run(write_out, reader))


# --- exec ------------------------------------------------------------------------------------------

@command("exec", panel=COMMON, group="container", passthrough=True)
def exec_(
    container: Annotated[str, typer.Argument()],
    cmd: Annotated[list[str], typer.Argument(metavar="COMMAND [ARG...]")],
    detach: bool = typer.Option(False, "-d", "--detach", help="Detached mode: run command in the background"),
    detach_keys: str = typer.Option(None, "--detach-keys",
            help="Override the key sequence for detaching a container"),
    env: Annotated[list[str] | None, typer.Option("-e", "--env", help="Set environment variables")] = None,
    env_file: Annotated[list[str] | None, typer.Option("--env-file",
            help="Read in a file of environment variables")] = None,
    interactive: bool = typer.Option(False, "-i", "--interactive",
            help="Keep STDIN open even if not attached"),
    privileged: bool = typer.Option(False, "--privileged", help="Give extended privileges to the command"),
    tty: bool = typer.Option(False, "-t", "--tty", help="Allocate a pseudo-TTY"),
    user: str = typer.Option(None, "-u", "--user",
            help="Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
    workdir: str = typer.Option(None, "-w", "--workdir", help="Working directory inside the container"),
) -> None:
    """Execute a command in a running container"""
    from katadocker.cli.tty import window_size
    from katadocker.engine import containers
    from katadocker.engine.exec import ExecOptions, ExecSession, exec_env
    from katadocker.errors import CommandNotExecutable, CommandNotFound

    del privileged  # every container is its own VM: there is nothing more to grant
    if not detach:
        check_tty(interactive, tty)
    keys = _detach_keys(detach_keys)
    rows, cols = (window_size(1) or (0, 0)) if tty else (0, 0)
    opts = ExecOptions(cmd=list(cmd), env=exec_env(env or [], env_file or []), workdir=workdir, user=user,
                       tty=tty, interactive=interactive and not detach, detach=detach, rows=rows, cols=cols)
    session = ExecSession(_settings(), containers.get(_settings(), container), opts)
    try:
        session.start()
    except (CommandNotFound, CommandNotExecutable) as e:
        sys.stderr.write(e.message + "\n")
        raise typer.Exit(e.exit_code) from None
    if detach:
        session.close()
        return
    stdin = sys.stdin.buffer if interactive else None
    if tty:
        code = run_on_terminal(session.resize, session.close, interactive, keys,
                               lambda reader: session.run(write_out, reader))
    else:
        code = session.run(write_out, stdin)
    raise typer.Exit(code)


# --- attach ----------------------------------------------------------------------------------------

@command("attach", group="container")
def attach(
    container: str = typer.Argument(...),
    detach_keys: str = typer.Option(None, "--detach-keys",
            help="Override the key sequence for detaching a container"),
    no_stdin: bool = typer.Option(False, "--no-stdin", help="Do not attach STDIN"),
    sig_proxy: bool = typer.Option(True, "--sig-proxy", help="Proxy all received signals to the process"),
) -> None:
    """Attach local standard input, output, and error streams to a running container"""
    from katadocker.cli.container_cmds import _attach
    from katadocker.engine import containers
    from katadocker.errors import ClientError

    record = containers.get(_settings(), container)
    if record.state["Status"] == "paused":
        raise ClientError("You cannot attach to a paused container, unpause it first")
    if not record.running:
        raise ClientError("You cannot attach to a stopped container, start it first")
    cfg = record.config["Config"]
    stdin = bool(cfg.get("OpenStdin")) and not no_stdin
    check_tty(stdin, bool(cfg.get("Tty")))
    offset = record.log_path.stat().st_size if record.log_path.exists() else 0
    raise typer.Exit(_attach(record, stdin=stdin, sig_proxy=sig_proxy and not cfg.get("Tty"), offset=offset,
                             detach_keys=detach_keys))


# --- pause / unpause -------------------------------------------------------------------------------

@command("pause", group="container")
def pause(containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Pause all processes within one or more containers"""
    from katadocker.cli.container_cmds import _for_each
    from katadocker.engine import pause as engine

    settings = _settings()
    _for_each(containers_, lambda ref: engine.pause(settings, ref))


@command("unpause", group="container")
def unpause(containers_: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Unpause all processes within one or more containers"""
    from katadocker.cli.container_cmds import _for_each
    from katadocker.engine import pause as engine

    settings = _settings()
    _for_each(containers_, lambda ref: engine.unpause(settings, ref))


# --- cp / diff / export ----------------------------------------------------------------------------

def _split_container_path(arg: str) -> tuple[str | None, str]:
    """docker's splitCpArg: ``CONTAINER:PATH`` or a local path (absolute, or ``./x:y``, stays local)."""
    if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path


@command("cp", group="container")
def cp(
    src: Annotated[str, typer.Argument(metavar="SRC_PATH")],
    dest: Annotated[str, typer.Argument(metavar="DEST_PATH")],
    archive: bool = typer.Option(False, "-a", "--archive",
            help="Archive mode (copy all uid/gid information)"),
    follow_link: bool = typer.Option(False, "-L", "--follow-link",
            help="Always follow symbol link in SRC_PATH"),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress progress output during copy"),
) -> None:
    """Copy files/folders between a container and the local filesystem"""
    from katadocker.engine import copy
    from katadocker.errors import ClientError

    src_ctr, src_path = _split_container_path(src)
    dest_ctr, dest_path = _split_container_path(dest)
    if src_ctr is not None and dest_ctr is not None:
        raise ClientError("copying between containers is not supported")
    if src_ctr is None and dest_ctr is None:
        raise ClientError("must specify at least one container source")
    settings = _settings()
    if src_ctr is not None:
        if dest_path == "-":
            copy.tar_from_container(settings, src_ctr, src_path, sys.stdout.buffer, follow_link)
            return
        size = copy.copy_from_container(settings, src_ctr, src_path, dest_path, archive, follow_link)
    else:
        assert dest_ctr is not None
        if src_path == "-":
            copy.untar_to_container(settings, dest_ctr, dest_path, sys.stdin.buffer, archive)
            return
        size = copy.copy_to_container(settings, dest_ctr, src_path, dest_path, archive, follow_link)
    if not quiet and sys.stderr.isatty():
        from katadocker.units import human_size

        sys.stderr.write(f"Successfully copied {human_size(size)} to {dest}\n")


@command("diff", group="container")
def diff(container: Annotated[str, typer.Argument()]) -> None:
    """Inspect changes to files or directories on a container's filesystem"""
    from katadocker.engine.changes import container_changes

    for change in container_changes(_settings(), container):
        typer.echo(str(change))


@command("export", group="container")
def export(
    container: Annotated[str, typer.Argument()],
    output: str = typer.Option(None, "-o", "--output", help="Write to a file, instead of STDOUT"),
) -> None:
    """Export a container's filesystem as a tar archive"""
    from katadocker.engine import copy
    from katadocker.errors import ClientError

    if output is None:
        if sys.stdout.isatty():
            raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        copy.export(_settings(), container, sys.stdout.buffer)
        return
    with open(output, "wb") as out:
        copy.export(_settings(), container, out)


# --- top / stats -----------------------------------------------------------------------------------

@command("top", group="container", passthrough=True)
def top(
    container: Annotated[str, typer.Argument()],
    ps_args: Annotated[list[str] | None, typer.Argument(metavar="[ps OPTIONS]")] = None,
) -> None:
    """Display the running processes of a container"""
    from katadocker.cli import render
    from katadocker.engine.top import top as engine_top

    table = engine_top(_settings(), container, ps_args or [])
    lines = ["\t".join(table.titles), *("\t".join(row) for row in table.processes)]
    sys.stdout.write(render.tabwrite("\n".join(lines) + "\n", minwidth=20, padding=3))


STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
               "\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def _stats_row(ref: str, record: Any, sample: Any, cpu: float) -> dict[str, str]:
    from katadocker.units import bytes_size, human_size

    mem_perc = sample.mem_used / sample.mem_limit * 100 if sample.mem_limit else 0.0
    return {"ID": record.id[:12], "Container": ref, "Name": record.name.lstrip("/"),
            "CPUPerc": f"{cpu:.2f}%",
            "MemUsage": f"{bytes_size(sample.mem_used)} / {bytes_size(sample.mem_limit)}",
            "MemPerc": f"{mem_perc:.2f}%",
            "NetIO": f"{human_size(sample.net_rx)} / {human_size(sample.net_tx)}",
            "BlockIO": f"{human_size(sample.blk_read)} / {human_size(sample.blk_write)}",
            "PIDs": str(sample.pids)}


@command("stats", group="container")
def stats(
    containers_: Annotated[list[str] | None, typer.Argument(metavar="[CONTAINER...]")] = None,
    all_: bool = typer.Option(False, "-a", "--all", help="Show all containers (default shows just running)"),
    format_: FormatOpt = None,
    no_stream: bool = typer.Option(False, "--no-stream",
            help="Disable streaming stats and only pull the first result"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate output"),
) -> None:
    """Display a live stream of container(s) resource usage statistics"""
    from katadocker.cli import render
    from katadocker.engine import containers
    from katadocker.engine import stats as engine

    settings = _settings()
    refs = containers_ or [c["Id"] for c in containers.list_containers(settings, all=all_)]
    while True:
        rows = []
        for ref in refs:
            record = containers.get(settings, ref)
            sample, cpu = engine.measure(settings, record)
            row = _stats_row(ref, record, sample, cpu)
            if no_trunc:
                row["ID"] = record.id
            rows.append(row)
        text = render.format_list(format_, rows, STATS_HEADERS, STATS_TABLE)
        if no_stream:
            sys.stdout.write(text)
            return
        sys.stdout.write("\033[2J\033[H" + text)  # docker's redraw: clear the screen, home
        sys.stdout.flush()
