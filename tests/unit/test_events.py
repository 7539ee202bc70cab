"""The events journal (engine/events.py), docker's event filters and the default event line."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from katadocker.cli import gotemplate
from katadocker.cli.system_cmds import event_line, prune_warning
from katadocker.engine import event_filter, events
from katadocker.errors import InvalidArgument, UsageError
from katadocker.state.paths import StateRoot


@pytest.fixture
def root(tmp_path: Path) -> StateRoot:
    return StateRoot(tmp_path).ensure()


def _history(root: StateRoot) -> list[events.Message]:
    return list(events.stream(root, since=0, until=events.clock.now_ns()))


def test_container_event_has_docker_shape(root: StateRoot) -> None:
    events.record(root, "container", "die", "a" * 64, {"name": "web", "image": "busybox", "exitCode": "3"})
    [msg] = _history(root)
    assert msg.to_json()["status"] == "die" and msg.From == "busybox" and msg.Scope == "local"
    assert list(msg.Actor.Attributes) == ["exitCode", "image", "name"]
    assert msg.Time == msg.TimeNano // 1_000_000_000
    text = gotemplate.go_json(msg)
    assert text.startswith('{"status":"die","id":"' + "a" * 64 + '","from":"busybox","Type":"container"')
    assert gotemplate.render("{{.Status}} {{.Actor.Attributes.exitCode}}", msg) == "die 3"


def test_network_event_omits_legacy_fields(root: StateRoot) -> None:
    events.network(root, "create", {"Name": "n1", "Id": "b" * 64, "Driver": "bridge"})
    [msg] = _history(root)
    assert '"status"' not in gotemplate.go_json(msg)
    assert gotemplate.render("{{.Status}}|{{.Actor.Attributes.name}}", msg) == "|n1"


def test_record_never_raises(tmp_path: Path) -> None:
    events.record(StateRoot(tmp_path / "missing" / "root"), "image", "pull", "x:latest", {"name": "x"})


def _append_many(root: str, n: int) -> None:
    state = StateRoot(Path(root))
    for i in range(n):
        events.record(state, "image", "tag", f"sha256:{i}", {"name": "x" * 200})


def test_concurrent_appenders_and_rotation(root: StateRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 40_000)
    procs = [multiprocessing.Process(target=_append_many, args=(str(root.root), 200)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    # forked children inherit the small limit, so they rotated while appending concurrently
    events.record(root, "image", "tag", "sha256:last", {"name": "y"})
    assert root.events.with_name("events.jsonl.1").exists()
    for path in (root.events, root.events.with_name("events.jsonl.1")):
        for line in path.read_bytes().splitlines():
            assert events._parse(line) is not None  # no torn or interleaved lines


def test_follow_sees_new_events_only(root: StateRoot) -> None:
    events.record(root, "image", "tag", "sha256:old", {"name": "old"})
    seen: list[str] = []
    stream = events.stream(root, stopped=lambda: len(seen) >= 1)
    events.record(root, "image", "tag", "sha256:new", {"name": "new"})
    for msg in stream:
        seen.append(msg.Actor.ID)
    assert seen == ["sha256:new"]


def test_follow_survives_rotation(root: StateRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 1000)
    events.record(root, "image", "tag", "sha256:before", {"name": "n" * 300})
    seen: list[str] = []
    stream = events.stream(root, stopped=lambda: len(seen) >= 3)
    for i in range(3):  # the second one rotates the file under the follower
        events.record(root, "image", "tag", f"sha256:{i}", {"name": "n" * 300})
    assert root.events.with_name("events.jsonl.1").exists()
    for msg in stream:
        seen.append(msg.Actor.ID)
    assert seen == ["sha256:0", "sha256:1", "sha256:2"]


def _msg(type_: str, action: str, actor: str, **attrs: str) -> events.Message:
    return events.make(type_, action, actor, attrs, now_ns=1_700_000_000_000_000_000)


@pytest.mark.parametrize("filters,expected", [
    (["type=container"], True),
    (["type=image"], False),
    (["event=start", "event=die"], True),
    (["container=web"], True),
    (["container=abc"], True),          # ID prefix
    (["container=we"], True),           # name prefix (moby's FuzzyMatch)
    (["container=other"], False),
    (["image=busybox"], True),
    (["image=busybox:latest"], True),   # tag stripped on both sides
    (["label=app=x"], True),
    (["label=app=y"], False),
    (["label=app"], True),
    (["network=bridge"], False),
])
def test_filters(filters: list[str], expected: bool) -> None:
    msg = _msg("container", "start", "abc" + "0" * 61, name="web", image="busybox:latest", app="x")
    assert event_filter.matches(event_filter.parse(filters), msg) is expected


def test_filter_errors() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        event_filter.parse(["bogus=1"])
    with pytest.raises(UsageError, match="bad format of filter"):
        event_filter.parse(["type"])


def test_default_line_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    line = event_line(_msg("container", "start", "c" * 64, name="web", image="busybox"))
    assert line == f"2023-11-14T22:13:20.000000000Z container start {'c' * 64} (image=busybox, name=web)"


def test_prune_warning_text() -> None:
    text = prune_warning(True, True, {"until": ["24h"]})
    assert text.startswith("WARNING! This will remove:\n  - all stopped containers\n")
    assert "  - all anonymous volumes not used by at least one container\n" in text
    assert "  - all images without at least one container associated to them\n" in text
    assert "Items to be pruned will be filtered with:\n  - until=24h\n" in text
    assert text.endswith("\nAre you sure you want to continue?")
