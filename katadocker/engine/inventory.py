"""Counts, facts and disk usage of this katadocker installation, for `info` and `system df`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from katadocker.config import Settings


def counts(settings: Settings) -> dict[str, int]:
    """Containers by state (after reconciling each with its monitor) and the number of images."""
    from katadocker.image.store import ImageStore
    from katadocker.state.containers import ContainerStore, reconcile

    store = ContainerStore(settings.state)
    statuses = [reconcile(store, record).status for record in store.all()]
    return {
        "containers": len(statuses),
        "running": statuses.count("running"),
        "paused": statuses.count("paused"),
        "stopped": len(statuses) - statuses.count("running") - statuses.count("paused"),
        "images": len(ImageStore(settings.state).list()),
    }


def vm_facts(settings: Settings) -> dict[str, str]:
    """The accelerator and the guest kernel a container would get, without building anything."""
    from katadocker.vm.accel import choose_accelerator
    from katadocker.vm.kernel import built_kernel, cached_debian_kernel, configured_kernel, host_kernel

    accel = choose_accelerator()
    kernel = (configured_kernel(settings) or built_kernel(settings) or cached_debian_kernel(settings)
              or host_kernel())
    facts = {"Accelerator": accel.name, "AcceleratorReason": accel.reason}
    if kernel is None:
        facts["GuestKernel"] = "none yet (built on first run: katadocker system prepare)"
    else:
        facts.update(GuestKernel=str(kernel.vmlinuz), GuestKernelVersion=kernel.version,
                     GuestKernelSource=kernel.source, GuestKernelReason=kernel.reason)
    return facts


# ---- system df --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageUsage:
    """One image in ``system df``: sizes in bytes; `shared_size` counts layers other images use too;
    `containers` is how many containers (any state) use it."""

    id: str
    repo_tags: list[str]
    created: int
    size: int
    shared_size: int
    containers: int


@dataclass(frozen=True)
class ContainerUsage:
    """One container in ``system df``: its ``ps`` summary and writable-layer bytes (SizeRw)."""

    summary: dict[str, Any]
    size_rw: int
    active: bool


@dataclass(frozen=True)
class VolumeUsage:
    """One volume in ``system df``: `links` is how many containers mount it."""

    name: str
    links: int
    size: int


@dataclass(frozen=True)
class DiskUsage:
    """docker's ``GET /system/df``: images, containers, volumes; `layers_size` counts each unpacked
    layer once (the Images SIZE); katadocker builds nothing, so there is no build cache."""

    images: list[ImageUsage] = field(default_factory=list)
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    layers_size: int = 0


def disk_usage(settings: Settings) -> DiskUsage:
    """Measure what ``system df`` reports (walks every container's upper dir and every volume)."""
    from katadocker.engine import container_view as view
    from katadocker.engine.images import _created_seconds, containers_by_image
    from katadocker.image.store import ImageStore
    from katadocker.state.containers import ContainerStore, reconcile

    images = ImageStore(settings.state)
    records = images.list()
    layer_users = Counter(d for r in records for d in set(r.layers))
    sizes = {d: images.layers.info(d).size for d in layer_users if images.layers.has(d)}
    used = containers_by_image(settings)
    image_rows = [ImageUsage(
        id=r.id, repo_tags=[t.familiar for t in _tags(r)], created=_created_seconds(r),
        size=sum(sizes.get(d, 0) for d in set(r.layers)),
        shared_size=sum(sizes.get(d, 0) for d in set(r.layers) if layer_users[d] > 1),
        containers=len(used.get(r.id, []))) for r in records]
    store = ContainerStore(settings.state)
    container_rows = []
    for record in store.all():
        record = reconcile(store, record)
        container_rows.append(ContainerUsage(view.summary(record), view.upper_size(record), record.running))
    return DiskUsage(image_rows, container_rows, _volumes(settings), sum(sizes.values()))


def _tags(record: Any) -> list[Any]:
    from katadocker.image.reference import parse_reference

    return [parse_reference(t) for t in record.repo_tags]


def _volumes(settings: Settings) -> list[VolumeUsage]:
    try:
        from katadocker.engine.volumes import VolumeStore, dir_size
    except ImportError:  # volumes not built into this katadocker
        return []
    store = VolumeStore(settings)
    return [VolumeUsage(v["Name"], len(store.users(v["Name"])), dir_size(store.data_dir(v["Name"])))
            for v in store.all()]
