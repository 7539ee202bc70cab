"""Shared timing for the benchmarks: alternate candidate and baselines, report medians and the ratios."""

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
    return compare_all(name, candidate, {baseline_name: baseline}, rounds)[baseline_name]


def compare_all(name: str, candidate: Callable[[], float], baselines: dict[str, Callable[[], float]],
                rounds: int) -> dict[str, float]:
    """Like `compare` with several baselines: each round runs the candidate, then every baseline in
    turn. Prints the medians and one ratio candidate/baseline per baseline; returns the ratios."""
    cand: list[float] = []
    base: dict[str, list[float]] = {b: [] for b in baselines}
    for _ in range(rounds):
        cand.append(candidate())
        for b, run in baselines.items():
            base[b].append(run())
    c = statistics.median(cand)
    ratios = {}
    for b, times in base.items():
        m = statistics.median(times)
        ratios[b] = c / m
        print(f"{name}: katadocker {c * 1000:.0f} ms, {b} {m * 1000:.0f} ms, ratio {c / m:.2f} "
              f"(median of {rounds})")
    return ratios
