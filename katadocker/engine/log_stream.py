"""`logs`: a container's json-file log, filtered, optionally followed until the container stops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from katadocker.config import Settings
from katadocker.engine import logs
from katadocker.errors import NoSuchContainer
from katadocker.state.containers import ContainerStore, reconcile


def stream(settings: Settings, ref: str, opts: logs.LogOptions, follow: bool) -> Iterator[logs.LogRecord]:
    """The records `logs` prints; with `follow`, new ones until the container is no longer running
    (returns at once for a stopped container, as docker)."""
    store = ContainerStore(settings.state)
    record = reconcile(store, store.lookup(ref))

    def stopped() -> bool:
        try:
            return not reconcile(store, store.load(record.id)).running
        except NoSuchContainer:
            return True

    log = logs.open_for_follow(record.log_path) if follow and record.running else None
    with log or contextlib.nullcontext():  # closed also when the caller abandons the stream
        records, offset = logs.read_records(record.log_path, opts)
        yield from records
        if log is not None:
            yield from logs.follow_records(log, offset, opts, stopped, poll=0.1)
