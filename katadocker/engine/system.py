"""Reports for `version` and `info`, shaped like docker's Engine API answers; `system prune`."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from katadocker import API_VERSION, DOCKER_COMPAT_VERSION, __version__
from katadocker.config import Settings


def version_report() -> dict:
    """docker's `version` structure: a Client and a Server section (the server is katadocker itself)."""
    go_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    common = {"Os": "linux", "Arch": go_arch, "APIVersion": API_VERSION, "GitCommit": "katadocker",
              "GoVersion": f"python{platform.python_version()}", "BuildTime": ""}
    return {
        "Client": {"Platform": {"Name": "katadocker"}, "Version": DOCKER_COMPAT_VERSION,
                   "DefaultAPIVersion": API_VERSION, "Context": "default", **common},
        "Server": {"Platform": {"Name": "katadocker"}, "Version": DOCKER_COMPAT_VERSION,
                   "KatadockerVersion": __version__, "MinAPIVersion": "1.24", "Experimental": False,
                   "KernelVersion": os.uname().release,
                   "Components": [{"Name": "katadocker", "Version": __version__}], **common},
    }


def info_report(settings: Settings) -> dict:
    """docker's `info` fields that scripts read, plus katadocker's accelerator and guest kernel."""
    from katadocker.engine import inventory

    counts = inventory.counts(settings)
    go_arch = platform.machine()
    return {
        "ID": "",
        "ExperimentalBuild": False,
        "Containers": counts["containers"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": counts["images"],
        "Driver": "overlay2",
        "DockerRootDir": str(settings.state.root),
        "ServerVersion": DOCKER_COMPAT_VERSION,
        "OperatingSystem": _os_pretty_name(),
        "OSType": "linux",
        "Architecture": go_arch,
        "KernelVersion": os.uname().release,
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Name": platform.node(),
        "SecurityOptions": ["name=vm"],
        "RegistryConfig": {"Mirrors": list(settings.registry_mirrors),
                           "InsecureRegistryCIDRs": list(settings.insecure_registries)},
        "Runtimes": {"katadocker": {"path": "qemu-system-x86_64"}},
        "DefaultRuntime": "katadocker",
        "Katadocker": inventory.vm_facts(settings),
    }


def _os_pretty_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


# ---- system prune -----------------------------------------------------------------------------------

PRUNE_FILTERS = frozenset({"until", "label", "label!"})


@dataclass
class PruneReport:
    """What ``system prune`` removed, in docker's order: containers (IDs), networks (names),
    volumes (names), images (delete report items); `reclaimed` bytes in all."""

    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    reclaimed: int = 0


def prune(settings: Settings, all_images: bool = False, volumes: bool = False,
          filters: dict[str, list[str]] | None = None) -> PruneReport:
    """docker system prune: stopped containers, unused user networks, (with `volumes`) unused
    anonymous volumes, dangling images (every unused image with `all_images`).

    `filters` (from engine.images.parse_filters with `PRUNE_FILTERS`): ``until`` applies to
    containers and images, ``label``/``label!`` to all. Raises InvalidArgument for ``until`` with
    `volumes`, as docker's client does, and for ``label!`` on objects that cannot take it.
    """
    from katadocker.engine import containers, images
    from katadocker.engine.logs import parse_timestamp
    from katadocker.errors import InvalidArgument
    from katadocker.network import networks

    filters = filters or {}
    if volumes and "until" in filters:
        raise InvalidArgument('ERROR: The "until" filter is not supported with "--volumes"')
    if "label!" in filters:
        raise InvalidArgument("katadocker does not support the 'label!' prune filter yet")
    labels = filters.get("label", [])
    until = min((parse_timestamp(v, "until") for v in filters.get("until", [])), default=None)
    report = PruneReport()
    report.containers, report.reclaimed = containers.prune(settings, until=until, labels=labels)
    report.networks = networks.prune(settings, labels)
    if volumes:
        from katadocker.engine.volumes import VolumeStore

        report.volumes, freed = VolumeStore(settings).prune(labels=labels)
        report.reclaimed += freed
    image_filters = {k: v for k, v in filters.items() if k in images.PRUNE_FILTERS}
    report.images, freed = images.prune_images(settings, all_images, image_filters)
    report.reclaimed += freed
    return report
