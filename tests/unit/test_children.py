"""Waiting for helper processes (vm/children.py) with real child processes."""

from __future__ import annotations

import subprocess
import time

import pytest

from katadocker.vm.children import wait_child, wait_exited
from katadocker.vm.machine import InheritedChild


def test_wait_child_reaps_as_soon_as_the_child_exits() -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 3"])
    start = time.monotonic()
    assert wait_child(proc, 10) == 3
    assert time.monotonic() - start < 5
    assert proc.returncode == 3


def test_wait_child_times_out_and_leaves_the_child_running() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            wait_child(proc, 0.05)
        assert proc.poll() is None
    finally:
        proc.kill()
        assert wait_child(proc, 10) == -9


def test_an_inherited_child_is_waited_for_alike() -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 7"])
    child = InheritedChild(proc.pid, proc.args)
    assert wait_child(child, 10) == 7


def test_a_process_that_is_gone_counts_as_exited() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert wait_exited(proc.pid, 0)
