"""docker's multi-object ``inspect`` output, for every inspect verb (container, image, network, volume
and the generic ``inspect``).

Without ``-f``: a 4-space-indented JSON array (``[]`` when nothing was found); ``-f json``: the array
as one compact JSON line; any other ``-f``: the Go template once per object (``\\t``/``\\n`` escapes
expanded). Objects that cannot be found are reported on stderr and the command exits 1 after
printing the others. Imports only typer at module level (fast start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer


def print_objects(found: Sequence[Any], fmt: str | None, *, blank_if_none: bool = False) -> None:
    """Print the inspected objects as described above; `blank_if_none` prints an empty line when a
    template has no object to render (docker's ``image inspect``)."""
    import json

    if not fmt:
        typer.echo(json.dumps(found, indent=4, ensure_ascii=False) if found else "[]")
    elif fmt == "json":
        typer.echo(json.dumps(found, ensure_ascii=False))
    else:
        from katadocker.cli import gotemplate

        template = fmt.replace("\\t", "\t").replace("\\n", "\n")
        typer.echo("".join(gotemplate.render(template, obj) + "\n" for obj in found)
                   or ("\n" if blank_if_none else ""), nl=False)


def inspect_objects(refs: Sequence[str], get: Callable[[str], Any], fmt: str | None) -> None:
    """`get` each reference in order, print what was found, report each failure (a KatadockerError)
    as docker does; exit 1 if any failed."""
    from katadocker.cli.main import report_error
    from katadocker.errors import KatadockerError

    found, failed = [], False
    for ref in refs:
        try:
            found.append(get(ref))
        except KatadockerError as e:
            report_error(e)
            failed = True
    print_objects(found, fmt)
    if failed:
        raise typer.Exit(1)
