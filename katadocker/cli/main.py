"""Entry point: global options, error-to-exit-code mapping, and the registration of every verb.

Exit codes follow docker: 0 success; 1 a failed command (daemon-side errors, wrong argument
count); 125 flag errors for every command and any failure of `run`/`create` before the container
ran; 126/127 when the container's command cannot be executed / is not found; otherwise the
container's own code.
"""

from __future__ import annotations

import atexit
import copy
import os
import sys
import threading
import traceback
from typing import NoReturn

import click
import typer

from katadocker import DOCKER_COMPAT_VERSION, __version__
from katadocker.cli import context
from katadocker.cli.app import app
from katadocker.cli.entry import invoked_verb

# Command modules register their verbs on import; each imports only typer at module level.
from katadocker.cli import completion_cmds, container_cmds, image_cmds, network_cmds, system_cmds  # noqa: E402,F401  isort: skip
from katadocker.cli import port_cmds  # noqa: E402,F401  isort: skip
from katadocker.cli import interactive_cmds  # noqa: E402,F401  isort: skip
from katadocker.cli import volume_cmds  # noqa: E402,F401  isort: skip



def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"katadocker version {__version__} (docker {DOCKER_COMPAT_VERSION} compatible)")
        raise typer.Exit()


@app.callback()
def global_options(
    debug: bool = typer.Option(False, "-D", "--debug", help="Enable debug mode"),
    log_level: str = typer.Option("info", "-l", "--log-level",
                                  help='Set the logging level ("debug", "info", "warn", "error", "fatal")'),
    config: str = typer.Option(None, "--config", help="Location of client config files", show_default=False),
    root: str = typer.Option(None, "--root", envvar="KATADOCKER_ROOT",
                             help="State root (default /var/lib/katadocker)", show_default=False),
    version: bool = typer.Option(False, "-v", "--version", callback=_version_callback, is_eager=True,
                                 help="Print version information and quit"),
) -> None:
    """A self-sufficient runtime for containers, each in its own virtual machine."""
    context.options.debug = debug
    context.options.log_level = log_level
    context.options.config = config
    context.options.root = root


def app_for(args: list[str]) -> typer.Typer:
    """The application to run `args` with: `app` reduced to the one top-level command or group
    `args` invokes, when it names one, so that only that one is turned into a click command (typer
    builds every registered command's parameters when it runs: ~0.1-0.2 s of each CLI start for
    93 commands on a loaded host); `app` itself otherwise (help, unknown verbs). `completion`
    walks the whole tree, so it always gets all of it."""
    verb = invoked_verb(args)
    commands = [c for c in app.registered_commands if c.name == verb]
    groups = [g for g in app.registered_groups if g.name == verb]
    if verb == "completion" or not (commands or groups):
        return app
    reduced = copy.copy(app)
    reduced.registered_commands = commands
    reduced.registered_groups = groups
    return reduced


def _usage_line(ctx: click.Context | None) -> str:
    if ctx is None:
        return ""
    return ctx.get_usage().replace("Usage: ", "Usage:  ", 1)


def _report_usage_error(e: click.UsageError) -> int:
    """Docker's flag error: message, usage line, help hint; exit 125 (1 for unknown commands)."""
    ctx = e.ctx
    path = ctx.command_path if ctx else "katadocker"
    msg = e.format_message()
    if isinstance(e, click.NoSuchOption):
        msg = f"unknown flag: {e.option_name}"
    if msg.startswith("No such command"):
        name = msg.split("'")[1] if "'" in msg else msg
        sys.stderr.write(f"katadocker: unknown command: {path} {name}\n\n"
                         f"Run '{path} --help' for more information\n")
        return 1
    sys.stderr.write(f"{msg}\n\n{_usage_line(ctx)}\n\nRun '{path} --help' for more information\n")
    return 125


def error_text(e: BaseException) -> str:
    """The text docker prints for a failure (daemon prefix, client prefix or bare); with --debug
    followed by the error's detail (helper command lines, console tail)."""
    from katadocker.errors import KatadockerError

    if not isinstance(e, KatadockerError):
        return f"Error: {e}"
    text = f"Error response from daemon: {e.message}" if e.daemon else e.client_prefix + e.message
    if context.options.debug and e.detail:
        text += "\n" + e.detail
    return text


def report_error(e: BaseException, *, prefix: str = "", suffix: str = "") -> None:
    """Print `e` as docker would (see error_text) between `prefix` and `suffix`; with --debug add
    the traceback."""
    sys.stderr.write(f"{prefix}{error_text(e)}{suffix}\n")
    if context.options.debug:
        traceback.print_exception(e, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with docker's exit code."""
    from katadocker.errors import KatadockerError

    try:
        args = sys.argv[1:] if argv is None else argv
        rv = app_for(args)(args=args, prog_name="katadocker", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.UsageError as e:
        code = _report_usage_error(e)
    except click.exceptions.Abort:
        code = 130
    except KatadockerError as e:
        report_error(e)
        code = e.exit_code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 1
    exit_now(code)


def exit_now(code: int) -> NoReturn:
    """End the process with `code` without tearing the interpreter down: freeing every imported
    module costs ~45 ms of each CLI call on this 2-core host, for a process that ends anyway. The
    exit handlers (atexit) still run and the standard streams are flushed; while another non-daemon
    thread runs, the normal exit (which waits for it) is taken instead."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe or stream: nothing more to say
            code = code or 1
    os._exit(code)
