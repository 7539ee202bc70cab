"""The real guest agent, compiled from agent.c and run in test mode (no VM), driven by AgentClient.

Test mode (`agent --test-fd N`) skips the VM-only work (mounts, modules, network, power-off) and
runs processes in this machine's root; everything else — frames, spawning, PATH lookup, exec
errors, streams, pty, signals, reaping, flow control — is the code the VM runs.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from katadocker.agent import protocol
from katadocker.agent.build import compile_agent
from katadocker.agent.client import AgentClient, Output
from katadocker.agent.protocol import ExitStatus, ProcessSpec, Stream
from katadocker.errors import CommandNotExecutable, CommandNotFound

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module", params=["musl-gcc", "cc"])
def agent_binary(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent linked against musl (what the guest assets use where musl-tools is installed, as
    scripts/setup does) and against glibc (the fallback): every test here runs with both."""
    return compile_agent(tmp_path_factory.mktemp("agent") / "agent", request.param)


@pytest.fixture
def client(agent_binary: Path) -> Iterator[AgentClient]:
    """An AgentClient connected (through a unix socket, as with QEMU) to a fresh agent."""
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = os.path.join(tmp, "agent.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        listener.listen(1)
        client = AgentClient.connect(sock_path, timeout=5)
        conn, _ = listener.accept()
        listener.close()
        agent = subprocess.Popen(
            [str(agent_binary), "--test-fd", str(conn.fileno())], pass_fds=[conn.fileno()]
        )
        conn.close()
        try:
            client.wait_hello(timeout=5)
            yield client
            client.shutdown()
            assert agent.wait(timeout=5) == 0
        finally:
            client.close()
            if agent.poll() is None:
                agent.kill()
                agent.wait()


def spec(*args: str, **kw: object) -> ProcessSpec:
    return ProcessSpec(args=list(args), env=[PATH_ENV], **kw)  # type: ignore[arg-type]


def test_hello_and_ping(client: AgentClient) -> None:
    assert client.wait_hello(timeout=1).version == protocol.PROTO_VERSION
    assert client.ping(timeout=2) < 2


def test_stdout_and_stderr_apart_and_exit_code(client: AgentClient) -> None:
    proc = client.start(spec("sh", "-c", "echo out; echo err >&2; echo out2; exit 3"), timeout=5)
    done = proc.collect(timeout=10)
    assert (done.stdout, done.stderr) == (b"out\nout2\n", b"err\n")
    assert done.exit == ExitStatus(3, 0)


def test_env_cwd_created_and_path_from_the_spec(client: AgentClient, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "hello").write_text("#!/bin/sh\necho hello from $FOO in $(pwd)\n")
    (bindir / "hello").chmod(0o755)
    cwd = tmp_path / "a" / "b"
    proc = client.start(
        ProcessSpec(args=["hello"], env=[f"PATH=/bin:{bindir}", "FOO=bar"], cwd=str(cwd)), timeout=5
    )
    assert proc.collect(timeout=10).stdout == f"hello from bar in {cwd}\n".encode()


def test_not_found_is_127_with_dockers_message(client: AgentClient) -> None:
    with pytest.raises(CommandNotFound) as e:
        client.start(spec("no-such-command"), timeout=5)
    assert e.value.message == 'exec: "no-such-command": executable file not found in $PATH'
    with pytest.raises(CommandNotFound) as e:
        client.start(spec("/no/such/file"), timeout=5)
    assert "stat /no/such/file: no such file or directory" in e.value.message


def test_errors_are_spelled_as_go_spells_them(client: AgentClient, tmp_path: Path) -> None:
    # musl's strerror says "Symbolic link loop"; docker's messages come from Go
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises(CommandNotFound) as e:
        client.start(spec(str(loop)), timeout=5)
    assert e.value.message == f'exec: "{loop}": stat {loop}: too many levels of symbolic links'


def test_not_executable_is_126(client: AgentClient, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("data")
    with pytest.raises(CommandNotExecutable, match="permission denied"):
        client.start(spec(str(tmp_path / "plain")), timeout=5)
    with pytest.raises(CommandNotExecutable, match="is a directory"):
        client.start(spec(str(tmp_path)), timeout=5)


def test_signal_is_forwarded_and_reported_as_128_plus_n(client: AgentClient) -> None:
    proc = client.start(spec("sleep", "30"), timeout=5)
    proc.signal(signal.SIGTERM)
    assert proc.collect(timeout=10).exit == ExitStatus(143, signal.SIGTERM)


def test_stdin_reaches_the_process_and_close_ends_it(client: AgentClient) -> None:
    data = os.urandom(3 * protocol.WINDOW + 123)  # more than a window: needs the agent's credit
    proc = client.start(spec("sha256sum", stdin=True), timeout=5)
    proc.write_stdin(data, timeout=10)
    proc.close_stdin()
    done = proc.collect(timeout=10)
    assert done.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert done.exit.code == 0


def test_without_stdin_the_process_reads_dev_null(client: AgentClient) -> None:
    assert client.start(spec("cat"), timeout=5).collect(timeout=10).exit.code == 0


def test_exec_runs_beside_the_main_process(client: AgentClient) -> None:
    main = client.start(spec("sleep", "30"), timeout=5)
    execs = [client.exec(spec("sh", "-c", f"echo exec {i}; exit {i}"), timeout=5) for i in range(3)]
    for i, proc in enumerate(execs):
        done = proc.collect(timeout=10)
        assert (done.stdout, done.exit.code) == (f"exec {i}\n".encode(), i)
    with pytest.raises(CommandNotFound):
        client.exec(spec("nope"), timeout=5)
    main.signal(signal.SIGKILL)
    assert main.collect(timeout=10).exit == ExitStatus(137, signal.SIGKILL)


def test_tty_size_and_resize(client: AgentClient) -> None:
    proc = client.start(
        spec("sh", "-c", "stty size; read x; stty size", tty=True, rows=24, cols=80, stdin=True), timeout=5
    )
    first = b""
    while b"24 80" not in first:
        event = proc.next_event(timeout=10)
        assert isinstance(event, Output) and event.stream == Stream.STDOUT
        first += event.data
    proc.resize(30, 100)
    proc.write_stdin(b"x\n", timeout=5)
    done = proc.collect(timeout=10)
    assert b"30 100" in done.stdout and done.stderr == b""
    assert done.exit.code == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")
def test_user_and_groups(client: AgentClient) -> None:
    proc = client.start(spec("id", uid=65534, gid=65534, groups=[65534, 100]), timeout=5)
    out = proc.collect(timeout=10).stdout.decode()
    assert out.startswith("uid=65534") and "gid=65534" in out and "100" in out


def test_20mb_to_a_slow_reader_arrives_complete(client: AgentClient) -> None:
    size = 20 * 1024 * 1024
    proc = client.start(
        spec("sh", "-c", f"exec 3>&1; head -c {size} /dev/urandom | tee /dev/fd/3 | sha256sum >&2"),
        timeout=5,
    )
    time.sleep(1)  # do not read: the agent must stop at the window and stay responsive
    queued = sum(len(e.data) for e in list(proc._events) if isinstance(e, Output))
    assert queued <= protocol.WINDOW
    assert client.ping(timeout=2) < 1
    assert client.exec(spec("echo", "still here"), timeout=5).collect(timeout=10).stdout == b"still here\n"
    digest = hashlib.sha256()
    stderr = b""
    received = 0
    while True:
        event = proc.next_event(timeout=30)
        assert event is not None
        if isinstance(event, ExitStatus):
            break
        if event.stream == Stream.STDOUT:
            digest.update(event.data)
            received += len(event.data)
            if received % (1 << 20) < protocol.DATA_CHUNK:
                time.sleep(0.01)  # a slow reader
        else:
            stderr += event.data
    assert received == size
    assert stderr.split()[0].decode() == digest.hexdigest()
    assert event.code == 0
