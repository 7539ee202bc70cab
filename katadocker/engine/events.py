"""The events journal: what ``docker events`` reports, appended by every process that changes state.

katadocker has no daemon to hold docker's in-memory event ring, so events go to an append-only
file, ``<root>/events.jsonl`` (`StateRoot.events`), one JSON object per line in the Engine API's
shape (API 1.51, docker 28)::

    {"status":"start","id":"<64hex>","from":"busybox","Type":"container","Action":"start",
     "Actor":{"ID":"<64hex>","Attributes":{"image":"busybox","name":"web"}},"scope":"local",
     "time":1700000000,"timeNano":1700000000123456789}

Contracts:

* Appending is safe from any number of processes at once: each event is one ``write`` on an
  ``O_APPEND`` descriptor, so lines never interleave. `record` never raises: a journal that cannot
  be written must not fail the operation it describes.
* The journal is bounded: once the file passes `MAX_BYTES` it is renamed to ``events.jsonl.1``
  (replacing the previous generation) under the ``events`` lock, so at most about 2 x `MAX_BYTES`
  are kept, like docker's bounded event buffer. A writer that opened the file just before a
  rotation lands its line in ``.1``; readers read ``.1`` first and followers drain the old file
  before switching, so nothing is lost.
* Readers skip lines that do not parse (a torn last line after a power loss).

The one-line helpers (`container`, `image`, `network`, `volume`) build docker's Actor attributes
for each object type; hooks in the engine and the monitor call them right after the change.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from katadocker.state import clock
from katadocker.state.lock import locked
from katadocker.state.paths import StateRoot

#: Size after which the journal is rotated (one older generation is kept).
MAX_BYTES = 2 * 1024 * 1024
#: How often a follower looks for new lines.
POLL_SECONDS = 0.1

_ROTATED_SUFFIX = ".1"
# The deprecated top-level fields docker 28 (API <= 1.51) still fills in, per event type.
_LEGACY_TYPES = ("container", "image")


@dataclass(frozen=True)
class Actor:
    """The object an event is about: its ID and docker's attributes (name, image, exitCode…)."""

    ID: str = ""
    Attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """docker's events.Message: Go field names for templates (``{{.Actor.Attributes.name}}``),
    JSON names in the ``json`` metadata (Go's struct tags, honoured by ``{{json .}}``)."""

    Status: str = field(default="", metadata={"json": "status,omitempty"})
    ID: str = field(default="", metadata={"json": "id,omitempty"})
    From: str = field(default="", metadata={"json": "from,omitempty"})
    Type: str = ""
    Action: str = ""
    Actor: Actor = field(default_factory=Actor)
    Scope: str = field(default="", metadata={"json": "scope,omitempty"})
    Time: int = field(default=0, metadata={"json": "time,omitempty"})
    TimeNano: int = field(default=0, metadata={"json": "timeNano,omitempty"})

    def to_json(self) -> dict[str, Any]:
        """The API's JSON object (keys in docker's order, empty legacy fields omitted)."""
        out: dict[str, Any] = {}
        for key, value in (("status", self.Status), ("id", self.ID), ("from", self.From)):
            if value:
                out[key] = value
        out.update(Type=self.Type, Action=self.Action,
                   Actor={"ID": self.Actor.ID, "Attributes": dict(self.Actor.Attributes)},
                   scope=self.Scope, time=self.Time, timeNano=self.TimeNano)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Message:
        actor = obj.get("Actor") or {}
        return cls(Status=obj.get("status", ""), ID=obj.get("id", ""), From=obj.get("from", ""),
                   Type=obj.get("Type", ""), Action=obj.get("Action", ""),
                   Actor=Actor(actor.get("ID", ""), dict(actor.get("Attributes") or {})),
                   Scope=obj.get("scope", ""), Time=int(obj.get("time", 0)),
                   TimeNano=int(obj.get("timeNano", 0)))


