"""Where a state root and the run dir are, as plain strings.

state/paths.py builds its Paths from these. They are apart for the one caller that must not import
pathlib (with re and the rest, ~20 ms): the fork that starts an early VM between the CLI's start and
QEMU's (engine/monitor_prestart.py).
"""

from __future__ import annotations

import os

#: The state root when neither ``--root`` nor ``KATADOCKER_ROOT`` names one.
DEFAULT_ROOT = "/var/lib/katadocker"
#: Short-lived sockets (containers', early VMs'): short paths, for unix socket addresses.
RUN_ROOT = os.environ.get("KATADOCKER_RUN_DIR", "/run/katadocker")
#: Subdirectories of a state root: guest assets, and scratch on the root's filesystem.
ASSETS = "assets"
TMP = "tmp"


def root_dir(root: str | None) -> str:
    """The state root: `root` (the ``--root`` value) made absolute, else ``KATADOCKER_ROOT``, else
    the default."""
    if root:
        return os.path.abspath(root)
    return os.environ.get("KATADOCKER_ROOT") or DEFAULT_ROOT
