"""docker top: the container's processes, as seen inside its VM.

docker runs ``ps`` on the host and keeps the container's PIDs; a katadocker container's processes
live in its guest, so `top` runs the image's own ``ps`` there (through exec) with the user's
options (docker's default ``-ef``). An image without ``ps`` gets docker's error text for a failing
ps. The output is split as docker does: the first line gives the titles, the last column takes
the rest of each line.
"""

from __future__ import annotations

from dataclasses import dataclass

from katadocker.config import Settings
from katadocker.engine import containers
from katadocker.engine.exec import check_runnable, run_collect
from katadocker.errors import CommandNotFound, KatadockerError


@dataclass(frozen=True)
class ProcessTable:
    """docker's ContainerTopOKBody: column titles and one row of cells per process."""

    titles: list[str]
    processes: list[list[str]]


def parse_ps(output: str) -> ProcessTable:
    """Split ps output into titles and rows (the last column keeps its spaces)."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    if not lines:
        return ProcessTable([], [])
    titles = lines[0].split()
    rows = [ln.split(None, len(titles) - 1) for ln in lines[1:]]
    return ProcessTable(titles, rows)


def top(settings: Settings, ref: str, ps_args: list[str]) -> ProcessTable:
    """Run ``ps <ps_args>`` (default ``-ef``) in the container; its table."""
    record = containers.get(settings, ref)
    check_runnable(record)
    args = ps_args or ["-ef"]
    try:
        code, out, err = run_collect(settings, record, ["ps", *args])
    except CommandNotFound:
        raise KatadockerError("ps: executable file not found in the container's $PATH "
                              "(katadocker runs the image's own ps inside the VM)") from None
    if code != 0:
        raise KatadockerError(f"ps: exit status {code}: {err.decode(errors='replace').strip()}")
    return parse_ps(out.decode(errors="replace"))
