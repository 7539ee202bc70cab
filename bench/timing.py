"""Shared timing for the benchmarks: alternate candidate and baseline, report medians and the ratio."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence


def time_command(argv: Sequence[str], **kwargs) -> float:
    """Seconds one run of `argv` takes (output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def compare(name: str, candidate: Callable[[], float], baseline: Callable[[], float], rounds: int,
            baseline_name: str = "baseline") -> float:
    """Run candidate and baseline alternately `rounds` times each; print medians and the ratio
    candidate/baseline (below 1.0: katadocker is faster). Returns the ratio."""
    cand, base = [], []
    for _ in range(rounds):
        cand.append(candidate())
        base.append(baseline())
    c, b = statistics.median(cand), statistics.median(base)
    print(f"{name}: katadocker {c * 1000:.0f} ms, {baseline_name} {b * 1000:.0f} ms, ratio {c / b:.2f} "
          f"(median of {rounds})")
    return c / b
