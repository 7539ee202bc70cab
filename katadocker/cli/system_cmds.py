"""`version` and `info`."""

from __future__ import annotations

import typer

from katadocker.cli.app import command


@command("version")
def version(
    format: str = typer.Option(None, "-f", "--format", help="Format output using a custom template"),
) -> None:
    """Show the katadocker version information"""
    from katadocker.cli import render
    from katadocker.engine import system

    render.template_or_text(format, system.version_report(), render.version_text)


@command("info", group="system")
def info(
    format: str = typer.Option(None, "-f", "--format", help="Format output using a custom template"),
) -> None:
    """Display system-wide information"""
    from katadocker.cli import context, render
    from katadocker.engine import system

    render.template_or_text(format, system.info_report(context.settings()), render.info_text)
