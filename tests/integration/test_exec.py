"""exec, pause/unpause against real VMs: the container's env/user/workdir, exit codes and docker's
messages, stdin, several execs at once, detached execs, 100 MB to a slow reader, and clients that
go away mid-exec."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cli import Katadocker

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def box(vm_kd: Katadocker, busybox_image: str):
    """A running busybox container shared by the module's tests."""
    name = "exec-box"
    vm_kd.ok("run", "-d", "--name", name, "-e", "FROM_RUN=1", busybox_image, "sleep", "100000")
    yield name
    vm_kd("rm", "-f", name)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_exec_runs_in_the_container_environment(vm_kd: Katadocker, box: str) -> None:
    assert vm_kd.ok("exec", box, "echo", "hello") == "hello\n"
    assert vm_kd.ok("exec", "-e", "A=b", box, "sh", "-c", "echo $A $FROM_RUN $HOSTNAME") == \
        f"b 1 {vm_kd.ok('inspect', '-f', '{{.Config.Hostname}}', box).strip()}\n"
    assert vm_kd.ok("exec", "-w", "/etc", box, "pwd") == "/etc\n"
    assert vm_kd.ok("exec", "-u", "app", box, "id", "-u") == "1000\n"
    assert vm_kd.ok("exec", "-u", "0:1000", box, "id", "-g") == "1000\n"


def test_exec_env_file(vm_kd: Katadocker, box: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=yes\n")
    assert vm_kd.ok("exec", "--env-file", str(env_file), box, "sh", "-c", "echo $FROM_FILE") == "yes\n"


def test_exec_exit_codes_and_messages(vm_kd: Katadocker, box: str) -> None:
    r = vm_kd("exec", box, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.rc, r.out, r.err) == (3, "out\n", "err\n")
    r = vm_kd("exec", box, "no-such-command")
    assert r.rc == 127 and 'exec: "no-such-command": executable file not found in $PATH' in r.err, r
    assert r.err.startswith("OCI runtime exec failed: exec failed: unable to start container process:")
    r = vm_kd("exec", box, "/etc")
    assert r.rc == 126, r


def test_exec_stdin(vm_kd: Katadocker, box: str) -> None:
    assert vm_kd.ok("exec", "-i", box, "cat", input="piped\n") == "piped\n"
    assert vm_kd.ok("exec", "-i", box, "wc", "-c", input="x" * 300000).strip() == "300000"
    # without -i the process's stdin is empty
    assert vm_kd.ok("exec", box, "cat", input="ignored") == ""


def test_exec_it_without_a_terminal_is_docker_error(vm_kd: Katadocker, box: str) -> None:
    r = vm_kd("exec", "-it", box, "sh")
    assert (r.rc, r.err) == (1, "the input device is not a TTY\n")
    assert vm_kd.ok("exec", "-t", box, "echo", "tty", input=b"") == "tty\r\n"  # bytes: no newline translation


def test_several_execs_at_once_and_detached(vm_kd: Katadocker, box: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: vm_kd("exec", box, "sh", "-c", f"sleep 1; echo {i}"), range(4)))
    assert [o.out for o in outs] == [f"{i}\n" for i in range(4)]
    assert vm_kd.ok("exec", "-d", box, "sh", "-c", "sleep 1; touch /tmp/detached") == ""
    deadline = time.monotonic() + 60
    while vm_kd("exec", box, "test", "-e", "/tmp/detached").rc != 0:
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_exec_into_stopped_and_paused_containers(vm_kd: Katadocker, busybox_image: str) -> None:
    name = "exec-pause"
    cid = vm_kd.ok("run", "-d", "--name", name, busybox_image, "sleep", "100000").strip()
    try:
        assert vm_kd.ok("pause", name) == f"{name}\n"
        status = vm_kd.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip()
        assert status.endswith("(Paused)"), status
        assert vm_kd.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", name) == "paused true\n"
        r = vm_kd("exec", name, "true")
        assert (r.rc, r.err) == (1, f"Error response from daemon: container {cid} is paused, "
                                    "unpause the container before exec\n")
        assert vm_kd("pause", name).rc == 1
        assert vm_kd.ok("unpause", name) == f"{name}\n"
        assert vm_kd.ok("exec", name, "echo", "back") == "back\n"
        vm_kd.ok("stop", "-t", "0", name)
        r = vm_kd("exec", name, "true")
        assert (r.rc, r.err) == (1, f"Error response from daemon: container {cid} is not running\n")
        assert vm_kd("unpause", name).rc == 1
    finally:
        vm_kd("rm", "-f", name)


def test_100mb_to_a_slow_reader_arrives_complete(vm_kd: Katadocker, box: str) -> None:
    size = 100 * 1000 * 1000
    vm_kd.ok("exec", box, "sh", "-c", f"head -c {size} /dev/urandom > /tmp/big", timeout=600)
    expected = vm_kd.ok("exec", box, "md5sum", "/tmp/big").split()[0]
    proc = subprocess.Popen([sys.executable, "-m", "katadocker", "exec", box, "cat", "/tmp/big"],
                            stdout=subprocess.PIPE, env=vm_kd.env())
    monitor_pid = int((vm_kd.root / "containers" / vm_kd.ok("inspect", "-f", "{{.Id}}", box).strip()
                       / "monitor.pid").read_text().split()[0])
    digest, got, peak = hashlib.md5(), 0, {"monitor": 0, "client": 0}
    started = time.monotonic()
    while chunk := proc.stdout.read(65536):
        digest.update(chunk)
        got += len(chunk)
        if got % (4 << 20) < 65536:  # slow reader: a pause every 4 MiB, and sample memory
            time.sleep(0.2)
            peak["monitor"] = max(peak["monitor"], _rss_kib(monitor_pid))
            peak["client"] = max(peak["client"], _rss_kib(proc.pid))
        assert time.monotonic() - started < 900
    assert proc.wait(60) == 0
    assert (got, digest.hexdigest()) == (size, expected)
    assert peak["monitor"] < 200 * 1024 and peak["client"] < 200 * 1024, peak
    vm_kd.ok("exec", box, "rm", "/tmp/big")


def test_client_gone_mid_exec_leaves_container_and_agent_healthy(vm_kd: Katadocker, box: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "katadocker", "exec", "-i", box, "sh", "-c",
                             "yes spam | head -n 3000000"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=vm_kd.env())
    assert proc.stdout.readline() == b"spam\n"
    proc.kill()
    proc.wait()
    for _ in range(3):
        assert vm_kd.ok("exec", box, "echo", "alive") == "alive\n"
    assert vm_kd.ok("inspect", "-f", "{{.State.Status}}", box) == "running\n"
