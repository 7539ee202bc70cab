"""docker pause / unpause: the container's whole VM is stopped and resumed (QMP ``stop`` /
``cont`` through the monitor), and state.json says ``paused`` meanwhile (``ps`` shows
``Up … (Paused)``, inspect ``"Paused": true``). Errors are docker's daemon messages."""

from __future__ import annotations

from katadocker.config import Settings
from katadocker.engine import control
from katadocker.errors import Conflict, KatadockerError
from katadocker.state.containers import ContainerRecord, ContainerStore, reconcile


def _vm_request(record: ContainerRecord, op: str) -> None:
    try:
        reply = control.request(record.control_socket, {"op": op}, timeout=30)
    except control.MonitorUnreachable:
        raise Conflict(f"container {record.id} is not running") from None
    if reply.get("error"):
        raise KatadockerError(f"cannot {op} container {record.id}: {reply['error']}")


def pause(settings: Settings, ref: str) -> ContainerRecord:
    """Stop the VM of a running container; Conflict if it is not running or already paused."""
    store = ContainerStore(settings.state)
    record = store.lookup(ref)
    with store.lock(record.id):
        record = reconcile(store, store.load(record.id))
        if record.state["Status"] == "paused":
            raise Conflict(f"container {record.id} is already paused")
        if not record.running:
            raise Conflict(f"container {record.id} is not running")
        _vm_request(record, "pause")
        record.state["Status"] = "paused"
        store.save_state(record)
    return record


def unpause(settings: Settings, ref: str) -> ContainerRecord:
    """Resume a paused container's VM; Conflict if it is not paused."""
    store = ContainerStore(settings.state)
    record = store.lookup(ref)
    with store.lock(record.id):
        record = reconcile(store, store.load(record.id))
        if record.state["Status"] != "paused":
            raise Conflict(f"container {record.id} is not paused")
        _vm_request(record, "unpause")
        record.state["Status"] = "running"
        store.save_state(record)
    return record
