"""Container verbs: create, start, stop, kill, restart, remove, wait, rename, prune.

Options in, records out; nothing here prints. Every verb reconciles the record with what the
monitor left on disk before acting (`state.containers.reconcile`) and mutates under the container's
lock. The monitor (katadocker/monitor/) owns a running container; these functions talk to it
through its control socket (engine/control.py) and read the files it writes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katadocker.config import Settings
from katadocker.engine import control, events, process_spec
from katadocker.engine.signals import parse_signal
from katadocker.errors import (
    CommandNotExecutable,
    CommandNotFound,
    Conflict,
    InvalidArgument,
    KatadockerError,
    NoSuchContainer,
)
from katadocker.state import clock
from katadocker.state.containers import (
    ContainerRecord,
    ContainerStore,
    new_id,
    pid_alive,
    read_pid_file,
    reconcile,
)

DEFAULT_STOP_TIMEOUT = 10
PULL_POLICIES = ("always", "missing", "never")
#: How long `start` waits for the VM to boot and the process to run. TCG boots take seconds, and
#: many at once on two shared cores take much longer.
START_TIMEOUT = float(os.environ.get("KATADOCKER_START_TIMEOUT", "300"))
#: After SIGKILL, how long to wait for the monitor to record the exit before killing it outright.
KILL_GRACE = 30.0

Message = Callable[[str], None]


@dataclass
class CreateOptions:
    """What `run`/`create` were asked for, flags already parsed by the CLI."""

    image: str
    args: list[str] = field(default_factory=list)
    name: str | None = None
    env: list[str] = field(default_factory=list)          # -e values (K=V or K)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    labels: list[str] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)
    memory: int = 0                                       # bytes, 0 = default
    nano_cpus: int = 0
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    network: str = "bridge"
    net_options: Any = None  # engine.networking.NetworkOptions: --network-alias, --ip, --dns, --add-host…
    auto_remove: bool = False
    tty: bool = False
    interactive: bool = False
    attach: list[str] = field(default_factory=list)       # stdin/stdout/stderr the client attaches
    stop_signal: str | None = None
    stop_timeout: int | None = None
    pull: str = "missing"
    platform: str | None = None
    init: bool = False
    mounts: Any = None  # engine.mounts.MountRequest: -v, --mount, --tmpfs, --volumes-from, --read-only


def store_of(settings: Settings) -> ContainerStore:
    return ContainerStore(settings.state)


def get(settings: Settings, ref: str) -> ContainerRecord:
    """Look a container up (docker's order) and reconcile it with its monitor's files."""
    store = store_of(settings)
    return reconcile(store, store.lookup(ref))


# --- create ---------------------------------------------------------------------------------------

def resolve_image(settings: Settings, ref: str, policy: str, platform: str | None,
                  on_message: Message, on_pull_event: Callable[[Any], None] | None) -> Any:
    """The ImageRecord for `ref` under docker's pull policy; prints "Unable to find image" via
    `on_message` before an implicit pull."""
    from katadocker.errors import NoSuchImage
    from katadocker.image.reference import parse_reference
    from katadocker.image.store import ImageStore

    if policy not in PULL_POLICIES:
        raise InvalidArgument(
            f"invalid pull option: '{policy}': must be one of \"always\", \"missing\" or \"never\"")
    images = ImageStore(settings.state)
    if policy != "always":
        try:
            return images.get(ref)
        except NoSuchImage:
            pass
    familiar = parse_reference(ref).with_default_tag().familiar
    if policy == "never":
        raise NoSuchImage(familiar)
    if policy == "missing":
        on_message(f"Unable to find image '{familiar}' locally")
    from katadocker.engine.images import pull_image

    pull_image(settings, ref, platform, on_pull_event or (lambda _event: None))
    return images.get(ref)


def _labels(opts: CreateOptions, image_labels: dict[str, str]) -> dict[str, str]:
    labels = dict(image_labels or {})
    lines: list[str] = []
    for path in opts.label_files:
        lines += [ln.strip() for ln in _read_user_file(path).splitlines() if ln.strip() and not
                  ln.strip().startswith("#")]
    for item in [*lines, *opts.labels]:
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def _read_user_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None


def create(settings: Settings, opts: CreateOptions, on_message: Message = lambda _: None,
           on_pull_event: Callable[[Any], None] | None = None) -> ContainerRecord:
    """Create a container record from an image (pulling it per `opts.pull`)."""
    from katadocker.network import ports

    if opts.workdir and not opts.workdir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path")
    stop_signal = opts.stop_signal
    if stop_signal is not None:
        parse_signal(stop_signal)
    image = resolve_image(settings, opts.image, opts.pull, opts.platform, on_message, on_pull_event)
    icfg: dict[str, Any] = (image.config or {}).get("config") or {}

    entrypoint, cmd = process_spec.combine_command(icfg.get("Entrypoint"), icfg.get("Cmd"),
                                                   opts.entrypoint, opts.args)
    argv = process_spec.process_argv(entrypoint, cmd)
    host_env = dict(os.environ)
    user_env: list[str] = []
    for path in opts.env_files:
        user_env += process_spec.parse_env_file(_read_user_file(path), host_env)
    user_env += process_spec.expand_env_options(opts.env, host_env)
    env = process_spec.container_env(list(icfg.get("Env") or []), user_env)

    from katadocker.engine import mounts

    mount_plan = mounts.plan(settings, opts.mounts or mounts.MountRequest(),
                             (icfg.get("Volumes") or {}).keys())
    bindings = ports.parse_publish(opts.publish)
    exposed = dict(icfg.get("ExposedPorts") or {})
    if opts.publish_all:
        bindings += ports.publish_all(exposed.keys(), bindings)
    exposed.update(ports.exposed_ports(bindings))
    port_bindings: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        port_bindings.setdefault(b.key, []).append({
            "HostIp": b.host_ip,
            "HostPort": "" if b.host_port is None else (
                str(b.host_port) if b.host_port_end is None else f"{b.host_port}-{b.host_port_end}")})

    from katadocker.engine import networking

    net_host_config, networking_config = networking.create_settings(
        settings, opts.network, opts.net_options or networking.NetworkOptions())
    cid = new_id()
    attach = set(opts.attach)
    config = {
        "Hostname": opts.hostname or cid[:12],
        "Domainname": "",
        "User": opts.user if opts.user is not None else icfg.get("User", ""),
        "AttachStdin": "stdin" in attach,
        "AttachStdout": "stdout" in attach,
        "AttachStderr": "stderr" in attach,
        "ExposedPorts": exposed or None,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and "stdin" in attach,
        "Env": env,
        "Cmd": cmd or None,
        "Image": opts.image,
        "Volumes": icfg.get("Volumes"),
        "WorkingDir": opts.workdir or icfg.get("WorkingDir", ""),
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": _labels(opts, icfg.get("Labels") or {}),
    }
    if stop_signal or icfg.get("StopSignal"):
        config["StopSignal"] = stop_signal or icfg["StopSignal"]
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    host_config = {
        "Binds": None,
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": opts.network,
        "PortBindings": port_bindings,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": opts.auto_remove,
        "PublishAllPorts": opts.publish_all,
        "Init": opts.init or None,
        "Memory": opts.memory,
        "NanoCpus": opts.nano_cpus,
        "Runtime": "katadocker",
    }
    host_config.update(net_host_config)
    record = {
        "Path": argv[0],
        "Args": argv[1:],
        "Image": image.id,
        "Platform": "linux",
        "Driver": "overlay",
        "Layers": list(image.layers),
        "Config": config,
        "HostConfig": host_config,
        "NetworkingConfig": networking_config,
    }
    mount_plan.apply(settings, record)
    created = store_of(settings).create(cid, record, opts.name)
    events.container(settings.state, created, "create")
    return created


# --- start ----------------------------------------------------------------------------------------

class StartFailed(KatadockerError):
    """The container could not be started (VM boot, helper or process start failure)."""


def _start_error(code: int, message: str) -> KatadockerError:
    """The error class docker's exit-code rules call for (126/127 by message, else 125)."""
    low = message.lower()
    if code == 127 or "executable file not found" in low or "no such file or directory" in low:
        return CommandNotFound(message)
    if code == 126 or "permission denied" in low or "is a directory" in low:
        return CommandNotExecutable(message)
    return StartFailed(message)


def spawn_monitor(settings: Settings, record: ContainerRecord, attached: bool, assets: Any = None) -> int:
    """Start the container's monitor detached (the one the CLI pre-started, if any: see
    engine/monitor_launch.py) and return its pid. `assets` (vm.assets.GuestAssets, just
    ensured) are handed over so the monitor need not check them again."""
    import json

    from katadocker.engine import monitor_launch

    pid_file = record.dir / "monitor.pid"
    pid_file.unlink(missing_ok=True)
    args = [str(settings.state.root), record.id]
    if attached:
        args.append("--attached")
    if assets is not None:
        handed = {"kernel": str(assets.kernel), "initramfs": str(assets.initramfs),
                  "accel": assets.accel.name}
        args.append("--assets=" + json.dumps(handed))
    return monitor_launch.launch(args, pid_file)


def start(settings: Settings, ref: str, attached: bool = False,
          progress: Callable[[str], None] | None = None) -> ContainerRecord:
    """Start a created or exited container and return once its process runs.

    Starting a running container does nothing (as docker). On failure the container keeps its
    previous status with ExitCode/Error recorded, an ``--rm`` container is removed, and the error
    is raised (`CommandNotFound` → 127, `CommandNotExecutable` → 126, else `StartFailed`).
    Guest assets missing on the first run are built here, reporting each step to `progress`
    (the monitor would build them too, but silently).
    """
    from katadocker.vm.assets import ensure_assets

    assets = ensure_assets(settings, progress)
    store = store_of(settings)
    record = store.lookup(ref)
    with store.lock(record.id):
        record = reconcile(store, store.load(record.id))
        if record.running:
            return record
        for stale in (record.exit_path, record.started_path, record.runtime_path, record.control_socket):
            stale.unlink(missing_ok=True)
        previous_status = record.status
        pid = spawn_monitor(settings, record, attached, assets)
        record.state.update(Status="running", Pid=pid, Error="", ExitCode=0,
                            StartedAt=clock.format_ns(clock.now_ns()), FinishedAt=clock.ZERO_TIME)
        store.save_state(record)
        outcome = _wait_started(record, pid)
        if outcome is None:
            return _record_started(store, record)
        code, message = outcome
        if record.dir.exists():
            record.state.update(Status=previous_status, Pid=0, ExitCode=code, Error=message,
                                FinishedAt=clock.format_ns(clock.now_ns()))
            store.save_state(record)
    if record.config["HostConfig"].get("AutoRemove") and record.dir.exists():
        remove(settings, record.id, force=True)
    raise _start_error(code, message)


def _record_started(store: ContainerStore, record: ContainerRecord) -> ContainerRecord:
    """Take StartedAt from the monitor's ``started`` file (when the process really began)."""
    from katadocker.state.atomic import read_json

    with contextlib.suppress(OSError, ValueError):
        record.state["StartedAt"] = read_json(record.started_path)["StartedAt"]
        store.save_state(record)
    return reconcile(store, record)


def _wait_started(record: ContainerRecord, pid: int) -> tuple[int, str] | None:
    """None once the monitor reports the process running; (exit code, error) if it failed."""
    from katadocker.state.atomic import read_json

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if record.started_path.exists():
            return None
        if record.exit_path.exists():
            info = read_json(record.exit_path)
            if info.get("Error"):
                return int(info.get("ExitCode", 125)), info["Error"]
            return None  # ran and already finished: it did start
        if not pid_alive(pid):
            if record.started_path.exists() or record.exit_path.exists():
                continue
            return 125, f"container monitor exited during start (see {record.monitor_log})"
        time.sleep(0.01)  # a few stat calls; at 0.05 the CLI noticed the start 25 ms late on average
    _kill_monitor(record, pid)
    return 125, f"timed out after {START_TIMEOUT:.0f}s waiting for the container to start"


def _kill_monitor(record: ContainerRecord, pid: int) -> None:
    from katadocker.state.containers import kill_leftovers

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    kill_leftovers(record)


def wait_removed(record: ContainerRecord, timeout: float = 60.0) -> None:
    """After an attached ``run --rm`` got its exit code: wait until the monitor has removed the
    container, as docker's CLI waits for the "removed" condition before it returns. Returns at once
    when the container has not exited (the client detached) or its monitor is gone (the next command
    reconciles and ``rm`` cleans up)."""
    monitor = read_pid_file(record.dir / "monitor.pid")
    deadline = time.monotonic() + timeout
    while (record.dir.exists() and record.exit_path.exists() and pid_alive(monitor)
           and time.monotonic() < deadline):
        time.sleep(0.002)  # the removal follows the exit within ~20 ms: three stat calls a poll


# --- stop / kill / wait ---------------------------------------------------------------------------

def _wait_not_running(store: ContainerStore, record: ContainerRecord, timeout: float | None) -> bool:
    """Poll until the container is no longer running; False on timeout."""
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    while True:
        try:
            current = reconcile(store, store.load(record.id))
        except NoSuchContainer:
            return True
        if not current.running:
            record.state = current.state
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal(record: ContainerRecord, signo: int) -> None:
    with contextlib.suppress(control.MonitorUnreachable):  # exiting right now: the wait sees it
        control.kill(record.control_socket, signo)


def _force_kill(store: ContainerStore, record: ContainerRecord) -> None:
    """SIGKILL the process; if the monitor cannot make it exit, kill the monitor and its helpers."""
    events.container(store.root, record, "kill", signal=str(int(signal.SIGKILL)))
    _signal(record, signal.SIGKILL)
    if not _wait_not_running(store, record, KILL_GRACE):
        _kill_monitor(record, int(record.state.get("Pid") or 0))
        _wait_not_running(store, record, 10)


def stop(settings: Settings, ref: str, timeout: int | None = None, sig: str | None = None) -> ContainerRecord:
    """docker stop: the stop signal, then SIGKILL after `timeout` seconds (container StopTimeout,
    else 10; negative = wait forever). Stopping a stopped container succeeds."""
    store = store_of(settings)
    record = get(settings, ref)
    if not record.running:
        return record
    signo = parse_signal(sig or record.config["Config"].get("StopSignal") or "SIGTERM")
    if timeout is None:
        timeout = record.config["Config"].get("StopTimeout", DEFAULT_STOP_TIMEOUT)
    events.container(store.root, record, "kill", signal=str(signo))
    _signal(record, signo)
    if not _wait_not_running(store, record, timeout):
        _force_kill(store, record)
    events.container(store.root, record, "stop")
    return record


def kill(settings: Settings, ref: str, sig: str = "SIGKILL") -> ContainerRecord:
    """docker kill: deliver a signal (SIGKILL waits for the exit); error if not running."""
    store = store_of(settings)
    signo = parse_signal(sig)
    record = get(settings, ref)
    if not record.running:
        raise Conflict(f"cannot kill container: {ref}: container {record.id} is not running")
    if signo == signal.SIGKILL:
        _force_kill(store, record)
    else:
        events.container(store.root, record, "kill", signal=str(signo))
        _signal(record, signo)
    return record


def restart(settings: Settings, ref: str, timeout: int | None = None,
            sig: str | None = None) -> ContainerRecord:
    stop(settings, ref, timeout, sig)
    return start(settings, ref)


def wait(settings: Settings, ref: str) -> int:
    """Block until the container is not running; its exit code."""
    store = store_of(settings)
    record = get(settings, ref)
    while record.running:
        try:
            with control.connect(record.control_socket, {"op": "wait"}, timeout=None) as s:
                control.read_reply(s)
        except control.MonitorUnreachable:
            time.sleep(0.1)
        try:
            record = reconcile(store, store.load(record.id))
        except NoSuchContainer:
            return record.state.get("ExitCode", 0)
        if record.running and not pid_alive(int(record.state.get("Pid") or 0)):
            record = reconcile(store, record)
    return int(record.state.get("ExitCode", 0))


# --- remove / rename / prune ----------------------------------------------------------------------

def cleanup_after_crash(settings: Settings, record: ContainerRecord) -> None:
    """Undo what a monitor that died without cleaning up left behind: the overlay mount and the
    network attachment (both idempotent, nothing to do after a clean exit)."""
    from katadocker.engine import rootfs
    from katadocker.engine.guest_mounts import unmount_staging
    from katadocker.state.atomic import read_json

    rootfs.unmount(record.rootfs)
    unmount_staging(record)
    if record.runtime_path.exists():
        try:
            runtime = read_json(record.runtime_path)
        except ValueError:
            runtime = {}
        if runtime.get("Attachment") and not runtime.get("Detached"):
            try:
                from katadocker.network import networks

                networks.detach(settings, runtime["Attachment"]["network"], record.id)
            except (ImportError, KatadockerError):
                pass


def remove(settings: Settings, ref: str, force: bool = False, volumes: bool = False) -> ContainerRecord:
    """docker rm (``-f`` kills first); `volumes` (``-v``) also removes its anonymous volumes."""
    store = store_of(settings)
    record = store.lookup(ref)
    record = reconcile(store, record)
    if record.running:
        if not force:
            raise Conflict(f'cannot remove container "/{record.name}": container is running: '
                           "stop the container before removing or force remove")
        _force_kill(store, record)
    with store.lock(record.id):
        try:
            record = reconcile(store, store.load(record.id))
        except NoSuchContainer:
            return record  # removed meanwhile (--rm)
        if record.running:
            raise Conflict(f'cannot remove container "/{record.name}": container is running: '
                           "stop the container before removing or force remove")
        record.state["Status"] = "removing"
        store.save_state(record)
        cleanup_after_crash(settings, record)
        store.delete(record)
    if volumes:
        from katadocker.engine.volumes import remove_anonymous

        remove_anonymous(settings, record.config)
    events.container(store.root, record, "destroy")
    return record


def rename(settings: Settings, ref: str, new_name: str) -> None:
    store = store_of(settings)
    record = store.lookup(ref)
    with store.lock(record.id):
        renamed = store.load(record.id)
        store.rename(renamed, new_name)
    events.container(store.root, renamed, "rename", oldName=f"/{record.name}")


def prune(settings: Settings, until: int | None = None,
          labels: list[str] | None = None) -> tuple[list[str], int]:
    """Remove every stopped container (created ones too, as docker); (removed IDs, bytes reclaimed)."""
    from katadocker.engine.container_view import label_match, upper_size

    removed, reclaimed = [], 0
    for record in store_of(settings).all():
        record = reconcile(store_of(settings), record)
        if record.running:
            continue
        if until is not None and clock.parse_ns(record.config["Created"]) >= until:
            continue
        if labels and not all(label_match(record, lab) for lab in labels):
            continue
        size = upper_size(record)
        try:
            remove(settings, record.id)
        except (NoSuchContainer, Conflict):
            continue
        removed.append(record.id)
        reclaimed += size
    return removed, reclaimed


def list_containers(settings: Settings, all: bool = False, filters: list[str] | None = None,
                    last: int = -1, size: bool = False) -> list[dict[str, Any]]:
    """docker ps: summaries newest first. Stopped containers only with `all`, `last` or a status
    filter; `last` keeps the newest N of every state."""
    from katadocker.engine import container_view as view

    parsed = view.parse_filters(filters or [])
    store = store_of(settings)
    records = [reconcile(store, r) for r in store.all()]
    ancestors = _ancestor_ids(settings, parsed["ancestor"]) if "ancestor" in parsed else None
    for key in ("before", "since"):
        for ref in parsed.get(key, []):
            pivot = store.lookup(ref).config["Created"]
            records = [r for r in records
                       if (r.config["Created"] < pivot if key == "before" else r.config["Created"] > pivot)]
    if last > 0:
        records = records[:last]
    elif not all and "status" not in parsed:
        records = [r for r in records if r.running]
    return [view.summary(r, size=size) for r in records if view.matches(r, parsed, ancestors)]


def _ancestor_ids(settings: Settings, refs: list[str]) -> set[str]:
    """Image IDs named by ``ancestor=`` values (no descendants: katadocker does not build images)."""
    from katadocker.errors import NoSuchImage
    from katadocker.image.store import ImageStore

    images = ImageStore(settings.state)
    ids = set()
    for ref in refs:
        try:
            ids.add(images.get(ref).id)
        except (NoSuchImage, InvalidArgument):
            continue
    return ids


def inspect(settings: Settings, ref: str, size: bool = False) -> dict[str, Any]:
    """docker container inspect's document for one container."""
    from katadocker.engine.container_view import inspect_document

    return inspect_document(get(settings, ref), size=size)

