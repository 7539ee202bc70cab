"""QEMU's priority while its guest boots (vm/boot_priority.py), on a real process standing in for
QEMU: a Python child in its own session that starts a thread when told to, as QEMU starts its vCPU
threads after its spawn."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from katadocker.vm import boot_priority
from tests.support.sched import session_nice, thread_nices

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raising a priority needs root")

CHILD = """
import sys, threading, time
sys.stdin.readline()
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("thread", flush=True)
time.sleep(60)
"""


@pytest.fixture
def child() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def start_thread(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin and proc.stdout
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == "thread\n"


def test_boost_raises_the_session_and_the_threads_it_starts_later(child: subprocess.Popen[str]) -> None:
    boot_priority.boost(child.pid)
    start_thread(child)
    assert thread_nices(child.pid) == [boot_priority.BOOT_NICE] * 2
    assert session_nice(child.pid) in (boot_priority.BOOT_NICE, None)
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == 0  # nobody else's
    assert session_nice(os.getpid()) in (0, None)


def test_settle_puts_the_session_and_every_thread_back(child: subprocess.Popen[str]) -> None:
    boot_priority.boost(child.pid)
    start_thread(child)
    boot_priority.settle(child.pid)
    assert thread_nices(child.pid) == [0, 0]
    assert session_nice(child.pid) in (0, None)


def test_a_process_that_has_ended_is_left_alone(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.wait()
    boot_priority.boost(child.pid)  # neither raises
    boot_priority.settle(child.pid)