def make(type_: str, action: str, actor_id: str, attributes: Mapping[str, str] | None = None,
         now_ns: int | None = None) -> Message:
    """An event as docker's daemon logs it: attributes sorted (Go marshals maps sorted), the legacy
    status/id/from fields for container and image events, local scope."""
    ns = clock.now_ns() if now_ns is None else now_ns
    attrs = {k: str(v) for k, v in sorted((attributes or {}).items())}
    legacy = type_ in _LEGACY_TYPES
    return Message(Status=action if legacy else "", ID=actor_id if legacy else "",
                   From=attrs.get("image", "") if type_ == "container" else "",
                   Type=type_, Action=action, Actor=Actor(actor_id, attrs), Scope="local",
                   Time=ns // 1_000_000_000, TimeNano=ns)


# ---- writing ------------------------------------------------------------------------------------


def record(root: StateRoot, type_: str, action: str, actor_id: str,
           attributes: Mapping[str, str] | None = None) -> None:
    """Append one event to the journal (best effort: never raises)."""
    with contextlib.suppress(OSError):
        append(root, make(type_, action, actor_id, attributes))


def append(root: StateRoot, message: Message) -> None:
    """Append `message` as one line with a single ``write``; rotate once the file is too big."""
    line = (json.dumps(message.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    fd = os.open(root.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        _rotate(root)


def _rotate(root: StateRoot) -> None:
    with locked(root.locks, "events"):
        try:
            if root.events.stat().st_size <= MAX_BYTES:
                return  # another writer rotated it meanwhile
        except FileNotFoundError:
            return
        os.replace(root.events, _rotated(root))


def _rotated(root: StateRoot) -> os.PathLike[str]:
    return root.events.with_name(root.events.name + _ROTATED_SUFFIX)


def container(root: StateRoot, rec: Any, action: str, **extra: str) -> None:
    """A container event for the ContainerRecord `rec`: its labels, then ``image`` (as typed) and
    ``name``, then `extra` (``exitCode`` for die, ``signal`` for kill, ``oldName`` for rename)."""
    cfg = rec.config.get("Config") or {}
    attrs = {**(cfg.get("Labels") or {}), "image": cfg.get("Image", ""), "name": rec.name, **extra}
    record(root, "container", action, rec.id, attrs)


def image(root: StateRoot, action: str, actor_id: str, name: str) -> None:
    """An image event: pull (ID and name the reference pulled), tag (ID the image, name the new
    tag), untag/delete/load/save (ID and name the image ID), as docker's daemon logs them."""
    record(root, "image", action, actor_id, {"name": name})


def network(root: StateRoot, action: str, net: Mapping[str, Any], container_id: str | None = None) -> None:
    """A network event for the network record `net`; connect/disconnect name the container."""
    attrs = {"name": str(net.get("Name", "")), "type": str(net.get("Driver", "bridge"))}
    if container_id:
        attrs["container"] = container_id
    record(root, "network", action, str(net.get("Id", net.get("ID", ""))), attrs)


def volume(root: StateRoot, action: str, name: str, driver: str = "local") -> None:
    """A volume event (create, destroy, mount, unmount)."""
    record(root, "volume", action, name, {"driver": driver})


# ---- reading ------------------------------------------------------------------------------------


def _parse(line: bytes) -> Message | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return Message.from_json(obj) if isinstance(obj, dict) else None


def _read_lines(f: IO[bytes], pending: bytearray) -> Iterator[Message]:
    """Complete lines from `f` (from its current offset); a trailing partial line stays in `pending`."""
    chunk = f.read()
    if not chunk:
        return
    pending += chunk
    *lines, rest = pending.split(b"\n")
    pending[:] = rest
    for line in lines:
        msg = _parse(line)
        if msg is not None:
            yield msg


def _open(path: os.PathLike[str]) -> IO[bytes] | None:
    try:
        return open(path, "rb")  # noqa: SIM115 - the follower keeps it open across calls
    except FileNotFoundError:
        return None


def stream(root: StateRoot, since: int | None = None, until: int | None = None,
           stopped: Callable[[], bool] = lambda: False) -> Iterator[Message]:
    """docker's event subscription, in journal order.

    With neither `since` nor `until` (ns): only events appended from now on, until `stopped()`.
    Otherwise the journal's past events with ``since <= timeNano <= until`` first; then, unless
    `until` has passed, new ones as they are appended, until `until` passes or `stopped()`.
    The subscription starts when `stream` is called, not when the iterator is first advanced.
    """
    history = since is not None or until is not None
    current = _open(root.events)
    if current is not None and not history:
        current.seek(0, os.SEEK_END)
    return _generate(root, current, history, since, until, stopped)


def _generate(root: StateRoot, current: IO[bytes] | None, history: bool, since: int | None,
              until: int | None, stopped: Callable[[], bool]) -> Iterator[Message]:
    pending = bytearray()
    try:
        if history:
            old = _open(_rotated(root))
            if old is not None:
                with old:
                    yield from _window(_read_lines(old, bytearray()), since, until)
            if current is not None:
                yield from _window(_read_lines(current, pending), since, until)
        while not stopped() and (until is None or clock.now_ns() <= until):
            current = yield from _follow_step(root, current, pending, since, until)
            time.sleep(POLL_SECONDS)
    finally:
        if current is not None:
            current.close()


def _follow_step(root: StateRoot, current: IO[bytes] | None, pending: bytearray, since: int | None,
                 until: int | None) -> Iterator[Message]:
    """Yield what was appended since the last step; switch to the new file after a rotation.
    Returns the file to read next time (generator return value)."""
    if current is None:
        current = _open(root.events)
        if current is None:
            return None
    yield from _window(_read_lines(current, pending), since, until)
    try:
        rotated = os.stat(root.events).st_ino != os.fstat(current.fileno()).st_ino
    except FileNotFoundError:
        rotated = True
    if rotated:
        yield from _window(_read_lines(current, pending), since, until)  # lines written meanwhile
        current.close()
        pending.clear()
        return _open(root.events)
    return current


def _window(messages: Iterator[Message], since: int | None, until: int | None) -> Iterator[Message]:
    for msg in messages:
        if since is not None and msg.TimeNano < since:
            continue
        if until is not None and msg.TimeNano > until:
            continue
        yield msg
