"""docker's explicit values for on/off flags (``--rm=false``, ``-d=true``, ``history -H=false``), on
every command: parsed in-process through click, and end to end on commands that need no VM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer

from katadocker.cli.entry import GLOBAL_VALUE_OPTIONS, invoked_verb, leading_options, starts_a_container
from katadocker.cli.main import app, app_for

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> click.Context:
    """The context `katadocker ARGV` would run its command with (the command is argv[0], or argv[0]
    argv[1] under a management group)."""
    command = typer.main.get_command(app)
    words = list(argv)
    path = []
    while isinstance(command, click.Group):
        path.append(words[0])
        command = command.commands[words.pop(0)]
    return command.make_context(" ".join(path), words)


def kd(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "katadocker", "--root", str(root), *args], cwd=REPO,
                          env={**os.environ, "KATADOCKER_CONFIG": "/nonexistent"},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_run_bool_flags_take_explicit_values() -> None:
    ctx = parse("run", "--rm=false", "-d=true", "--sig-proxy=false", "-i=false", "-t=0", "--read-only=F",
                "-P=FALSE", "--init=True", "busybox")
    p = ctx.params
    assert (p["rm"], p["detach"], p["sig_proxy"], p["interactive"], p["tty"]) == (False, True, False,
                                                                                 False, False)
    assert (p["read_only"], p["publish_all"], p["init"]) == (False, False, True)
    assert parse("run", "--rm=true", "--sig-proxy=true", "busybox").params["rm"] is True


def test_the_last_spelling_wins() -> None:
    assert parse("run", "-d", "-d=false", "busybox").params["detach"] is False
    assert parse("run", "-d=false", "-d", "busybox").params["detach"] is True
    assert parse("create", "-t=false", "-it", "busybox").params["tty"] is True


def test_container_command_and_option_values_are_left_alone() -> None:
    ctx = parse("run", "--rm=false", "busybox", "sh", "-c", "--rm=false", "-d=false")
    assert list(ctx.params["args"]) == ["sh", "-c", "--rm=false", "-d=false"]
    ctx = parse("run", "--name", "-d=false", "-de", "-t=true", "busybox", "--", "-i=false")
    assert ctx.params["name"] == "-d=false" and list(ctx.params["env"]) == ["-t=true"]
    assert ctx.params["detach"] is True and ctx.params["tty"] is False
    assert list(ctx.params["args"]) == ["--", "-i=false"]


def test_on_off_flags_and_other_commands() -> None:
    assert parse("history", "-H=false", "busybox").params["human"] is False
    assert parse("history", "--human=true", "busybox").params["human"] is True
    assert parse("image", "history", "-H=0", "busybox").params["human"] is False
    assert parse("images", "--no-trunc=false").params["no_trunc"] is False
    assert parse("ps", "-a=true", "-q=false").params["all_"] is True


def test_a_bad_value_is_a_flag_error() -> None:
    with pytest.raises(click.UsageError, match=r'invalid argument "maybe" for "--rm" flag: '
                                               r'strconv.ParseBool: parsing "maybe": invalid syntax'):
        parse("run", "--rm=maybe", "busybox")


def test_help_does_not_show_the_parser_spelling() -> None:
    out = kd(Path("/nonexistent"), "run", "--help").stdout
    assert "--rm" in out and "off-" not in out and "\0" not in out


def test_end_to_end(tmp_path: Path) -> None:
    r = kd(tmp_path, "images", "--no-trunc=false")
    assert (r.returncode, r.stdout.split()[:2], r.stderr) == (0, ["REPOSITORY", "TAG"], "")
    r = kd(tmp_path, "history", "-H=false", "nope")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "Error response from daemon: No such image: nope:latest\n"
    r = kd(tmp_path, "ps", "--no-trunc=maybe")
    assert r.returncode == 125
    assert r.stderr.startswith('invalid argument "maybe" for "--no-trunc" flag: strconv.ParseBool: '
                               'parsing "maybe": invalid syntax\n\nUsage:  katadocker ps')
    r = kd(tmp_path, "history", "-H=bogus", "nope")
    assert r.returncode == 125
    assert r.stderr.startswith('invalid argument "bogus" for "-H, --human" flag')


@pytest.mark.parametrize(("argv", "verb"), [
    (["run", "-d", "busybox"], "run"),
    (["--root", "/r", "-l", "debug", "--config", "/c", "-D", "ps", "-a"], "ps"),
    (["--root=/r", "image", "ls"], "image"),
    (["--debug"], None),
    ([], None),
    (["--", "run"], None),
])
def test_invoked_verb_skips_global_options_and_their_values(argv: list[str], verb: str | None) -> None:
    assert invoked_verb(argv) == verb


@pytest.mark.parametrize(("argv", "options"), [
    (["--root", "/r", "run", "--root", "/x"], {"--root": "/r"}),  # the verb's own options are not global
    (["--root=/r", "-D", "start", "c"], {"--root": "/r", "-D": ""}),
    (["-l", "debug", "--config=/c"], {"-l": "debug", "--config": "/c"}),
    (["--root"], {"--root": ""}),
])
def test_leading_options_are_the_global_options_with_their_values(argv: list[str], options: dict) -> None:
    """The early VM's state root comes from them (cli/entry.py)."""
    assert leading_options(argv)[0] == options


@pytest.mark.parametrize(("argv", "starts"), [
    (["run", "busybox"], True),
    (["--root", "/r", "container", "start", "x"], True),
    (["container", "ls"], False),
    (["ps"], False),
    (["--root", "run"], False),  # "run" is --root's value; no verb
])
def test_the_entry_point_pre_starts_a_monitor_for_run_and_start(argv: list[str], starts: bool) -> None:
    assert starts_a_container(argv) is starts


def test_app_for_builds_only_the_invoked_command_or_group() -> None:
    only_run = app_for(["--root", "/r", "run", "busybox"])
    assert [c.name for c in only_run.registered_commands] == ["run"] and not only_run.registered_groups
    only_image = app_for(["image", "ls"])
    assert [g.name for g in only_image.registered_groups] == ["image"] and not only_image.registered_commands
    # the full tree: unknown verbs (docker's "unknown command" needs it), help, and completion
    assert app_for(["no-such-verb"]) is app
    assert app_for(["--help"]) is app
    assert app_for(["completion", "bash"]) is app
    assert len(app.registered_commands) > 30  # app itself is never reduced


def test_reduced_app_parses_and_reports_errors_like_the_full_one(tmp_path: Path) -> None:
    """A bad flag of the invoked verb still gets docker's usage error from the reduced app."""
    result = kd(tmp_path, "run", "--no-such-flag", "busybox")
    assert result.returncode == 125
    assert "unknown flag: --no-such-flag" in result.stderr
    assert "Usage:  katadocker run [OPTIONS] IMAGE [COMMAND] [ARG...]" in result.stderr


def test_the_entry_point_knows_every_global_option_that_takes_a_value() -> None:
    """cli/entry.py finds the verb without importing the CLI, from its own list of the global
    options that take a value; that list must be the one global_options declares."""
    group = typer.main.get_command(app)
    taking_values = {opt for p in group.params if isinstance(p, click.Option) and not p.is_flag
                     for opt in p.opts}
    assert taking_values == GLOBAL_VALUE_OPTIONS
