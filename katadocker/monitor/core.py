"""What the monitor does for its container (`Monitor.run`), once __main__.py has handed it over:

1. mounts the overlay root;
2. attaches the network (none for ``--network none``), starts virtiofsd, takes the early VM when it
   fits or starts QEMU with the guest assets the CLI hands over (``--assets``; ensured here without
   it), and hot-adds the container's shares and NIC; then, while the guest boots, the DNS responder
   and port relays, resolves USER and creates WORKDIR, and connects to the agent;
3. starts the process, puts QEMU's priority back to normal (vm/boot_priority.py), writes
   ``runtime.json`` and then ``started``;
4. copies the process's output into the json-file log, serves the control socket (engine/control.py:
   kill, wait, stdin), watches QEMU and virtiofsd;
5. on the way out: powers the VM off (kills it when nothing of it is kept: ``--rm`` without
   volumes), stops virtiofsd, unmounts, detaches the network, writes the ``exit`` file atomically,
   answers waiters, and removes an ``--rm`` container (an attached ``run --rm`` waits for that).

The monitor never writes state.json (the CLI folds ``started``/``exit`` into it). A failure before
the process started is recorded in ``exit`` with a non-empty Error, which `engine.containers.start`
reports. With ``--attached`` a client is about to wait for the exit code; an ``--rm`` container is
then kept until it has been told (at most `ATTACH_GRACE` seconds).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import os
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from katadocker.config import Settings
from katadocker.engine import events, logs, process_spec, rootfs
from katadocker.errors import CommandNotExecutable, CommandNotFound, KatadockerError, VMError
from katadocker.state import clock
from katadocker.state.atomic import write_json
from katadocker.state.containers import ContainerRecord, ContainerStore, write_pid_file

log = logging.getLogger("katadocker.monitor")

#: Boot + agent hello. TCG boots take seconds; several VMs on two busy cores take much longer.
BOOT_TIMEOUT = float(os.environ.get("KATADOCKER_BOOT_TIMEOUT", "240"))
#: After a SIGKILL request, how long the process gets to be reported dead before the VM is killed.
KILL_GRACE = 5.0
#: How long an --rm container waits for its attached client to collect the exit code.
ATTACH_GRACE = 30.0
#: Extra guest RAM on top of ``--memory`` for the guest kernel and agent.
MEMORY_OVERHEAD_MIB = 64


class Monitor:
    """Owns one container's VM and helpers for the container's lifetime (see the module doc)."""

    def __init__(self, settings: Settings, store: ContainerStore, record: ContainerRecord, attached: bool,
                 assets: dict[str, str] | None = None, early: Any = None):
        self.settings = settings
        self.early = early  # vm.early.EarlyVM booting for this container, or None
        self.assets = assets  # {"kernel", "initramfs", "accel"} as the CLI just ensured them, or None
        self.store = store
        self.record = record
        self.attached = attached
        self.vm: Any = None
        self.fs: Any = None
        self.agent: Any = None
        self.proc: Any = None
        self.attachment: Any = None
        self.tap_goes_with_vm = False  # the NIC's TAP is QEMU's alone (netns.unpersist_tap)
        self.relay: Any = None
        self.dns: Any = None
        self.guest_mounts: Any = None  # engine.guest_mounts.GuestMounts: -v/--mount/--tmpfs shares
        self.writer: logs.LogWriter | None = None
        self.exit_info: dict[str, Any] | None = None
        self.finished = threading.Event()
        self.started = threading.Event()
        self.waiters_answered = threading.Event()
        self.pending_signals: list[int] = []
        self.kill_deadline: float | None = None
        self.lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------------
    def run(self) -> None:
        self.record.run_dir.mkdir(parents=True, exist_ok=True)
        server = self._listen()
        threading.Thread(target=self._serve, args=(server,), name="control", daemon=True).start()
        self.writer = logs.LogWriter(self.record.log_path)
        try:
            self._setup()
        except KatadockerError as e:
            log.error("start failed: %s%s", e.message, f"\n{e.detail}" if e.detail else "")
            code = e.exit_code if isinstance(e, (CommandNotFound, CommandNotExecutable)) else 125
            self._finish(code, e.message or "start failed", started=False)
            return
        except Exception as e:  # noqa: BLE001 - any failure must end in an exit file, never a hang
            log.exception("start failed")
            self._finish(125, f"start failed: {e}", started=False)
            return
        write_json(self.record.started_path, {"StartedAt": clock.format_ns(clock.now_ns())})
        events.container(self.store.root, self.record, "start")
        self.started.set()
        code, error = self._pump()
        self._finish(code, error, started=True)

    def _setup(self) -> None:
        from katadocker.agent.client import AgentClient
        from katadocker.agent.protocol import ProcessSpec
        from katadocker.image.store import LayerStore
        from katadocker.vm import boot_priority
        from katadocker.vm.qemu import DEFAULT_MEMORY_MIB, MIN_MEMORY_MIB, ROOTFS_TAG, Share, VMSpec
        from katadocker.vm.virtiofsd import Virtiofsd

        rec = self.record
        cfg, host = rec.config["Config"], rec.config["HostConfig"]
        layers = LayerStore(self.settings.state)
        lowers = [layers.path(d) for d in reversed(rec.config["Layers"])]  # top-most first
        rootfs.mount(lowers, rec.upper, rec.work, rec.rootfs)

        # the VM's devices first (the TAP, virtiofsd's sockets); the rest of the host-side set-up below
        # runs while the guest boots (seconds under TCG) instead of before it
        kernel, initramfs, accel = self._assets()
        self._attach_network(host.get("NetworkMode") or "bridge")
        run = rec.run_dir
        self.fs = Virtiofsd(rec.rootfs, run / "fs.sock", rec.dir / "virtiofsd.log")
        self.fs.start()
        write_pid_file(rec.pid_dir / "virtiofsd", self.fs.pid)
        self._start_mounts()
        memory_mib = DEFAULT_MEMORY_MIB
        if host.get("Memory"):
            memory_mib = max(MIN_MEMORY_MIB, host["Memory"] // (1024 * 1024) + MEMORY_OVERHEAD_MIB)
        cpus = max(1, math.ceil((host.get("NanoCpus") or 0) / 1e9))
        shares = (Share(ROOTFS_TAG, run / "fs.sock"), *self.guest_mounts.shares)
        spec = VMSpec(kernel=kernel, initramfs=initramfs, accel=accel,
                      agent_socket=run / "agent.sock", console_log=rec.dir / "console.log",
                      qmp_socket=run / "qmp.sock", memory_mib=memory_mib, cpus=cpus,
                      hotplug=True)
        self.vm = self._machine(spec)
        write_pid_file(rec.pid_dir / "qemu", self.vm.pid)
        self._plug_devices(shares)

        self._start_dns()
        published = self._publish(host.get("PortBindings") or {})
        user = process_spec.resolve_user(cfg.get("User") or "",
                                         process_spec.read_root_file(rec.rootfs, "/etc/passwd"),
                                         process_spec.read_root_file(rec.rootfs, "/etc/group"))
        workdir = cfg.get("WorkingDir") or "/"
        process_spec.ensure_workdir(rec.rootfs, workdir, user.uid, user.gid)
        if self.agent is None:  # else the early VM's restore connected it (vm/early.py)
            self.agent = AgentClient.connect(str(spec.agent_socket), 30)
        try:
            self.agent.wait_hello(BOOT_TIMEOUT)
        except VMError as e:
            raise self.vm.error(f"the VM did not boot: {e.message}") from None
        hostname = cfg.get("Hostname") or rec.short_id
        pspec = ProcessSpec(
            args=[rec.config["Path"], *rec.config["Args"]],
            env=process_spec.process_env(cfg.get("Env") or [], hostname, bool(cfg.get("Tty")), user.home),
            cwd=workdir, uid=user.uid, gid=user.gid, groups=user.groups, tty=bool(cfg.get("Tty")),
            stdin=bool(cfg.get("OpenStdin")), hostname=hostname, hosts=self._hosts(hostname),
            resolv_conf=self._resolv_conf(), rootfs_tag=ROOTFS_TAG, network=self._net_config(),
            mounts=self.guest_mounts.mounts, readonly_root=bool(host.get("ReadonlyRootfs")),
            init=bool(host.get("Init")), clock_ns=time.time_ns(), seed=os.urandom(32))
        with self.lock:
            self.proc = self.agent.start(pspec, timeout=60)
            pending, self.pending_signals = self.pending_signals, []
        boot_priority.settle(self.vm.pid)  # the process runs: the VM competes like any other from now
        for signo in pending:
            self._deliver(signo)
        write_json(rec.runtime_path, {"Ports": [asdict(p) for p in published],
                                      "Attachment": asdict(self.attachment) if self.attachment else None})

    def _machine(self, spec: Any) -> Any:
        """A running VM for `spec`, QMP ready: the early VM when it fits (vm/early.py), else a new one.
        An early VM restored from a template comes with its agent link connected (`self.agent`)."""
        early, self.early = self.early, None
        if early is not None:
            if early.fits(spec):
                try:
                    vm = early.adopt(spec)
                    log.info("took over the early VM%s",
                             f", restored from {early.template.name}" if early.template else "")
                    self.agent = early.agent
                    return vm
                except VMError as e:
                    log.warning("the early VM is unusable: %s", e.message)
            else:
                log.info("the early VM does not fit this container: starting another")
            early.discard()
        from katadocker.vm.machine import VirtualMachine

        vm = VirtualMachine(spec)
        vm.start()
        return vm

    def _plug_devices(self, shares: tuple[Any, ...]) -> None:
        """Hot-add the shares (slots 0..) and the NIC (the next slot) into the VM."""
        for slot, share in enumerate(shares):
            self.vm.plug_share(share, slot)
        att = self.attachment
        if att is not None:
            from katadocker.network import netns

            tap = netns.open_tap(att.netns_name, att.tap_name)
            try:
                self.vm.plug_nic(tap, att.mac, len(shares))
                netns.unpersist_tap(tap)
                self.tap_goes_with_vm = True
            finally:
                os.close(tap)

    def _assets(self) -> tuple[Path, Path, str]:
        """(kernel, initramfs, accelerator name): handed over by the CLI (saves the monitor importing
        and re-checking vm.assets, ~30 ms before QEMU starts), else ensured here."""
        if self.assets is not None:
            return Path(self.assets["kernel"]), Path(self.assets["initramfs"]), self.assets["accel"]
        from katadocker.vm.assets import ensure_assets

        assets = ensure_assets(self.settings, None)
        return assets.kernel, assets.initramfs, assets.accel.name

    def _start_mounts(self) -> None:
        """The container's volumes, binds and tmpfs mounts: one virtiofsd per share (guest_mounts.py)."""
        from katadocker.engine.guest_mounts import GuestMounts
        from katadocker.vm.qemu import check_hotplug_devices

        self.guest_mounts = GuestMounts(self.settings, self.record)
        self.guest_mounts.prepare()
        # the root, the shares and the NIC, each a device in the VM's hotplug bridge
        check_hotplug_devices(1 + len(self.guest_mounts.shares) + (self.attachment is not None))
        self.guest_mounts.start()

    def _attach_network(self, mode: str) -> None:
        if mode in ("none", "host"):
            return
        from katadocker.engine import networking
        from katadocker.network import networks

        self.attachment = att = networks.attach(self.settings, mode, self.record.id, self.record.name,
                                                **networking.attach_options(self.record.config, mode))
        # runtime.json before anything else can fail, so a crash still lets `rm` detach
        write_json(self.record.runtime_path, {"Ports": [], "Attachment": asdict(att)})

    def _start_dns(self) -> None:
        """The network's name server for this container (engine/networking: the gateway answers)."""
        att = self.attachment
        if att is None:
            return
        from katadocker.network.dns import DnsResponder

        self.dns = DnsResponder(self.settings, att.network, att.netns_name, att.gateway)
        try:
            self.dns.start()
        except OSError as e:
            log.warning("no name resolution on %s: %s", att.network, e)
            self.dns = None

    def _publish(self, port_bindings: dict[str, Any]) -> list[Any]:
        """Start the relays of ``-p``/``-P`` (docker's HostConfig.PortBindings); what listens."""
        from katadocker.network.ports import PortBinding
        from katadocker.network.relay import PortRelay

        bindings = []
        for key, entries in port_bindings.items():
            number, _, proto = key.partition("/")
            for entry in entries or []:
                first, _, last = (entry.get("HostPort") or "").partition("-")
                bindings.append(PortBinding(entry.get("HostIp") or "", int(first) if first else None,
                                            int(number), proto or "tcp", int(last) if last else None))
        if not bindings:
            return []
        if self.attachment is None:
            return []  # --network none: nothing to relay to (docker publishes nothing either)
        self.relay = PortRelay(bindings, self.attachment.netns_name, self.attachment.ip)
        try:
            return self.relay.start()
        except KatadockerError as e:
            from katadocker.engine.networking import publish_failed

            raise publish_failed(e, self.record.name, self.attachment.endpoint_id) from None

    def _net_config(self) -> Any:
        from katadocker.agent.protocol import NetworkConfig

        att = self.attachment
        if att is None:
            return None
        return NetworkConfig(address=ipaddress.IPv4Interface(f"{att.ip}/{att.prefix}"),
                             gateway=ipaddress.IPv4Address(att.gateway), mtu=att.mtu)

    def _hosts(self, hostname: str) -> str:
        from katadocker.engine.networking import hosts_file

        return hosts_file(hostname, self.attachment, self.record.config["HostConfig"].get("ExtraHosts"))

    def _resolv_conf(self) -> str:
        from katadocker.engine.networking import resolv_conf

        host = self.record.config["HostConfig"]
        return resolv_conf(self.attachment, host.get("Dns"), host.get("DnsSearch"), host.get("DnsOptions"))

    # --- running -------------------------------------------------------------------------------
    def _pump(self) -> tuple[int, str]:
        """Copy output into the log until the process exits; (exit code, error)."""
        from katadocker.agent.client import Output

        assert self.writer is not None
        while True:
            try:
                event = self.proc.next_event(0.5)
            except VMError as e:
                return 137, self._crash_reason(f"lost the VM agent: {e.message}")
            if isinstance(event, Output):
                self.writer.write("stderr" if event.stream == 2 else "stdout", event.data)
                if self.record.config["Config"].get("Tty"):  # a prompt has no newline: log it now
                    self.writer.flush_partial()
            elif event is not None:
                return int(event.code), ""
            problem = self._helper_problem()
            if problem is not None:
                return 137, problem

    def _helper_problem(self) -> str | None:
        """None while all is well; else why the container ended: a dead helper (the error text), or
        '' when a requested SIGKILL did not end the process in time and the VM was killed."""
        if self.vm.returncode is not None:
            return self._crash_reason("the virtual machine exited unexpectedly")
        if self.fs.proc.poll() is not None:
            return f"virtiofsd exited unexpectedly with status {self.fs.proc.returncode}"
        if self.guest_mounts is not None and self.guest_mounts.problem():
            return self.guest_mounts.problem()
        if self.kill_deadline is not None and time.monotonic() > self.kill_deadline:
            log.warning("process did not die from SIGKILL in %.0fs: killing the VM", KILL_GRACE)
            self.vm.kill()
            return ""  # killed on request: exit 137 without an error
        return None

    def _crash_reason(self, message: str) -> str:
        if self.kill_deadline is not None:
            return ""  # the VM went away because we killed it
        log.error("%s\nconsole:\n%s", message, _tail(self.record.dir / "console.log"))
        return message

    def _deliver(self, signo: int) -> None:
        with self.lock:
            if self.proc is None:
                self.pending_signals.append(signo)
                return
        if signo == 9 and self.kill_deadline is None:
            self.kill_deadline = time.monotonic() + KILL_GRACE
        with contextlib.suppress(VMError, OSError):
            self.proc.signal(signo)

    # --- ending --------------------------------------------------------------------------------
    def _finish(self, code: int, error: str, started: bool) -> None:
        if self.writer is not None:
            self.writer.close()
        self._teardown()
        info = {"ExitCode": code, "FinishedAt": clock.format_ns(clock.now_ns()), "Error": error,
                "OOMKilled": False}
        write_json(self.record.exit_path, info)
        events.container(self.store.root, self.record, "die", exitCode=str(code))
        self.exit_info = info
        self.finished.set()
        log.info("container exited with %d%s", code, f" ({error})" if error else "")
        if started and self.record.config["HostConfig"].get("AutoRemove"):
            if self.attached:
                self.waiters_answered.wait(ATTACH_GRACE)
            self._auto_remove()
        if self.vm is not None:
            self.vm.kill()  # reap QEMU, if `_stop_vm` left it dying

    def _teardown(self) -> None:
        """Stop everything the container used; each step runs even if an earlier one failed. The
        network detach runs alongside the rest (deleting a TAP waits ~20 ms for the kernel here, and
        an ``--rm`` run waits for the whole teardown)."""
        detaching = threading.Thread(target=_logged, args=(self._detach,), name="detach")
        detaching.start()
        for step in (self._stop_relays, self._stop_vm, self._stop_fs,
                     lambda: rootfs.unmount(self.record.rootfs)):
            _logged(step)
        detaching.join()
        for name in ("qemu", "virtiofsd"):
            (self.record.pid_dir / name).unlink(missing_ok=True)

    def _stop_vm(self) -> None:
        if self.early is not None:  # the start failed before it was taken over
            self.early.discard()
            self.early = None
        if self.vm is not None and self.vm.proc is not None:
            if self.proc is not None and not self._guest_state_discarded():
                # the process ran: let the agent sync the guest's writes and power off
                with contextlib.suppress(VMError, OSError):
                    self.agent.shutdown()
                try:
                    self.vm.wait(10)
                except VMError:
                    self.vm.stop(grace=5)
            else:
                if self.fs is not None:
                    self.fs.terminate()  # virtiofsd ends alongside QEMU, not after it
                # an --rm container's QEMU is reaped after the container is removed (`_finish`):
                # nothing waits for the ~20 ms the kernel takes to free the VM's memory. Any other's
                # before its exit file, so that its TAP is gone before it can be started again.
                self.vm.kill(reap=not self._guest_state_discarded())
        if self.agent is not None:
            with contextlib.suppress(OSError):
                self.agent.close()

    def _guest_state_discarded(self) -> bool:
        """Whether nothing the guest may still hold unwritten is kept: an ``--rm`` container with no
        volume or bind share is deleted with its root right after, so its VM is killed instead of
        powered off cleanly (the agent's sync + ACPI power-off cost ~0.1 s of every `run --rm` here)."""
        return bool(self.record.config["HostConfig"].get("AutoRemove")) and not (
            self.guest_mounts is not None and self.guest_mounts.shares)

    def _stop_relays(self) -> None:
        for helper in (self.relay, self.dns):
            if helper is not None:
                helper.stop()

    def _stop_fs(self) -> None:
        if self.fs is not None:
            self.fs.stop()
        if self.guest_mounts is not None:
            self.guest_mounts.stop()

    def _detach(self) -> None:
        if self.attachment is None:
            return
        from katadocker.network import networks

        networks.detach(self.settings, self.attachment.network, self.record.id,
                        delete_tap=not self.tap_goes_with_vm)
        with contextlib.suppress(OSError, ValueError):
            runtime = json.loads(self.record.runtime_path.read_text())
            runtime["Detached"] = True
            write_json(self.record.runtime_path, runtime)

    def _auto_remove(self) -> None:
        from katadocker.engine.volumes import remove_anonymous

        with self.store.lock(self.record.id):
            self.store.delete(self.record)
        remove_anonymous(self.settings, self.record.config)
        events.container(self.store.root, self.record, "destroy")
        log.info("removed (--rm)")

    # --- control socket ------------------------------------------------------------------------
    def _listen(self) -> socket.socket:
        path = self.record.control_socket
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(16)
        return server

    def _serve(self, server: socket.socket) -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            f = conn.makefile("rb")
            try:
                request = json.loads(f.readline() or b"{}")
            except ValueError:
                return
            op = request.get("op")
            if op == "kill":
                self._deliver(int(request.get("signal", 9)))
                conn.sendall(b'{"ok": true}\n')
            elif op == "wait":
                self.finished.wait()
                conn.sendall(json.dumps(self.exit_info).encode() + b"\n")
                self.waiters_answered.set()
            elif op == "stdin":
                self._forward_stdin(f)
            elif op in ("exec", "resize", "pause", "unpause"):  # interactive ops: ops.py
                from katadocker.monitor import ops

                ops.handle(self, op, request, conn, f)

    def _forward_stdin(self, f: Any) -> None:
        while not (self.started.is_set() or self.finished.is_set()):
            self.started.wait(0.5)
        if self.proc is None or self.finished.is_set():
            return
        while True:
            data = f.read1(65536)
            if not data:
                break
            try:
                self.proc.write_stdin(data, timeout=3600)
            except (VMError, OSError):
                return
        with contextlib.suppress(VMError, OSError):
            self.proc.close_stdin()


def _logged(step: Any) -> None:
    """Run the teardown step `step`; a failure is logged, never raised: cleanup never hides the exit."""
    try:
        step()
    except Exception:  # noqa: BLE001 - log and go on with the next step
        log.exception("teardown step failed")


def _tail(path: Any, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
