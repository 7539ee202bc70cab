"""Session-wide real registries on loopback (see tests/support/registry.py).

Load with ``pytest_plugins = ["tests.support.registry_fixtures"]`` in tests/conftest.py.
Each fixture starts its registry on first use and stops it at the end of the session.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.registry import RunningRegistry, start_registry


def _needs_registry() -> None:
    for tool in ("docker-registry", "skopeo", "openssl", "htpasswd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/setup")


def _serve(factory: pytest.TempPathFactory, name: str, mode: str,
           **kwargs: bool) -> Iterator[RunningRegistry]:
    """Start a registry in `mode` for the session; stop it when the session ends."""
    _needs_registry()
    running = start_registry(factory.mktemp(name), mode, **kwargs)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """An anonymous registry (pull and push for anyone)."""
    yield from _serve(tmp_path_factory, "registry", "anonymous")


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry with htpasswd basic auth for USERNAME/PASSWORD."""
    yield from _serve(tmp_path_factory, "auth-registry", "basic")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A registry with Docker Hub's bearer-token auth (`registry.token_server` issues the tokens)."""
    yield from _serve(tmp_path_factory, "token-registry", "token")


@pytest.fixture(scope="session")
def redirecting_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A basic-auth registry whose blob GETs redirect to `registry.cdn` (which ignores Range)."""
    yield from _serve(tmp_path_factory, "redirect-registry", "basic", redirect_blobs=True)
