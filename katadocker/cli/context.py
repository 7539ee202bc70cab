"""Per-invocation state of the CLI: the global options, turned into Settings on first use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from katadocker.config import Settings


@dataclass
class GlobalOptions:
    debug: bool = False
    log_level: str = "info"
    config: str | None = None
    root: str | None = None


options = GlobalOptions()
_settings: Settings | None = None


def settings() -> Settings:
    """The Settings for this invocation (state root created on first use)."""
    global _settings
    if _settings is None:
        from katadocker.config import load_settings

        _settings = load_settings(root=options.root, docker_config=options.config, debug=options.debug)
        _settings.state.ensure()
    return _settings
