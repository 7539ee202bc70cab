"""Markers of the compat suite."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "podman: runs the compat snippets against podman (deselect with "
                                       "-m 'not podman')")
