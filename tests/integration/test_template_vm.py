"""Template VMs (vm/template.py): the guest is booted once per set of guest assets and saved, and
early VMs are restored from it. A restored container gets the host's clock and randomness of its
own; a template that cannot be made or restored means the container boots, slower but the same."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from katadocker.vm.early import machine_spec
from katadocker.vm.template import PREFIX, RETRY_FAILED_AFTER, STATE, ensure_template, failure, template_path
from tests.conftest import SHARED_ASSETS
from tests.support.cli import Katadocker
from tests.support.leaks import early_vms

pytestmark = [pytest.mark.vm]


def monitor_log(kd: Katadocker, cid: str) -> str:
    return (kd.root / "containers" / cid / "monitor.log").read_text()


def test_containers_are_restored_from_the_template(vm_kd: Katadocker, busybox_image: str) -> None:
    """Two containers restored from one template read the host's clock, not the template's (START
    sets it), different random bytes and a boot ID each; the agent's reseed of the random pool
    (START's seed) reports no error. Whether bytes would repeat without it cannot be told apart: the
    guest kernel reseeds itself early in its uptime too, mixing in RDRAND."""
    vm_kd.ok("run", "--rm", "--network", "none", busybox_image, "true")  # the recipe names the template
    prepared = dict(line.split(maxsplit=1) for line in vm_kd.ok("system", "prepare").splitlines())
    assert Path(prepared["template"]).parent.name == "assets"
    saved = Path(prepared["template"], STATE).stat().st_mtime  # the template's guest clock stopped then
    time.sleep(max(0.0, saved + 10 - time.time()))  # a clock left at the template's is >= 10 s behind
    script = "date +%s; head -c 16 /dev/urandom | od -An -tx1; cat /proc/sys/kernel/random/boot_id"
    before = time.time()
    cids = [vm_kd.ok("run", "-d", busybox_image, "sh", "-c", script).strip() for _ in range(2)]
    try:
        outputs = []
        for cid in cids:
            assert vm_kd.ok("wait", cid).strip() == "0"
            assert "took over the early VM, restored from template-" in monitor_log(vm_kd, cid)
            console = (vm_kd.root / "containers" / cid / "console.log").read_text()
            assert "set the clock" not in console and "reseed the random pool" not in console
            outputs.append(vm_kd.ok("logs", cid).splitlines())
        after = time.time()
        for clock, _, _ in outputs:
            assert before - 2 <= int(clock) <= after + 1
        assert outputs[0][1] != outputs[1][1]
        assert outputs[0][2] != outputs[1][2]
    finally:
        vm_kd.ok("rm", "-f", *cids)


def own_assets(kd: Katadocker) -> Path:
    """Give `kd`'s state root an assets dir of its own, with the shared katadocker kernel: its
    agent, initramfs and template are built by its first run."""
    assets = kd.root / "assets"
    if assets.is_symlink():
        assets.unlink()
    assets.mkdir(exist_ok=True)
    shutil.copytree(SHARED_ASSETS / "kernel", assets / "kernel", dirs_exist_ok=True)
    return assets


def test_a_template_that_cannot_be_restored_means_a_boot(kd: Katadocker, busybox_image: str) -> None:
    assets = own_assets(kd)
    kd.ok("pull", "-q", busybox_image)
    kd.ok("run", "--rm", "--network", "none", busybox_image, "true")
    [template] = [p for p in assets.glob(PREFIX + "*") if p.is_dir()]
    (template / STATE).write_bytes(b"not a migration stream")
    cid = kd.ok("run", "-d", "--network", "none", busybox_image, "echo", "booted").strip()
    assert kd.ok("wait", cid).strip() == "0"
    assert kd.ok("logs", cid) == "booted\n"
    log = monitor_log(kd, cid)
    assert "the early VM is unusable: cannot restore the template VM" in log
    assert "took over the early VM" not in log
    kd.ok("rm", cid)
    assert early_vms(kd.root) == []


def test_a_machine_that_cannot_boot_gets_no_template(tmp_path: Path) -> None:
    """The template's boot fails (no kernel QEMU can load): a warning, the reason kept beside it, no
    retry on the next run but an hour later, nothing left behind."""
    kernel, initramfs = tmp_path / "vmlinuz", tmp_path / "initramfs-0123.cpio"
    kernel.write_bytes(b"not a kernel")
    initramfs.write_bytes(b"")
    spec = machine_spec(kernel, initramfs, "tcg", restored=True)
    template = template_path(tmp_path, spec)
    said: list[str] = []
    assert not ensure_template(template, spec, said.append)
    assert said[-1].startswith("warning: no template VM, containers will boot instead: QEMU exited")
    failed = template.with_name(template.name + ".failed")
    assert "QEMU exited" in failed.read_text()
    assert failure(template).startswith("QEMU exited")  # what `system prepare` shows
    said.clear()
    assert not ensure_template(template, spec, said.append) and said == []  # not tried again
    os.utime(failed, (time.time() - RETRY_FAILED_AFTER - 1,) * 2)  # until an hour later
    assert not ensure_template(template, spec, said.append) and said[-1].startswith("warning: no template VM")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kernel.name, initramfs.name, failed.name])
