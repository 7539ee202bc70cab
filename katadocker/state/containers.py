"""Container records on disk, names, lookup, and reconciliation with the monitor's exit file.

One directory per container, ``<root>/containers/<id>/``::

    config.json     written once at create (rename updates Name): Id, Name ("/web"), Created, Image
                    (sha256:…), ImageRef (as typed), Path, Args, Config{…}, HostConfig{…}, Layers
    state.json      Status (created|running|paused|exited|dead|removing), Pid (the monitor), StartedAt,
                    FinishedAt, ExitCode, Error, OOMKilled — written by CLI commands, under the lock
    started         written by the monitor once the container's process runs (JSON: StartedAt)
    runtime.json    written by the monitor at start: published ports, network attachment
    exit            written by the monitor as it ends (JSON: ExitCode, FinishedAt, Error, OOMKilled)
    ctr.log         the json-file log
    monitor.log     the monitor's own diagnostics
    pids/           pid files of the helpers (qemu, virtiofsd) so that a reconcile can kill leftovers
    upper/ work/ rootfs/   the overlay's upper dir, work dir and mount point
    /run/katadocker/<id[:24]>/   the monitor's control socket and the VM's sockets (short paths)

The monitor never writes state.json: the CLI folds ``started``/``exit`` into it (`reconcile`), so a
crashed monitor can never leave a half-written state behind, and no lock is shared with it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katadocker.errors import Conflict, InvalidArgument, NoSuchContainer
from katadocker.state import clock, namegen
from katadocker.state.atomic import read_json, write_json
from katadocker.state.lock import locked
from katadocker.state.paths import RUN_ROOT, StateRoot

STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_NAMES_LOCK = "container-names"

#: Exit code recorded when the monitor vanished without writing its exit file (killed: 128+SIGKILL).
LOST_MONITOR_EXIT_CODE = 137


def new_id() -> str:
    """64 lowercase hex chars whose first 12 are not all digits (they become the hostname)."""
    while True:
        cid = secrets.token_hex(32)
        if not cid[:12].isdigit():
            return cid


def validate_name(name: str) -> str:
    """Return the name without its leading ``/``; docker's error for a name it would refuse."""
    if not _NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def initial_state() -> dict[str, Any]:
    """state.json of a container that was created and never started."""
    return {"Status": "created", "Pid": 0, "ExitCode": 0, "Error": "", "OOMKilled": False,
            "StartedAt": clock.ZERO_TIME, "FinishedAt": clock.ZERO_TIME}


@dataclass
class ContainerRecord:
    """A container as stored: its directory, its config (docker's shape) and its state."""

    dir: Path
    config: dict[str, Any]
    state: dict[str, Any] = field(default_factory=initial_state)

    @property
    def id(self) -> str:
        return self.config["Id"]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        """The name without the leading ``/`` (as `ps` shows it)."""
        return self.config["Name"].lstrip("/")

    @property
    def status(self) -> str:
        return self.state["Status"]

    @property
    def running(self) -> bool:
        return self.state["Status"] in ("running", "paused", "restarting")

    # Files shared with the monitor.
    @property
    def log_path(self) -> Path:
        return self.dir / "ctr.log"

    @property
    def exit_path(self) -> Path:
        return self.dir / "exit"

    @property
    def started_path(self) -> Path:
        return self.dir / "started"

    @property
    def runtime_path(self) -> Path:
        """Written by the monitor once running: published ports and the network attachment."""
        return self.dir / "runtime.json"

    @property
    def run_dir(self) -> Path:
        """Short-lived sockets (control, agent, QMP, virtiofsd) live under /run: a unix socket path
        must stay under 108 bytes, which a state root of any length would break."""
        return RUN_ROOT / self.id[:24]

    @property
    def control_socket(self) -> Path:
        return self.run_dir / "control.sock"

    @property
    def monitor_log(self) -> Path:
        return self.dir / "monitor.log"

    @property
    def pid_dir(self) -> Path:
        return self.dir / "pids"

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"


