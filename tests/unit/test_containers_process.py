"""The container process as docker defines it: ENTRYPOINT/CMD, environment, USER, WORKDIR, signals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from katadocker.engine import process_spec as ps
from katadocker.engine.signals import parse_signal
from katadocker.errors import InvalidArgument

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
wheel:x:10:app,other
staff:x:50:app
app:x:1000:
"""


@pytest.mark.parametrize(("image_ep", "image_cmd", "entrypoint", "args", "expected"), [
    (None, ["sh"], None, [], ([], ["sh"])),                               # image CMD
    (None, ["sh"], None, ["ls", "-l"], ([], ["ls", "-l"])),               # args replace CMD
    (["/entry"], ["--x"], None, [], (["/entry"], ["--x"])),              # ENTRYPOINT + CMD
    (["/entry"], ["--x"], None, ["--y"], (["/entry"], ["--y"])),         # args replace CMD only
    (["/entry"], ["--x"], "/other", [], (["/other"], [])),              # --entrypoint drops CMD
    (["/entry"], ["--x"], "/other", ["a"], (["/other"], ["a"])),
    (["/entry"], ["--x"], "", ["ls"], ([], ["ls"])),                     # --entrypoint "" clears it
])
def test_entrypoint_and_cmd(image_ep, image_cmd, entrypoint, args, expected) -> None:
    assert ps.combine_command(image_ep, image_cmd, entrypoint, args) == expected


def test_no_command() -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        ps.process_argv(*ps.combine_command(None, None, None, []))


def test_env_merge_and_host_values() -> None:
    host = {"FOO": "from-host"}
    user = ps.expand_env_options(["A=1", "FOO", "UNSET"], host)
    assert user == ["A=1", "FOO=from-host"]
    env = ps.container_env(["PATH=/bin", "A=0", "B=2"], user)
    assert env == ["PATH=/bin", "A=1", "B=2", "FOO=from-host"]
    assert ps.container_env([], [])[0] == f"PATH={ps.DEFAULT_PATH}"


def test_env_file() -> None:
    text = "# comment\n\nX=1\n  Y=two words\nHOSTVAR\n"
    assert ps.parse_env_file(text, {"HOSTVAR": "h"}) == ["X=1", "Y=two words", "HOSTVAR=h"]


def test_process_env_defaults() -> None:
    env = ps.process_env(["PATH=/bin", "HOSTNAME=custom"], "abc", tty=True, home="/root")
    assert env == ["HOSTNAME=custom", "TERM=xterm", "PATH=/bin", "HOME=/root"]


@pytest.mark.parametrize(("spec", "uid", "gid", "groups", "home"), [
    ("", 0, 0, [], "/root"),
    ("app", 1000, 1000, [10, 50], "/home/app"),
    ("1000", 1000, 1000, [10, 50], "/home/app"),
    ("app:wheel", 1000, 10, [], "/home/app"),          # explicit group: no supplementary groups
    ("app:0", 1000, 0, [], "/home/app"),
    ("4242", 4242, 0, [], "/"),                        # unknown uid: gid 0
    ("4242:4343", 4242, 4343, [], "/"),
])
def test_resolve_user(spec: str, uid: int, gid: int, groups: list[int], home: str) -> None:
    user = ps.resolve_user(spec, PASSWD, GROUP)
    assert (user.uid, user.gid, user.groups, user.home) == (uid, gid, groups, home)


def test_unknown_user_and_group() -> None:
    with pytest.raises(ps.UserNotFound, match="unable to find user nobody: no matching entries in passwd"):
        ps.resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(ps.UserNotFound, match="unable to find group nope: no matching entries in group file"):
        ps.resolve_user("app:nope", PASSWD, GROUP)


def test_secure_join_stays_in_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("inside")
    (root / "link").symlink_to("/etc")
    (root / "up").symlink_to("../../..")
    assert ps.secure_join(root, "/link/passwd") == root / "etc/passwd"
    assert ps.secure_join(root, "/up/etc/passwd") == root / "etc/passwd"
    assert ps.secure_join(root, "../../etc/passwd") == root / "etc/passwd"
    assert ps.read_root_file(root, "/link/passwd") == "inside"
    assert ps.read_root_file(root, "/missing") == ""


def test_workdir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin/cat").write_text("")
    ps.ensure_workdir(root, "/a/b", 1000, 1000)
    assert (root / "a/b").is_dir() and os.stat(root / "a/b").st_uid == 1000
    with pytest.raises(InvalidArgument, match="not a directory"):
        ps.ensure_workdir(root, "/bin/cat", 0, 0)
    with pytest.raises(InvalidArgument, match="needs to be an absolute path"):
        ps.ensure_workdir(root, "rel", 0, 0)


@pytest.mark.parametrize(("text", "signo"), [("SIGTERM", 15), ("TERM", 15), ("kill", 9), ("2", 2),
                                             ("SIGQUIT", 3)])
def test_parse_signal(text: str, signo: int) -> None:
    assert parse_signal(text) == signo


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "999", ""])
def test_bad_signal(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        parse_signal(text)
