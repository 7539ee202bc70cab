"""The mount flags `run` and `create` share (docker's names, short and long), declared once.

Each is an ``Annotated`` type for a command parameter; `create_kwargs` turns the parsed values into
the ``mounts`` field of `katadocker.engine.containers.CreateOptions` (an engine.mounts.MountRequest,
parsed and checked by the engine). Imports only typer (fast start-up).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

Volume = Annotated[list[str] | None, typer.Option("-v", "--volume", help="Bind mount a volume")]
Mount = Annotated[list[str] | None, typer.Option(
    "--mount", help="Attach a filesystem mount to the container")]
Tmpfs = Annotated[list[str] | None, typer.Option("--tmpfs", help="Mount a tmpfs directory")]
VolumesFrom = Annotated[list[str] | None, typer.Option(
    "--volumes-from", help="Mount volumes from the specified container(s)")]
ReadOnly = Annotated[bool, typer.Option(
    "--read-only", help="Mount the container's root filesystem as read only")]


def create_kwargs(volume: list[str] | None, mount: list[str] | None, tmpfs: list[str] | None,
                  volumes_from: list[str] | None, read_only: bool) -> dict[str, Any]:
    """The ``mounts`` field of ``CreateOptions`` from the flags above."""
    from katadocker.engine.mounts import MountRequest

    return {"mounts": MountRequest(volumes=volume or [], mounts=mount or [], tmpfs=tmpfs or [],
                                   volumes_from=volumes_from or [], read_only=read_only)}