class ContainerStore:
    """All container records of one state root. Safe for concurrent CLI processes:
    name reservation takes a global lock, mutations of one container take its own lock (`lock`)."""

    def __init__(self, root: StateRoot) -> None:
        self.root = root

    # --- reading -------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """IDs of every stored container (complete records only)."""
        if not self.root.containers.is_dir():
            return []
        return [p.name for p in self.root.containers.iterdir() if (p / "config.json").is_file()]

    def load(self, cid: str) -> ContainerRecord:
        """Read one record; `NoSuchContainer` if it vanished (concurrent rm)."""
        d = self.root.container_dir(cid)
        try:
            config = read_json(d / "config.json")
        except (FileNotFoundError, json.JSONDecodeError):
            raise NoSuchContainer(cid) from None
        try:
            state = read_json(d / "state.json")
        except (FileNotFoundError, json.JSONDecodeError):
            state = initial_state()
        return ContainerRecord(d, config, state)

    def all(self) -> list[ContainerRecord]:
        """Every record, newest created first (docker's `ps` order)."""
        out = []
        for cid in self.ids():
            try:
                out.append(self.load(cid))
            except NoSuchContainer:
                continue
        out.sort(key=lambda r: r.config["Created"], reverse=True)
        return out

    def lookup(self, ref: str) -> ContainerRecord:
        """Find a container as docker does: full ID, exact name (with or without ``/``), unique ID prefix."""
        if not ref:
            raise InvalidArgument('invalid name or ID supplied: ""')
        records = self.all()
        for r in records:
            if r.id == ref:
                return r
        name = ref.lstrip("/")
        for r in records:
            if r.name == name:
                return r
        matches = [r for r in records if r.id.startswith(ref)]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NoSuchContainer(ref)
        return matches[0]

    # --- writing -------------------------------------------------------------------------------
    @contextmanager
    def lock(self, cid: str) -> Iterator[None]:
        """Hold the container's lock (exclusive) for a mutation."""
        with locked(self.root.locks, f"container-{cid}"):
            yield

    def create(self, cid: str, config: dict[str, Any], name: str | None) -> ContainerRecord:
        """Reserve a name (given, or generated as docker does) and write a new record for `cid`
        (from `new_id`).

        `config` is docker's container shape without Id/Name/Created, which are filled in here.
        Raises docker's `Conflict` when the name is taken.
        """
        with locked(self.root.locks, _NAMES_LOCK):
            taken = {r.id: r.name for r in self.all()}
            if name is not None:
                name = validate_name(name)
                for other_id, other in taken.items():
                    if other == name:
                        raise Conflict(self.conflict_message(name, other_id))
            else:
                used = set(taken.values())
                for retry in range(7):
                    name = namegen.random_name(retry)
                    if name not in used:
                        break
                else:
                    name = f"{namegen.random_name(1)}{secrets.token_hex(2)}"
            d = self.root.container_dir(cid)
            d.mkdir(parents=True)
            for sub in ("upper", "work", "rootfs", "pids"):
                (d / sub).mkdir()
            full = {"Id": cid, "Name": f"/{name}", "Created": clock.format_ns(clock.now_ns()), **config}
            record = ContainerRecord(d, full)
            write_json(d / "state.json", record.state)
            write_json(d / "config.json", full)  # last: its presence marks the record complete
        return record

    @staticmethod
    def conflict_message(name: str, other_id: str) -> str:
        return (f'Conflict. The container name "/{name}" is already in use by container "{other_id}". '
                "You have to remove (or rename) that container to be able to reuse that name.")

    def save_state(self, record: ContainerRecord) -> None:
        write_json(record.dir / "state.json", record.state)

    def save_config(self, record: ContainerRecord) -> None:
        write_json(record.dir / "config.json", record.config)

    def rename(self, record: ContainerRecord, new_name: str) -> None:
        """Give `record` a new name; docker's messages for a bad or taken name."""
        new = validate_name(new_name)
        with locked(self.root.locks, _NAMES_LOCK):
            if new == record.name:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            for other in self.all():
                if other.name == new:
                    raise Conflict(self.conflict_message(new, other.id))
            record.config["Name"] = f"/{new}"
            self.save_config(record)

    def delete(self, record: ContainerRecord) -> None:
        """Remove the container's directory (the caller has unmounted and stopped everything).

        config.json goes first so a crash midway leaves no half record visible to `ids()`.
        """
        (record.dir / "config.json").unlink(missing_ok=True)
        shutil.rmtree(record.dir, ignore_errors=True)
        shutil.rmtree(record.run_dir, ignore_errors=True)
        (self.root.locks / f"container-{record.id}.lock").unlink(missing_ok=True)


# --- reconciliation --------------------------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def read_pid_file(path: Path) -> int:
    """The pid in a pid file, 0 if absent or garbled."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def kill_leftovers(record: ContainerRecord) -> None:
    """SIGKILL every helper whose pid file is in the container's pids/ (after a monitor crash).

    A pid file holds ``<pid> <starttime>``; the process is killed only if its start time still
    matches, so a recycled pid is never hit.
    """
    if not record.pid_dir.is_dir():
        return
    for pf in record.pid_dir.iterdir():
        try:
            pid_s, start = pf.read_text().split()[:2]
            if process_start_time(int(pid_s)) == start:
                os.kill(int(pid_s), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def process_start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), '' if no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def write_pid_file(path: Path, pid: int) -> None:
    """Record a helper's pid with its start time (see `kill_leftovers`)."""
    path.write_text(f"{pid} {process_start_time(pid)}\n")


def reconcile(store: ContainerStore, record: ContainerRecord) -> ContainerRecord:
    """Bring state.json in line with what the monitor left on disk; return the updated record.

    * ``exit`` present while state says running → exited with its code, time and error.
    * state says running, no exit file, monitor gone → exited 137 with an error, helpers killed.
    Call it (ideally under the container's lock) before acting on a container.
    """
    st = record.state
    if st["Status"] not in ("running", "paused", "restarting"):
        return record
    exit_info = _read_optional_json(record.exit_path)
    if exit_info is None and pid_alive(int(st.get("Pid") or 0)):
        return record
    if exit_info is None:
        kill_leftovers(record)
        exit_info = _read_optional_json(record.exit_path)  # it may have appeared meanwhile
    if exit_info is None:
        from katadocker.network.networks import release_lost  # the dead monitor's TAP, address, names

        release_lost(store.root, record.runtime_path, record.id)
        exit_info = {"ExitCode": LOST_MONITOR_EXIT_CODE, "FinishedAt": clock.format_ns(clock.now_ns()),
                     "Error": "container monitor exited unexpectedly"}
    started = _read_optional_json(record.started_path)
    if started and st.get("StartedAt", clock.ZERO_TIME) == clock.ZERO_TIME:
        st["StartedAt"] = started["StartedAt"]
    st.update(Status="exited", Pid=0, ExitCode=int(exit_info.get("ExitCode", -1)),
              FinishedAt=exit_info.get("FinishedAt") or clock.format_ns(clock.now_ns()),
              Error=exit_info.get("Error", ""), OOMKilled=bool(exit_info.get("OOMKilled", False)))
    store.save_state(record)
    return record


def _read_optional_json(path: Path) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
