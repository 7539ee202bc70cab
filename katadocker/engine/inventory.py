"""Counts and facts about this katadocker installation, for `info` (and `system df` later)."""

from __future__ import annotations

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
