"""Settings that shape every command: the state root, docker's client config dir, and katadocker's
own daemon.json-like file.

katadocker's file is ``/etc/katadocker/config.json`` (``KATADOCKER_CONFIG`` names another one) and
takes the keys of docker's ``daemon.json`` that matter to a daemonless tool::

    {"registry-mirrors": ["http://127.0.0.1:5000"],
     "insecure-registries": ["myregistry:5000"]}

A missing file means defaults; a malformed one is an error (never silently ignored).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from katadocker.errors import InvalidArgument
from katadocker.state.paths import StateRoot, default_root

DEFAULT_CONFIG_FILE = Path("/etc/katadocker/config.json")


def docker_config_dir(explicit: str | None = None) -> Path:
    """Docker's client config dir: ``--config``, else ``DOCKER_CONFIG``, else ``~/.docker``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("DOCKER_CONFIG")
    return Path(env) if env else Path.home() / ".docker"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment."""

    state: StateRoot
    docker_config: Path
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    debug: bool = False
    extra: dict = field(default_factory=dict)


def load_settings(root: str | None = None, docker_config: str | None = None, debug: bool = False) -> Settings:
    """Build Settings from flags, environment and katadocker's config file."""
    path = Path(os.environ.get("KATADOCKER_CONFIG", DEFAULT_CONFIG_FILE))
    data: dict = {}
    if path.exists():
        try:
            data = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"invalid katadocker config {path}: {e}") from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"invalid katadocker config {path}: expected a JSON object")
    return Settings(
        state=StateRoot(Path(root) if root else default_root()),
        docker_config=docker_config_dir(docker_config),
        registry_mirrors=tuple(data.get("registry-mirrors", ())),
        insecure_registries=tuple(data.get("insecure-registries", ())),
        debug=debug,
        extra={k: v for k, v in data.items() if k not in ("registry-mirrors", "insecure-registries")},
    )
