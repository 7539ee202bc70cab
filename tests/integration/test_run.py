"""`katadocker run` against real VMs (TCG here): the image's process settings and their overrides,
stdout vs stderr, exit codes, piped stdin, and docker's error texts.

Every container is a real QEMU VM booted from the guest assets with the image's overlayfs root over
virtio-fs; images come from a real registry on loopback.
"""

from __future__ import annotations

import hashlib
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import images
from tests.support.cli import Katadocker
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.vm


@pytest.fixture(scope="session")
def app_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox with USER, WORKDIR, ENV, ENTRYPOINT and CMD set (WORKDIR absent from the layers)."""
    layout = tmp_path_factory.mktemp("app") / "layout"
    spec = images.ImageSpec(entrypoint=["sh", "-c"], cmd=['echo "$(id -u):$(id -g) $(pwd) $GREETING $0"'],
                            env=[images.PATH_ENV, "GREETING=hello"], workdir="/srv/app", user="app",
                            labels={"org.example": "yes"})
    images.busybox_layout(layout, spec)
    ref = f"{registry.host}/library/app:1"
    images.push(layout, ref)
    return ref


@pytest.fixture(scope="session")
def pulled(vm_kd: Katadocker, busybox_image: str, app_image: str) -> str:
    """busybox_image present in the shared state root (pulled implicitly by a first run)."""
    r = vm_kd("run", "--rm", busybox_image, "true")
    assert r.rc == 0, r
    assert vm_kd("run", "--rm", app_image).rc == 0
    return busybox_image


def test_first_run_pulls_and_runs(kd: Katadocker, busybox_image: str) -> None:
    r = kd("run", "--rm", busybox_image, "echo", "hi")
    assert r.rc == 0, r
    assert r.out == "hi\n"
    assert f"Unable to find image '{busybox_image}' locally" in r.err
    assert kd("ps", "-aq").out == ""  # --rm removed it


def test_image_process_settings_are_honoured(vm_kd: Katadocker, pulled: str, app_image: str) -> None:
    r = vm_kd("run", "--rm", app_image)
    assert r.rc == 0, r
    assert r.out == "1000:1000 /srv/app hello sh\n"


def test_overrides(vm_kd: Katadocker, pulled: str, app_image: str, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROMFILE=file\n")
    r = vm_kd("run", "--rm", "-u", "0:10", "-w", "/tmp", "-e", "GREETING=bye",
              "--env-file", str(env_file), "--hostname", "box", app_image,
              'echo "$(id -u):$(id -g) $(pwd) $GREETING $FROMFILE $(hostname)"')
    assert r.rc == 0, r
    assert r.out == "0:10 /tmp bye file box\n"
    r = vm_kd("run", "--rm", "--entrypoint", "id", app_image, "-un")
    assert (r.rc, r.out) == (0, "app\n")


def test_stdout_and_stderr_stay_apart(vm_kd: Katadocker, pulled: str) -> None:
    r = vm_kd("run", "--rm", pulled, "sh", "-c", "echo to-out; echo to-err >&2; printf partial")
    assert r.rc == 0, r
    assert r.out == "to-out\npartial"
    assert r.err == "to-err\n"


def test_default_environment(vm_kd: Katadocker, pulled: str) -> None:
    r = vm_kd("run", "--rm", pulled, "sh", "-c", "echo $PATH; echo $HOSTNAME; echo $HOME; hostname")
    path, hostname, home, uname = r.out.splitlines()
    assert path == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert len(hostname) == 12 and hostname == uname
    assert home == "/root"


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["sh", "-c", "exit 3"], 3, None),
    (["nosuchcommand"], 127, "executable file not found"),
    (["/etc"], 126, None),
])
def test_exit_codes(vm_kd: Katadocker, pulled: str, argv: list[str], code: int, message: str | None) -> None:
    r = vm_kd("run", "--rm", pulled, *argv)
    assert r.rc == code, r
    if message:
        assert message in r.err
        assert r.err.startswith("katadocker: Error response from daemon: ")
        assert r.err.endswith("\n\nRun 'katadocker run --help' for more information\n")


def test_errors_before_the_container_ran_exit_125(vm_kd: Katadocker, pulled: str) -> None:
    r = vm_kd("run", "--foo", pulled)
    assert r.rc == 125 and "unknown flag: --foo" in r.err
    r = vm_kd("run", "--pull=never", "127.0.0.1:1/nothere")
    assert r.rc == 125, r
    assert "No such image: 127.0.0.1:1/nothere:latest" in r.err
    r = vm_kd("run", "--pull=bogus", pulled)
    assert r.rc == 125 and "invalid pull option: 'bogus'" in r.err
    r = vm_kd("run", "--rm", "-w", "/bin/cat", pulled, "true")
    assert r.rc == 125 and "not a directory" in r.err, r


def test_name_conflict(vm_kd: Katadocker, pulled: str) -> None:
    cid = vm_kd.ok("create", "--name", "conflicted", pulled, "true").strip()
    try:
        r = vm_kd("run", "--name", "conflicted", pulled, "true")
        assert r.rc == 125
        assert (f'Conflict. The container name "/conflicted" is already in use by container "{cid}". '
                "You have to remove (or rename) that container to be able to reuse that name.") in r.err
    finally:
        vm_kd.ok("rm", "conflicted")


def test_piped_stdin(vm_kd: Katadocker, pulled: str) -> None:
    r = vm_kd("run", "--rm", "-i", pulled, "sh", "-c", "cat; echo done", input="hello\nworld\n")
    assert r.rc == 0, r
    assert r.out == "hello\nworld\ndone\n"


def test_large_piped_stdin_arrives_whole(vm_kd: Katadocker, pulled: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    r = vm_kd("run", "--rm", "-i", pulled, "md5sum", input=data)
    assert r.rc == 0, r
    assert r.out.split()[0] == hashlib.md5(data).hexdigest()


def test_detached_run_prints_the_id_and_labels_show(vm_kd: Katadocker, pulled: str) -> None:
    out = vm_kd.ok("run", "-d", "--name", "labelled", "-l", "team=blue", pulled, "sleep", "30")
    try:
        assert len(out.strip()) == 64
        assert vm_kd.ok("ps", "--filter", "label=team=blue", "--format", "{{.Names}}") == "labelled\n"
        assert vm_kd.ok("inspect", "-f", "{{.State.Running}} {{index .Config.Labels \"team\"}}",
                        "labelled") == "true blue\n"
    finally:
        vm_kd.ok("rm", "-f", "labelled")


def test_published_port_reaches_the_guest(vm_kd: Katadocker, pulled: str) -> None:
    vm_kd.ok("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", pulled, "sh", "-c",
             "echo hello-http > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    try:
        port = vm_kd.ok("inspect", "-f", '{{(index (index .NetworkSettings.Ports "8080/tcp") 0).HostPort}}',
                        "web").strip()
        assert vm_kd.ok("ps", "--filter", "name=web", "--format", "{{.Ports}}") == \
            f"127.0.0.1:{port}->8080/tcp\n"
        deadline = time.monotonic() + 60
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the published port never answered"
                time.sleep(0.5)
        assert body == b"hello-http\n"
    finally:
        vm_kd.ok("rm", "-f", "web")


def test_guest_set_up_root_read_ahead_loopback_and_ipv4_only_eth0(vm_kd: Katadocker, pulled: str) -> None:
    """What the agent sets up before the process starts: the root share's 4 MiB read-ahead (set on
    its backing device), lo up with 127.0.0.1 and ::1 (brought up by a thread, joined before the
    fork), and eth0 without IPv6 (the kernel command line's default, as docker without --ipv6)."""
    script = ("cat /sys/class/bdi/$(awk '$5 == \"/\" {print $3; exit}' /proc/self/mountinfo)/read_ahead_kb; "
              "ip -o addr show lo; "
              "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -o addr show eth0")
    out = vm_kd.ok("run", "--rm", pulled, "sh", "-c", script).splitlines()
    assert out[0] == "4096"
    lo = [line for line in out if " lo " in line]
    assert any("inet 127.0.0.1/8" in line for line in lo) and any("inet6 ::1/128" in line for line in lo)
    assert "1" in out
    eth0 = [line for line in out if " eth0 " in line]
    assert any("inet 172." in line for line in eth0) and not any("inet6" in line for line in eth0)
