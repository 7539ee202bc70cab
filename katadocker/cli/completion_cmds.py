"""`katadocker completion bash|zsh|fish`: print the shell completion script (as `docker completion`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from katadocker.cli.app import command


class Shell(StrEnum):
    """The shells a completion script exists for."""

    bash = "bash"
    fish = "fish"
    zsh = "zsh"


@command("completion")
def completion(shell: Annotated[Shell, typer.Argument(help="The shell to complete in")]) -> None:
    """Generate the autocompletion script for the specified shell"""
    from katadocker.cli.completion import cli_command, generate

    typer.echo(generate(shell.value, cli_command()), nl=False)
