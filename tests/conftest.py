"""Fixtures shared by the whole suite.

- Real registries on loopback come from tests/support/registry_fixtures.py (`registry`, `auth_registry`,
  `token_registry`, `redirecting_registry`).
- `busybox_image` / `nginx_image`: real images pushed to the session's anonymous registry; the value
  is the reference to pull (``127.0.0.1:PORT/library/busybox:latest``).
- `kd`: the katadocker CLI against a fresh state root of the test's own; `vm_kd`: against a state root
  shared by the VM tests of the session (images pulled once), with guest assets built once per machine
  and cached in ``$KATADOCKER_TEST_CACHE/state/assets``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.cli import Katadocker
from tests.support.registry import RunningRegistry

pytest_plugins = ["tests.support.registry_fixtures"]

# The same cache test_vm_boot.py builds into (a state root whose assets/ every test root links to).
SHARED_ASSETS = images.CACHE / "state" / "assets"


#: State roots that outlive one test (the session's `vm_kd`): their networks are not leaks.
LIVE_ROOTS: list[Path] = []


def _katadocker_netns() -> set[str]:
    run = Path("/run/netns")
    return {p.name for p in run.iterdir() if p.name.startswith("kd-")} if run.exists() else set()


def _netns_of_live_roots() -> set[str]:
    return {json.loads(f.read_text())["Katadocker"]["Netns"]
            for root in LIVE_ROOTS for f in (root / "networks").glob("*.json")}


@pytest.fixture(autouse=True)
def no_leaked_network_namespaces() -> Iterator[None]:
    """Fail a test that leaves a katadocker network namespace behind (after its own fixtures have
    torn down), unless a state root that outlives the test owns it."""
    before = _katadocker_netns()
    yield
    leaked = _katadocker_netns() - before - _netns_of_live_roots()
    assert not leaked, f"network namespaces left behind: {sorted(leaked)}"


def _make_kd(base: Path, mirrors: list[str] = ()) -> Katadocker:
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    SHARED_ASSETS.mkdir(parents=True, exist_ok=True)
    if not (root / "assets").exists():
        (root / "assets").symlink_to(SHARED_ASSETS)
    config = base / "katadocker.json"
    config.write_text(json.dumps({"registry-mirrors": list(mirrors)}))
    docker_config = base / "docker-config"
    docker_config.mkdir(exist_ok=True)
    return Katadocker(root=root, config_file=config, docker_config=docker_config)


@pytest.fixture
def kd(tmp_path: Path) -> Iterator[Katadocker]:
    """The CLI with a state root of this test's own (no containers, no images); its containers and
    networks are removed afterwards."""
    kd = _make_kd(tmp_path)
    yield kd
    kd.teardown()


@pytest.fixture(scope="session")
def vm_kd() -> Iterator[Katadocker]:
    """The CLI with a state root shared by the session's VM tests. Tests name their containers or
    remove them; leftovers are force-removed at the end."""
    with tempfile.TemporaryDirectory(prefix="kd-vm-") as base:
        kd = _make_kd(Path(base))
        LIVE_ROOTS.append(kd.root)
        yield kd
        LIVE_ROOTS.remove(kd.root)
        kd.teardown()


@pytest.fixture(scope="session")
def busybox_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox test image in the session registry."""
    layout = tmp_path_factory.mktemp("busybox") / "layout"
    images.busybox_layout(layout)
    ref = f"{registry.host}/library/busybox:latest"
    images.push(layout, ref)
    return ref


@pytest.fixture(scope="session")
def nginx_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The nginx test image (a real Debian nginx-light root) in the session registry."""
    layout = tmp_path_factory.mktemp("nginx") / "layout"
    images.nginx_layout(layout)
    ref = f"{registry.host}/library/nginx:latest"
    images.push(layout, ref)
    return ref
