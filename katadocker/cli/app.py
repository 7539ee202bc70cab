"""The typer application, docker's command groups, and `command()` to register a verb in both forms.

Docker offers most verbs twice: top level (`docker pull`) and under a management command
(`docker image pull`). `command()` registers one function in both places, under the help panel
docker shows it in. Command modules import only typer at import time; engine modules are imported
inside the command bodies so that `katadocker --help` and `katadocker ps` start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

COMMON = "Common Commands"
MANAGEMENT = "Management Commands"
COMMANDS = "Commands"

# Docker's flags come in any order and repeat; `run IMAGE CMD --flag` passes --flag to CMD.
PASSTHROUGH = {"allow_interspersed_args": False, "ignore_unknown_options": False}

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
    """
    settings = dict(kwargs.pop("context_settings", {}))
    if passthrough:
        settings.update(PASSTHROUGH)
    settings.setdefault("help_option_names", ["--help"])

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if panel is not None:
            app.command(name, rich_help_panel=panel, context_settings=settings, **kwargs)(fn)
        if group is not None:
            for alias in (group_name or name, *group_aliases):
                groups[group].command(alias, context_settings=settings, **kwargs)(fn)
        return fn

    return decorate


def order_help_panels() -> None:
    """Show "Common Commands" before the others, as docker's help does (typer lists panels in the
    order their first command was registered)."""
    app.registered_commands.sort(key=lambda c: c.rich_help_panel != COMMON)
