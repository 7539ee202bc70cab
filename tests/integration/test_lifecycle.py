"""Container lifecycle against real VMs: detached runs, logs, wait, stop/kill timing and codes,
crashes of each helper (monitor, QEMU, virtiofsd), concurrency, and what is left after `rm`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cli import Katadocker

pytestmark = pytest.mark.vm

IGNORE_TERM = "trap '' TERM; echo ready; while :; do sleep 0.2; done"


@pytest.fixture(scope="session")
def image(vm_kd: Katadocker, busybox_image: str) -> str:
    assert vm_kd("pull", busybox_image).rc == 0
    return busybox_image


def _cid(kd: Katadocker, name: str) -> str:
    return kd.ok("inspect", "-f", "{{.Id}}", name).strip()


def _status(kd: Katadocker, name: str) -> str:
    return kd.ok("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").strip()


def _wait_for_log(kd: Katadocker, name: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in kd("logs", name).out:
        assert time.monotonic() < deadline, f"{text!r} never appeared in the logs of {name}"
        time.sleep(0.3)


def _leftovers(kd: Katadocker, cid: str) -> list[str]:
    """Mounts, processes and directories of container `cid` still on the host."""
    found = []
    mounts = Path("/proc/self/mountinfo").read_text()
    if cid in mounts:
        found.append("mount")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    if cid in ps or f"katadocker-{cid[:12]}" in ps:
        found.append("process")
    if (kd.root / "containers" / cid).exists():
        found.append("state dir")
    if Path("/run/katadocker", cid[:24]).exists():
        found.append("run dir")
    return found


def test_detached_logs_follow_and_wait(vm_kd: Katadocker, image: str) -> None:
    out = vm_kd.ok("run", "-d", "--name", "ticker", image, "sh", "-c",
                   "for i in 1 2 3; do echo tick $i; echo tock $i >&2; sleep 1; done; exit 5")
    cid = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    assert _status(vm_kd, "ticker").startswith("Up ")
    follow = vm_kd("logs", "-f", "ticker")
    assert follow.rc == 0
    assert follow.out == "tick 1\ntick 2\ntick 3\n"
    assert follow.err == "tock 1\ntock 2\ntock 3\n"
    assert vm_kd.ok("wait", "ticker") == "5\n"
    assert re.fullmatch(r"Exited \(5\) .* ago", _status(vm_kd, "ticker"))
    tail = vm_kd("logs", "--tail", "2", "ticker")  # the last two lines: one per stream
    assert (tail.out, tail.err) == ("tick 3\n", "tock 3\n")
    stamped = vm_kd("logs", "-t", "ticker").out.splitlines()
    assert all(line[29] == "Z" and line.endswith(f"tick {i}") for i, line in enumerate(stamped, 1))
    assert vm_kd.ok("logs", "--since", "0", "--until", "1s", "ticker").count("tick") == 3
    state = vm_kd.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}} {{.Name}}",
                     "ticker")
    assert state == "exited 5 false /ticker\n"
    assert vm_kd.ok("rm", "ticker") == "ticker\n"
    assert _leftovers(vm_kd, cid) == []


def test_stop_kills_after_the_timeout_with_137(vm_kd: Katadocker, image: str) -> None:
    cid = vm_kd.ok("run", "-d", "--name", "stubborn", image, "sh", "-c", IGNORE_TERM).strip()
    _wait_for_log(vm_kd, "stubborn", "ready")
    began = time.monotonic()
    assert vm_kd.ok("stop", "-t", "2", "stubborn") == "stubborn\n"
    took = time.monotonic() - began
    assert 2 <= took < 30, took
    assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", "stubborn") == "137\n"
    assert _status(vm_kd, "stubborn").startswith("Exited (137)")
    vm_kd.ok("rm", "stubborn")
    assert _leftovers(vm_kd, cid) == []


def test_stop_honours_a_term_handler_and_the_stop_signal(vm_kd: Katadocker, image: str) -> None:
    vm_kd.ok("run", "-d", "--name", "polite", image, "sh", "-c",
             "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.2; done")
    _wait_for_log(vm_kd, "polite", "ready")
    began = time.monotonic()
    vm_kd.ok("stop", "polite")
    assert time.monotonic() - began < 9
    assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", "polite") == "0\n"
    assert "bye" in vm_kd.ok("logs", "polite")
    vm_kd.ok("rm", "polite")
    vm_kd.ok("run", "-d", "--name", "usr1", "--stop-signal", "USR1", image, "sh", "-c",
             "trap 'exit 7' USR1; trap '' TERM; echo ready; while :; do sleep 0.2; done")
    _wait_for_log(vm_kd, "usr1", "ready")
    vm_kd.ok("stop", "-t", "20", "usr1")
    assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", "usr1") == "7\n"
    vm_kd.ok("rm", "usr1")


#: A child that outlives its parent (an orphan), then the command sleeps as it is (PID 1 without --init).
ORPHAN_THEN_SLEEP = "(sleep 1 &); echo ready; exec sleep 600"


def _guest_processes(kd: Katadocker, name: str) -> list[tuple[str, str]]:
    """(state letter, comm) of every process of the container (from its /proc)."""
    out = kd.ok("exec", name, "sh", "-c", "for s in /proc/[0-9]*/stat; do cat $s; echo; done 2>/dev/null")
    return [(m.group(2), m.group(1)) for m in re.finditer(r"^\d+ \((.*)\) (\S) ", out, re.M)]


def test_init_forwards_signals_and_reaps_orphans(vm_kd: Katadocker, image: str) -> None:
    """--init (docker-init): PID 1 is an init that reaps the container's orphans and passes `stop`'s
    SIGTERM on to a command without a handler for it (143, not 137 after the timeout); the command
    as PID 1 itself leaves the orphan a zombie."""
    vm_kd.ok("run", "-d", "--init", "--name", "inited", image, "sh", "-c", ORPHAN_THEN_SLEEP)
    vm_kd.ok("run", "-d", "--name", "bare-pid1", image, "sh", "-c", ORPHAN_THEN_SLEEP)
    try:
        for name in ("inited", "bare-pid1"):
            _wait_for_log(vm_kd, name, "ready")
        assert vm_kd.ok("exec", "inited", "cat", "/proc/1/comm") == "init\n"
        assert vm_kd.ok("exec", "bare-pid1", "cat", "/proc/1/comm") == "sleep\n"
        deadline = time.monotonic() + 60
        while ("Z", "sleep") not in _guest_processes(vm_kd, "bare-pid1"):  # the orphan has exited
            assert time.monotonic() < deadline, _guest_processes(vm_kd, "bare-pid1")
            time.sleep(0.5)
        assert [state for state, _ in _guest_processes(vm_kd, "inited") if state == "Z"] == []
        vm_kd.ok("stop", "-t", "120", "inited")
        assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}} {{.HostConfig.Init}}", "inited") == "143 true\n"
    finally:
        vm_kd.ok("rm", "-f", "inited", "bare-pid1")


def test_init_keeps_the_exit_code_output_and_errors(vm_kd: Katadocker, image: str) -> None:
    r = vm_kd("run", "--rm", "--init", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.rc, r.out, r.err) == (3, "out\n", "err\n")
    r = vm_kd("run", "--rm", "--init", image, "no-such-command")
    assert r.rc == 127 and 'exec: "no-such-command": executable file not found in $PATH' in r.err


def test_kill_rm_and_their_errors(vm_kd: Katadocker, image: str) -> None:
    vm_kd.ok("run", "-d", "--name", "victim", image, "sh", "-c", IGNORE_TERM)
    _wait_for_log(vm_kd, "victim", "ready")
    r = vm_kd("rm", "victim")
    assert r.rc == 1
    assert ('Error response from daemon: cannot remove container "/victim": container is running: '
            "stop the container before removing or force remove") in r.err
    vm_kd.ok("kill", "-s", "TERM", "victim")  # ignored by the process
    assert _status(vm_kd, "victim").startswith("Up ")
    assert vm_kd.ok("kill", "victim") == "victim\n"
    assert vm_kd.ok("inspect", "-f", "{{.State.ExitCode}}", "victim") == "137\n"
    r = vm_kd("kill", "victim")
    assert r.rc == 1 and "is not running" in r.err
    assert vm_kd("rm", "nosuch").err == "Error response from daemon: No such container: nosuch\n"
    assert vm_kd("rm", "-f", "nosuch").rc == 0
    vm_kd.ok("rm", "victim")


def test_rm_force_of_a_running_container_leaves_nothing(vm_kd: Katadocker, image: str) -> None:
    cid = vm_kd.ok("run", "-d", image, "sleep", "300").strip()
    assert vm_kd.ok("rm", "-f", cid[:12]) == f"{cid[:12]}\n"
    assert _leftovers(vm_kd, cid) == []


def test_restart_rename_and_start_attach(vm_kd: Katadocker, image: str) -> None:
    vm_kd.ok("create", "--name", "again", image, "sh", "-c", "echo run")
    assert _status(vm_kd, "again") == "Created"
    r = vm_kd("start", "-a", "again")
    assert (r.rc, r.out) == (0, "run\n")
    vm_kd.ok("rename", "again", "renamed")
    assert vm_kd.ok("inspect", "-f", "{{.Name}}", "renamed") == "/renamed\n"
    assert vm_kd.ok("restart", "renamed") == "renamed\n"
    assert vm_kd.ok("wait", "renamed") == "0\n"
    assert vm_kd.ok("logs", "renamed") == "run\nrun\n"
    vm_kd.ok("rm", "renamed")


def _pid(kd: Katadocker, cid: str, name: str) -> int:
    path = kd.root / "containers" / cid / ("monitor.pid" if name == "monitor" else f"pids/{name}")
    return int(path.read_text().split()[0])


@pytest.mark.parametrize("victim", ["monitor", "qemu", "virtiofsd"])
def test_kill_9_of_a_helper(vm_kd: Katadocker, image: str, victim: str) -> None:
    name = f"crash-{victim}"
    cid = vm_kd.ok("run", "-d", "--name", name, image, "sleep", "300").strip()
    os.kill(_pid(vm_kd, cid, victim), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not _status(vm_kd, name).startswith("Exited"):
        assert time.monotonic() < deadline, _status(vm_kd, name)
        time.sleep(0.5)
    assert _status(vm_kd, name).startswith("Exited (137)")
    assert vm_kd.ok("inspect", "-f", "{{.State.Error}}", name).strip() != ""
    assert vm_kd.ok("rm", name) == f"{name}\n"
    deadline = time.monotonic() + 15
    while _leftovers(vm_kd, cid):
        assert time.monotonic() < deadline, _leftovers(vm_kd, cid)
        time.sleep(0.5)


def _run_many(kd: Katadocker, image: str, count: int) -> None:
    def one(i: int) -> tuple[int, str]:
        r = kd("run", "--rm", "--name", f"many-{i}", image, "sh", "-c", f"echo container {i}", timeout=900)
        return r.rc, r.out

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    assert results == [(0, f"container {i}\n") for i in range(count)]
    assert kd.ok("ps", "-aq", "--filter", "name=many-") == ""


def test_four_containers_at_once(vm_kd: Katadocker, image: str) -> None:
    _run_many(vm_kd, image, 4)


@pytest.mark.slow
def test_eight_containers_at_once(vm_kd: Katadocker, image: str) -> None:
    _run_many(vm_kd, image, 8)


def test_ps_listing(vm_kd: Katadocker, image: str) -> None:
    cid = vm_kd.ok("run", "-d", "--name", "listed", image, "sleep", "300").strip()
    try:
        table = vm_kd.ok("ps").splitlines()
        header = r"CONTAINER ID {3}IMAGE {2,}COMMAND {2,}CREATED {2,}STATUS {2,}PORTS {2,}NAMES"
        assert re.match(header, table[0])
        row = next(line for line in table if line.startswith(cid[:12]))
        assert '"sleep 300"' in row and row.endswith("listed") and " Up " in row
        assert cid[:12] in vm_kd.ok("ps", "-q").split()
        assert vm_kd.ok("ps", "-l", "--no-trunc", "-q") == f"{cid}\n"
        assert vm_kd.ok("ps", "--filter", "status=running", "--filter", "name=listed", "--format",
                        "{{.ID}} {{.State}}") == f"{cid[:12]} running\n"
        assert vm_kd.ok("ps", "-a", "--filter", f"ancestor={image}", "-q").count(cid[:12]) == 1
        assert vm_kd("ps", "--filter", "bogus=1").rc == 1
        sized = vm_kd.ok("ps", "-s", "--filter", "name=listed").splitlines()
        assert sized[0].endswith("SIZE") and re.search(r"\d+(\.\d+)?[kMG]?B", sized[1])
    finally:
        vm_kd.ok("rm", "-f", "listed")


def test_inspect_unknown_and_prune(vm_kd: Katadocker, image: str) -> None:
    r = vm_kd("inspect", "nothing-here")
    assert (r.rc, r.out, r.err) == (1, "[]\n", "Error: No such object: nothing-here\n")
    vm_kd.ok("create", "--name", "prunable", image, "true")
    out = vm_kd.ok("container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert vm_kd("inspect", "prunable").rc == 1


def test_attached_run_forwards_sigterm(vm_kd: Katadocker, image: str) -> None:
    """sig-proxy: SIGTERM to the CLI reaches the container, whose trap decides the exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "katadocker", "run", "--rm", "--name", "proxied", image, "sh", "-c",
         "trap 'echo got TERM; exit 33' TERM; echo ready; while :; do sleep 0.2; done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=vm_kd.env())
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 33, err
    assert out == "got TERM\n"
    assert vm_kd.ok("ps", "-aq", "--filter", "name=proxied") == ""


def test_detached_rm_removes_itself(vm_kd: Katadocker, image: str) -> None:
    cid = vm_kd.ok("run", "-d", "--rm", image, "true").strip()
    deadline = time.monotonic() + 60
    while vm_kd("inspect", cid).rc == 0:
        assert time.monotonic() < deadline, "the --rm container was not removed"
        time.sleep(0.3)
    assert _leftovers(vm_kd, cid) == []
