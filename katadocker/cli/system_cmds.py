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


@command("prepare", panel=None, group="system")
def prepare() -> None:
    """Build the guest assets (agent, kernel, initramfs) now instead of on the first run"""
    from katadocker.cli import context
    from katadocker.vm.assets import ensure_assets

    assets = ensure_assets(context.settings(), progress=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"kernel     {assets.kernel} ({assets.kernel_source}: {assets.reason})")
    typer.echo(f"initramfs  {assets.initramfs}")
    typer.echo(f"accel      {assets.accel.name} ({assets.accel.reason})")
