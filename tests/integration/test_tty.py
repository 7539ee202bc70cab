"""`run -it`, `attach` and `exec -it` in real terminals (tmux): typing at the prompt, window size
at start and after a resize, Ctrl-C reaching the container, detach keys and re-attach, the shell's
exit code, and the terminal restored afterwards."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import Katadocker

pytestmark = pytest.mark.vm


class Tmux:
    """One detached tmux session running a shell command line in a terminal of a given size.

    Each terminal gets its own tmux server (socket ``-L <name>``): with one shared server, a
    test's ``kill-session`` of the last session shuts the server down while the next test's
    ``new-session`` may be connecting to it ("server exited unexpectedly")."""

    def __init__(self, kd: Katadocker, command: str, cols: int = 100, rows: int = 30) -> None:
        self.name = f"kd-{uuid.uuid4().hex[:8]}"
        self._tmux = ["tmux", "-L", self.name]
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in kd.env().items()
                       if k.startswith(("KATADOCKER", "DOCKER_CONFIG")))
        line = f"env {env} {command}; echo rc=$?; stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 600"
        subprocess.run([*self._tmux, "new-session", "-d", "-s", self.name, "-x", str(cols), "-y", str(rows),
                        "sh", "-c", line], check=True)

    def screen(self) -> str:
        """The pane's text, trailing blanks of each line removed."""
        text = subprocess.run([*self._tmux, "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
                              capture_output=True, text=True, check=True).stdout
        return "\n".join(line.rstrip() for line in text.splitlines())

    def wait_for(self, pattern: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, screen := self.screen(), re.M):
            assert time.monotonic() < deadline, f"{pattern!r} never appeared:\n{screen}"
            time.sleep(0.3)
        return screen

    def keys(self, *keys: str) -> None:
        subprocess.run([*self._tmux, "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        self.keys("-l", text)
        self.keys("Enter")

    def resize(self, cols: int, rows: int) -> None:
        subprocess.run([*self._tmux, "resize-window", "-t", self.name, "-x", str(cols), "-y", str(rows)],
                       check=True)

    def close(self) -> None:
        subprocess.run([*self._tmux, "kill-server"], capture_output=True)


KD = f"{sys.executable} -m katadocker"


def test_run_it_prompt_resize_ctrl_c_detach_reattach_exit_code(vm_kd: Katadocker, busybox_image: str) -> None:
    name = "tty-shell"
    term = Tmux(vm_kd, f"{KD} run -it --network none --name {name} {busybox_image} sh")
    try:
        term.wait_for(r"^/ #")
        term.type("echo $((6*7))")
        term.wait_for(r"^42\r?$")
        term.type("stty size")
        term.wait_for(r"^30 100")
        term.resize(120, 40)
        time.sleep(1)
        term.type("stty size")
        term.wait_for(r"^40 120")
        term.type("sleep 1000")
        time.sleep(1)
        term.keys("C-c")  # a byte to the pty: the guest's line discipline interrupts sleep
        term.type("echo after-interrupt")
        term.wait_for(r"^after-interrupt")
        term.keys("C-p", "C-q")
        term.wait_for(r"rc=0$")
        assert "-icanon" not in term.wait_for(r"icanon\s*$")  # cooked mode again
        assert vm_kd.ok("inspect", "-f", "{{.State.Status}}", name) == "running\n"
    finally:
        term.close()
    again = Tmux(vm_kd, f"{KD} attach {name}")
    try:
        time.sleep(2)
        again.type("echo reattached")
        again.wait_for(r"^reattached")
        again.type("exit 3")
        again.wait_for(r"rc=3$")
        assert "-icanon" not in again.wait_for(r"icanon\s*$")
        assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", name) == "3\n"
    finally:
        again.close()
        vm_kd("rm", "-f", name)


def test_sigterm_to_run_it_with_init_ends_the_container(vm_kd: Katadocker, busybox_image: str) -> None:
    """docker's TestSigProxyWithTTY: SIGTERM to `run -i -t --init … sleep` reaches the init, which
    passes it on to sleep (as PID 1 itself, sleep would ignore it and the CLI would wait on)."""
    name = "tty-init"
    term = Tmux(vm_kd, f"{KD} run -it --init --network none --name {name} {busybox_image} sleep 600")
    try:
        deadline = time.monotonic() + 240
        while vm_kd("exec", name, "cat", "/proc/1/comm").out != "init\n":  # sleep runs, under the init
            assert time.monotonic() < deadline
            time.sleep(0.3)
        pattern = f"^{sys.executable} -m katadocker run -it --init --network none --name {name} "
        cli = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        assert len(cli) == 1, [Path(f"/proc/{p}/cmdline").read_bytes() for p in cli]
        subprocess.run(["kill", "-TERM", cli[0]], check=True)
        term.wait_for(r"rc=143$", timeout=60)
        assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", name) == "143\n"
    finally:
        term.close()
        vm_kd("rm", "-f", name)


def test_exec_it_in_a_terminal_and_custom_detach_keys(vm_kd: Katadocker, busybox_image: str) -> None:
    name = "tty-exec"
    vm_kd.ok("run", "-d", "--network", "none", "--name", name, busybox_image, "sleep", "100000")
    term = Tmux(vm_kd, f"{KD} exec -it {name} sh", cols=90, rows=25)
    try:
        term.wait_for(r"^/ #")
        term.type("stty size; tty")
        term.wait_for(r"^25 90")
        term.type("exit 5")
        term.wait_for(r"rc=5$")
    finally:
        term.close()
    term = Tmux(vm_kd, f"{KD} exec -it --detach-keys ctrl-a,x {name} sh")
    try:
        term.wait_for(r"^/ #")
        term.keys("C-a", "x")
        term.wait_for(r"rc=0$")
        assert vm_kd.ok("exec", name, "echo", "still-fine") == "still-fine\n"
    finally:
        term.close()
        vm_kd("rm", "-f", name)
