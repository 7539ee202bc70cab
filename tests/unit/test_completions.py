"""The committed shell completion scripts are current, name every command and flag, and complete in
real shells: bash always (COMP_WORDS/COMP_CWORD, then COMPREPLY), fish and zsh where installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from typer.testing import CliRunner

from katadocker.cli.completion import FILENAMES, cli_command, generate
from katadocker.cli.main import app
from tests.support.cli import Katadocker

COMPLETIONS = Path(__file__).resolve().parents[2] / "completions"
BASH_SCRIPT = COMPLETIONS / FILENAMES["bash"]

# Stands in for katadocker at completion time: the listing commands the scripts run, with fixed answers.
STUB = r"""
katadocker() {
    case "$*" in
        ("ps -a --format {{.Names}}") printf '%s\n' web db ;;
        ("images --format {{.Repository}}:{{.Tag}}")
            printf '%s\n' busybox:latest busybox:1.36 '<none>:<none>' ;;
        ("network ls --format {{.Name}}") printf '%s\n' bridge testnet ;;
        ("volume ls -q") printf '%s\n' data ;;
    esac
}
"""


@pytest.fixture(scope="module")
def tree() -> click.Command:
    return cli_command()


Path_ = tuple[str, ...]


def _commands(command: click.Command, path: Path_ = ()) -> Iterator[tuple[Path_, click.Command]]:
    """Every (path, command) of the tree, straight from click."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _commands(sub, (*path, name))


def _flags(command: click.Command) -> list[str]:
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    return sorted({"--help", *(s for o in options for s in (*o.opts, *o.secondary_opts))})


def bash_complete(*words: str, stub: bool = False, env: dict[str, str] | None = None) -> list[str]:
    """COMPREPLY of the committed bash script for `katadocker WORDS...` (the last word is the one
    being completed), sorted."""
    script = (f"source {BASH_SCRIPT}\n{STUB if stub else ''}\n"
              'COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _katadocker; printf "%s\\n" "${COMPREPLY[@]}"')
    proc = subprocess.run(["bash", "-c", script, "bash", "katadocker", *words], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return sorted(line for line in proc.stdout.splitlines() if line)


@pytest.mark.parametrize("shell", sorted(FILENAMES))
def test_committed_script_is_current(shell: str, tree: click.Command) -> None:
    committed = COMPLETIONS / FILENAMES[shell]
    if not committed.exists() or committed.read_text() != generate(shell, tree):
        pytest.fail(f"completions/{FILENAMES[shell]} differs from what the CLI definition generates now: "
                    "run scripts/gen-completions and commit the result")


def test_completion_command_prints_the_script(tree: click.Command) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["completion", "zsh"])
    assert result.exit_code == 0, result.output
    assert result.output == generate("zsh", tree)
    assert runner.invoke(app, ["completion", "powershell"]).exit_code != 0


@pytest.mark.parametrize("shell", sorted(FILENAMES))
def test_scripts_name_every_command_and_flag(shell: str, tree: click.Command) -> None:
    text = (COMPLETIONS / FILENAMES[shell]).read_text()
    for path, command in _commands(tree):
        missing = [word for word in (*path[-1:], *_flags(command)) if word not in text]
        assert not missing, f"{' '.join(path)}: {missing}"


def test_bash_syntax() -> None:
    proc = subprocess.run(["bash", "-n", str(BASH_SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("words", "expected"), [
    (("ru",), ["run"]),
    (("run", "--na"), ["--name"]),
    (("run", "-e", "A=1", "--na"), ["--name"]),  # the value of -e is not a positional
    (("--root", "/x", "ps", "--al"), ["--all"]),  # global options and their values are skipped
    (("run", "busybox", "--na"), []),  # after the image, words belong to the container's command
    (("completion", ""), ["bash", "fish", "zsh"]),  # click choices
])
def test_bash_completes_commands_and_flags(words: tuple[str, ...], expected: list[str]) -> None:
    assert bash_complete(*words) == expected


def test_bash_completes_every_command_and_its_flags(tree: click.Command) -> None:
    for path, command in _commands(tree):
        if isinstance(command, click.Group):
            assert bash_complete(*path, "") == sorted(command.commands), path
        assert bash_complete(*path, "-") == _flags(command), path


@pytest.mark.parametrize(("words", "expected"), [
    (("rm", ""), ["db", "web"]),
    (("container", "stop", "web", "d"), ["db"]),
    (("rmi", "busybox", ":", ""), ["1.36", "latest"]),  # readline splits image:tag at ':'
    (("run", "--network", "te"), ["testnet"]),
    (("run", "--network", "=", "te"), ["testnet"]),
    (("network", "connect", "testnet", "w"), ["web"]),
    (("inspect", ""), ["busybox:1.36", "busybox:latest", "db", "web"]),
])
def test_bash_completes_object_names(words: tuple[str, ...], expected: list[str]) -> None:
    assert bash_complete(*words, stub=True) == expected


@pytest.fixture
def kd_with_network(kd: Katadocker) -> Iterator[Katadocker]:
    """`kd` with the network ``testnet`` created by katadocker itself; its host objects removed after."""
    from katadocker.config import load_settings
    from katadocker.network import networks

    if os.geteuid() != 0:
        pytest.skip("network create needs root")
    try:
        kd.ok("network", "create", "testnet")
        yield kd
    finally:
        networks.teardown_all(load_settings(str(kd.root)))


def test_bash_completes_live_network_names(kd_with_network: Katadocker) -> None:
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "katadocker").exists()
    env = kd_with_network.env() | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert bash_complete("network", "rm", "te", env=env) == ["testnet"]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes() -> None:
    script = COMPLETIONS / FILENAMES["fish"]
    assert subprocess.run(["fish", "-n", str(script)], capture_output=True).returncode == 0

    def complete(line: str) -> list[str]:
        out = subprocess.run(["fish", "-c", f"source {script}; complete -C '{line}'"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return sorted(row.split("\t")[0] for row in out.splitlines())

    assert complete("katadocker ru") == ["run"]
    assert "--name" in complete("katadocker run --na")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_syntax() -> None:
    proc = subprocess.run(["zsh", "-n", str(COMPLETIONS / FILENAMES["zsh"])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
