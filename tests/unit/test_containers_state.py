"""Container records: IDs, generated names, name validation, lookup order, reconciliation."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from katadocker.errors import Conflict, InvalidArgument, NoSuchContainer
from katadocker.state import clock, namegen
from katadocker.state.atomic import write_json
from katadocker.state.containers import ContainerStore, new_id, reconcile, validate_name, write_pid_file
from katadocker.state.paths import StateRoot


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(StateRoot(tmp_path / "root").ensure())


def _create(store: ContainerStore, name: str | None = None, cid: str | None = None):
    return store.create(cid or new_id(), {"Path": "true", "Args": [], "Config": {}, "HostConfig": {}}, name)


def test_ids_are_64_hex_and_never_all_digit_prefixes() -> None:
    for _ in range(200):
        cid = new_id()
        assert re.fullmatch(r"[0-9a-f]{64}", cid)
        assert not cid[:12].isdigit()


def test_generated_names_look_like_dockers() -> None:
    assert len(namegen.LEFT) == 108 and len(namegen.RIGHT) == 236
    for retry in (0, 1):
        for _ in range(200):
            name = namegen.random_name(retry)
            assert re.fullmatch(r"[a-z]+_[a-z]+[0-9]?", name)
            assert name != "boring_wozniak"
            assert name[-1].isdigit() == (retry > 0)


@pytest.mark.parametrize("name", ["web", "/web", "a1", "my_app.v-2"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "my name", "-x", "_x", "x/y", ""])
def test_invalid_names_get_dockers_message(name: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(f"Invalid container name ({name}), only "
                                                        "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")):
        validate_name(name)


def test_name_conflict_message(store: ContainerStore) -> None:
    first = _create(store, "web")
    with pytest.raises(Conflict) as e:
        _create(store, "/web")
    assert e.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def test_record_layout_and_generated_name(store: ContainerStore) -> None:
    rec = _create(store)
    assert rec.config["Name"] == f"/{rec.name}"
    assert re.fullmatch(r"[a-z]+_[a-z]+[0-9]?", rec.name)
    for sub in ("upper", "work", "rootfs", "pids"):
        assert (rec.dir / sub).is_dir()
    assert store.load(rec.id).status == "created"
    clock.parse_ns(rec.config["Created"])


def test_lookup_order(store: ContainerStore) -> None:
    a = _create(store, "alpha", cid="abc" + "1" * 61)
    b = _create(store, "beta", cid="abd" + "2" * 61)
    named_like_prefix = _create(store, "abc", cid="f" * 64)
    assert store.lookup(a.id).id == a.id                      # full ID
    assert store.lookup("/beta").id == b.id                   # name with slash
    assert store.lookup("abc").id == named_like_prefix.id     # a name shadows an ID prefix
    assert store.lookup("abd").id == b.id                     # unique prefix
    with pytest.raises(InvalidArgument, match="multiple IDs found with provided prefix: ab"):
        store.lookup("ab")
    with pytest.raises(NoSuchContainer, match="No such container: nope"):
        store.lookup("nope")
    with pytest.raises(InvalidArgument, match='invalid name or ID supplied: ""'):
        store.lookup("")


def test_rename(store: ContainerStore) -> None:
    a = _create(store, "one")
    _create(store, "two")
    with pytest.raises(Conflict):
        store.rename(a, "two")
    store.rename(a, "three")
    assert store.lookup("three").id == a.id


def test_ps_order_is_newest_first(store: ContainerStore) -> None:
    ids = [_create(store).id for _ in range(3)]
    assert [r.id for r in store.all()] == ids[::-1]


def test_delete_removes_everything(store: ContainerStore) -> None:
    rec = _create(store)
    store.delete(rec)
    assert not rec.dir.exists()
    assert store.ids() == []


def _running(store: ContainerStore, pid: int):
    rec = _create(store)
    rec.state.update(Status="running", Pid=pid, StartedAt=clock.format_ns(clock.now_ns()))
    store.save_state(rec)
    return rec


def test_reconcile_reads_the_exit_file(store: ContainerStore) -> None:
    rec = _running(store, os.getpid())
    assert reconcile(store, rec).status == "running"  # monitor alive, no exit file
    write_json(rec.exit_path, {"ExitCode": 3, "FinishedAt": "2024-01-02T03:04:05Z", "Error": ""})
    rec = reconcile(store, store.load(rec.id))
    assert (rec.status, rec.state["ExitCode"]) == ("exited", 3)
    assert rec.state["FinishedAt"] == "2024-01-02T03:04:05Z"
    assert store.load(rec.id).status == "exited"


def test_reconcile_after_the_monitor_vanished_kills_leftovers(store: ContainerStore) -> None:
    helper = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    rec = _running(store, dead.pid)
    write_pid_file(rec.pid_dir / "qemu", helper.pid)
    rec = reconcile(store, rec)
    assert rec.status == "exited" and rec.state["ExitCode"] == 137
    assert "monitor" in rec.state["Error"]
    assert helper.wait(timeout=10) == -9

