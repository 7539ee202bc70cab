"""Run every snippet of snippets.py with `alias docker=katadocker`, and the same against podman.

The katadocker run uses the session's VM state root (`vm_kd`: images pulled once, guest assets
cached); the podman run a private podman storage root with the test registry allowed over HTTP.
Each snippet gets `$BUSYBOX` (the registry's busybox) and `$REG`; leftovers named ``compat-…`` are
force-removed after each one. Differences between the two are fixed in katadocker or listed in
docs/compat.md (`PODMAN_DIFFERENCES` marks the snippets podman is known to fail).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.snippets import SNIPPETS, Snippet
from tests.support.cli import Katadocker
from tests.support.registry import RunningRegistry

HERE = Path(__file__).parent
#: Snippets podman 4.3 fails, and why (each is a row of docs/compat.md's podman table).
PODMAN_DIFFERENCES = {
    "pull_quiet_prints_reference": "podman pull -q prints the image ID, docker the reference",
    "pull_missing_repository_fails": "podman pull of a missing repository exits 125 (docker: 1)",
    "rmi_missing_image": "podman says 'image not known' (docker: 'No such image')",
    "inspect_missing_object": "podman inspect of a missing object exits 125 (docker: 1)",
    "rm_missing_container": "podman says 'no container with name or ID … found' and exits 125 (docker: 1)",
    "logs_missing_container": "podman logs of a missing container exits 125 (docker: 1)",
    "info_format_fields": "podman info has no OSType/NCPU (its fields are .Host.Os, .Host.CPUs)",
    "rename_then_inspect_name": "podman's .Name has no leading slash",
    "container_prune_force": "podman container prune prints IDs only, no 'Total reclaimed space:'",
    "events_since_until": "podman names the removal event 'remove' (docker: 'destroy')",
    "events_die_exit_code": "podman's die event has no exitCode attribute",
}


def _run(snippet: Snippet, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(HERE / "harness.sh"), "/dev/stdin"], input=snippet.script, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _cleanup(env: dict[str, str]) -> None:
    """Force-remove the snippets' leftovers (containers named compat-*, the compat-net network)."""
    script = ('ids=$(docker ps -aq --filter name=compat-); '
              '[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1; '
              "docker network rm compat-net >/dev/null 2>&1; true")
    subprocess.run(["bash", str(HERE / "harness.sh"), "/dev/stdin"], input=script, env=env,
                   capture_output=True, text=True, timeout=300, check=False)


def _params(podman: bool = False) -> list:
    marks = [pytest.mark.podman] if podman else []
    return [pytest.param(s, id=s.name, marks=marks + ([pytest.mark.vm] if s.vm else []))
            for s in SNIPPETS]


@pytest.fixture(scope="module")
def katadocker_env(vm_kd: Katadocker, busybox_image: str,
                   registry: RunningRegistry) -> Iterator[dict[str, str]]:
    env = vm_kd.env()
    env.update(DOCKER_CMD=str(Path(sys.executable).with_name("katadocker")), BUSYBOX=busybox_image,
               REG=registry.host)
    yield env
    _cleanup(env)


@pytest.mark.registry
@pytest.mark.parametrize("snippet", _params())
def test_katadocker(snippet: Snippet, katadocker_env: dict[str, str]) -> None:
    try:
        proc = _run(snippet, katadocker_env)
    finally:
        _cleanup(katadocker_env)
    assert proc.returncode == 0, f"{snippet.script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


@pytest.fixture(scope="module")
def podman_env(busybox_image: str, registry: RunningRegistry,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("podman") is None or not Path("/usr/sbin/runc").exists():
        pytest.skip("podman with runc is not installed")
    root = tmp_path_factory.mktemp("podman")
    conf = root / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
    env = dict(os.environ)
    env.update(DOCKER_CMD=str(HERE / "podman-docker"), BUSYBOX=busybox_image, REG=registry.host,
               PODMAN_COMPAT_ROOT=str(root), CONTAINERS_REGISTRIES_CONF=str(conf))
    yield env
    _cleanup(env)
    subprocess.run([str(HERE / "podman-docker"), "system", "reset", "-f"], env=env, capture_output=True,
                   timeout=300, check=False)


@pytest.mark.registry
@pytest.mark.parametrize("snippet", _params(podman=True))
def test_podman(snippet: Snippet, podman_env: dict[str, str]) -> None:
    try:
        proc = _run(snippet, podman_env)
    finally:
        _cleanup(podman_env)
    if snippet.name in PODMAN_DIFFERENCES:
        assert proc.returncode != 0, f"podman now agrees: drop {snippet.name} from PODMAN_DIFFERENCES"
        pytest.xfail(PODMAN_DIFFERENCES[snippet.name])
    assert proc.returncode == 0, f"{snippet.script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
