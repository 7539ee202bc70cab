"""The typer application, docker's command groups, and `command()` to register a verb in both forms.

Docker offers most verbs twice: top level (`docker pull`) and under a management command
(`docker image pull`). `command()` registers one function in both places, under the help panel
docker shows it in. Command modules import only typer at import time; engine modules are imported
inside the command bodies so that `katadocker --help` and `katadocker ps` start fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Annotated, Any

import click
import typer
from typer.core import TyperCommand

COMMON = "Common Commands"
MANAGEMENT = "Management Commands"
COMMANDS = "Commands"

# Docker's flags come in any order and repeat; `run IMAGE CMD --flag` passes --flag to CMD.
PASSTHROUGH = {"allow_interspersed_args": False, "ignore_unknown_options": False}

# docker's --format for lists (`ps`, `images`, ...) and with its -f short form for single objects
# (`inspect`, `version`, `info`).
FormatOpt = Annotated[str | None, typer.Option("--format", help="Format output using a custom template")]
ShortFormatOpt = Annotated[str | None, typer.Option("-f", "--format",
                                                    help="Format output using a custom template")]

# Go's strconv.ParseBool, which docker's bool flags use for an explicit ``=value``.
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
# The parser-only spelling that turns off a flag with no off spelling of its own (``--rm=false``):
# never shown in help or completions, and not something a user can type by accident.
_OFF = "--\0off-"


class DockerCommand(TyperCommand):
    """A command whose on/off flags also take docker's explicit forms ``--rm=false``, ``-d=true``,
    ``-H=false`` (a value only after ``=``; Go's ParseBool spellings; a bad value is docker's flag
    error). Option values, the container command after the first positional argument of
    `passthrough` commands, and everything after ``--`` reach click unchanged."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        for option in self._bool_flags(ctx):
            if not option.secondary_opts:
                parser.add_option(obj=option, opts=[_OFF + str(option.name)], dest=option.name,
                                  action="store_const", const=False)
        return parser

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._spell_bools(ctx, args))

    def _bool_flags(self, ctx: click.Context) -> list[click.Option]:
        return [p for p in self.get_params(ctx) if isinstance(p, click.Option) and p.is_bool_flag
                and not p.multiple and not p.count and p.expose_value]

    def _spell_bools(self, ctx: click.Context, args: list[str]) -> list[str]:
        """`args` with each ``FLAG=VALUE`` of an on/off flag replaced by its on or off spelling."""
        options = {name: p for p in self.get_params(ctx) if isinstance(p, click.Option)
                   for name in (*p.opts, *p.secondary_opts)}
        bools = {name: p for p in self._bool_flags(ctx) for name in p.opts}
        out: list[str] = []
        rest = iter(args)
        for arg in rest:
            positional = arg[:1] != "-" or arg == "-"
            if arg == "--" or (positional and not ctx.allow_interspersed_args):
                out += [arg, *rest]
                break
            name, sep, value = arg.partition("=")
            if sep and name in bools:
                out.append(_spell_bool(ctx, bools[name], value))
                continue
            out.append(arg)
            if sep or positional:
                continue
            # skip the option's value when it is the next argument: a value-taking option, or a
            # cluster of short flags ending in one (``-it``, ``-de`` VALUE)
            takes_value = _takes_value(options.get(arg))
            if not takes_value and not arg.startswith("--"):
                for i, ch in enumerate(arg[1:], 1):
                    option = options.get("-" + ch)
                    if option is None or _takes_value(option):
                        takes_value = option is not None and i == len(arg) - 1
                        break
            if takes_value:
                out.extend(itertools.islice(rest, 1))
        return out


def _takes_value(option: click.Option | None) -> bool:
    return option is not None and not option.is_flag and not option.count


def _spell_bool(ctx: click.Context, option: click.Option, value: str) -> str:
    """The on or off spelling of `option` for ``=value``; a value ParseBool refuses is docker's
    flag error."""
    if value not in GO_BOOLS:
        raise click.UsageError(f'invalid argument "{value}" for "{", ".join(option.opts)}" flag: '
                               f'strconv.ParseBool: parsing "{value}": invalid syntax', ctx)
    if GO_BOOLS[value]:
        return option.opts[-1]
    return option.secondary_opts[0] if option.secondary_opts else _OFF + str(option.name)


app = typer.Typer(
    name="katadocker",
    help="A self-sufficient runtime for containers, each in its own virtual machine",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["--help"]},
    pretty_exceptions_enable=False,
)


def _group(name: str, help_text: str) -> typer.Typer:
    sub = typer.Typer(name=name, help=help_text, no_args_is_help=True,
                      context_settings={"help_option_names": ["--help"]})
    app.add_typer(sub, name=name, rich_help_panel=MANAGEMENT)
    return sub


groups: dict[str, typer.Typer] = {
    "container": _group("container", "Manage containers"),
    "image": _group("image", "Manage images"),
    "network": _group("network", "Manage networks"),
    "volume": _group("volume", "Manage volumes"),
    "system": _group("system", "Manage katadocker"),
}


def command(
    name: str,
    *,
    panel: str | None = COMMANDS,
    group: str | None = None,
    group_name: str | None = None,
    group_aliases: tuple[str, ...] = (),
    passthrough: bool = False,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a verb at top level as `name` (unless `panel` is None) and under the management
    command `group` as `group_name` (default `name`) and each of `group_aliases`.

    `passthrough=True` stops option parsing at the first positional argument (for run/create/exec).
    Every on/off flag also takes docker's ``--flag=true|false`` (`DockerCommand`).
    """
    settings = dict(kwargs.pop("context_settings", {}))
    if passthrough:
        settings.update(PASSTHROUGH)
    settings.setdefault("help_option_names", ["--help"])
    kwargs.setdefault("cls", DockerCommand)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if panel is not None:
            app.command(name, rich_help_panel=panel, context_settings=settings, **kwargs)(fn)
        if group is not None:
            for alias in (group_name or name, *group_aliases):
                groups[group].command(alias, context_settings=settings, **kwargs)(fn)
        return fn

    return decorate
