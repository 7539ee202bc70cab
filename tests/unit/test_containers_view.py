"""What ps and inspect show: STATUS strings, human durations, filters, inspect's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from katadocker.engine import container_view as view
from katadocker.errors import InvalidArgument
from katadocker.state import clock
from katadocker.state.containers import ContainerRecord, initial_state

S = 1_000_000_000
NOW = 1_700_000_000 * S


@pytest.mark.parametrize(("secs", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (3, "3 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (7200, "2 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(secs: float, text: str) -> None:
    assert view.human_duration(secs) == text


def _record(tmp_path: Path, **state) -> ContainerRecord:
    config = {"Id": "a" * 64, "Name": "/web", "Created": clock.format_ns(NOW - 10 * S), "Path": "sh",
              "Args": ["-c", "echo hi there"], "Image": "sha256:" + "b" * 64,
              "Config": {"Image": "busybox", "Labels": {"app": "x", "tier": "web"}, "ExposedPorts": None},
              "HostConfig": {"NetworkMode": "bridge"}}
    st = initial_state()
    st.update(state)
    return ContainerRecord(tmp_path, config, st)


def test_status_text(tmp_path: Path) -> None:
    assert view.status_text(_record(tmp_path), NOW) == "Created"
    running = _record(tmp_path, Status="running", StartedAt=clock.format_ns(NOW - 3 * S))
    assert view.status_text(running, NOW) == "Up 3 seconds"
    exited = _record(tmp_path, Status="exited", ExitCode=137, FinishedAt=clock.format_ns(NOW - 120 * S),
                     StartedAt=clock.format_ns(NOW - 200 * S))
    assert view.status_text(exited, NOW) == "Exited (137) 2 minutes ago"


def test_command_quotes_args_with_spaces(tmp_path: Path) -> None:
    assert view.command_text(_record(tmp_path)) == "sh -c 'echo hi there'"


def test_filters(tmp_path: Path) -> None:
    rec = _record(tmp_path, Status="exited", ExitCode=3, StartedAt=clock.format_ns(NOW),
                  FinishedAt=clock.format_ns(NOW))
    match = lambda *f: view.matches(rec, view.parse_filters(list(f)), None)  # noqa: E731
    assert match("name=web") and match("name=^/web$") and match("name=we")
    assert not match("name=db")
    assert match("name=db", "name=web")                   # one key: OR
    assert not match("name=web", "status=running")        # two keys: AND
    assert match("label=app") and match("label=app=x") and not match("label=app=y")
    assert match("exited=3") and not match("exited=0")
    assert match("id=aaaa") and match("status=exited")


@pytest.mark.parametrize(("flag", "message"), [("bogus=1", "invalid filter 'bogus'"),
                                               ("status=rubbish", "invalid filter 'status=rubbish'"),
                                               ("exited=x", "invalid filter 'exited=x'"),
                                               ("foo", "bad format of filter")])
def test_bad_filters(flag: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        view.parse_filters([flag])


def test_inspect_shape(tmp_path: Path) -> None:
    doc = view.inspect_document(_record(tmp_path))
    assert list(doc)[:6] == ["Id", "Created", "Path", "Args", "State", "Image"]
    assert doc["Name"] == "/web"
    assert doc["State"] == {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                            "StartedAt": clock.ZERO_TIME, "FinishedAt": clock.ZERO_TIME}
    assert set(doc["NetworkSettings"]["Networks"]) == {"bridge"}
    assert doc["Mounts"] == [] and doc["LogPath"].endswith("ctr.log")
