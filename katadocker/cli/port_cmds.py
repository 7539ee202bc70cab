"""``katadocker port CONTAINER [PRIVATE_PORT[/PROTO]]``: parsing and rendering only.

Docker 28's output: ``80/tcp -> 0.0.0.0:8080`` lines naturally sorted, or with a port just the
``0.0.0.0:8080`` lines; ``Error: No public port '81' published for c`` (exit 1) when that port has
no binding, which is also what a stopped container answers (it publishes nothing).
"""

from __future__ import annotations

import typer

from katadocker.cli.app import command


@command("port", group="container")
def port(
    container: str = typer.Argument(..., metavar="CONTAINER"),
    private_port: str = typer.Argument(None, metavar="[PRIVATE_PORT[/PROTO]]"),
) -> None:
    """List port mappings or a specific mapping for the container"""
    from katadocker.cli import context
    from katadocker.engine import networking
    from katadocker.network.ports import port_lines

    published = networking.published_ports(context.settings(), container, private_port)
    for line in port_lines(published, container, private_port):
        typer.echo(line)
