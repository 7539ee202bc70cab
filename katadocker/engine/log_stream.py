"""`logs`: a container's json-file log, filtered, optionally followed until the container stops."""

from __future__ import annotations

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

    following = follow and record.running
    log = logs.open_log(record.log_path, create=following)
    if log is None:
        return
    with log:  # closed also when the caller abandons the stream
        records, offset = logs.read_records(log, opts)
        yield from records
        if following:
            yield from logs.follow_records(log, offset, opts, stopped, poll=0.1)
