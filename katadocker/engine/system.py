"""Reports for `version` and `info`, shaped like docker's Engine API answers."""

from __future__ import annotations

import os
import platform

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
