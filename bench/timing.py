"""Shared timing for the benchmarks: alternate candidate and baselines, report medians and the ratios.

Each round runs the candidate and then every baseline, so the two runs of one round share the host's
load of that moment. Besides the ratio of the medians, `compare_all` therefore reports the median of
the per-round ratios with a bootstrap interval: on a host whose load drifts (this one's does, by
±20% between minutes), a few unusually fast or slow baseline runs move the ratio of medians, while
the per-round ratios and their interval show how far the noise reaches.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Share of bootstrap medians inside `Ratio.low`..`Ratio.high`.
CONFIDENCE = 0.9
#: Bootstrap resamples: enough for the interval's ends to move by well under 0.01 between seeds.
RESAMPLES = 4000


@dataclass(frozen=True)
class Ratio:
    """Candidate against one baseline: the ratio of the medians, the median of the per-round ratios
    and that median's bootstrap interval (`CONFIDENCE`)."""

    of_medians: float
    paired: float
    low: float
    high: float


def time_command(argv: Sequence[str], **kwargs) -> float:
    """Seconds one run of `argv` takes (output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the median of `values`: the middle `confidence` share of
    the medians of `resamples` resamples drawn with replacement (seeded: the same values give the
    same interval)."""
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return medians[int(tail * (resamples - 1))], medians[round((1 - tail) * (resamples - 1))]


def ratio(candidate: Sequence[float], baseline: Sequence[float]) -> Ratio:
    """`Ratio` of the candidate's times against the baseline's, paired by round (same lengths)."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError("candidate and baseline need the same, non-zero number of rounds")
    per_round = [c / b for c, b in zip(candidate, baseline, strict=True)]
    low, high = median_interval(per_round)
    return Ratio(statistics.median(candidate) / statistics.median(baseline), statistics.median(per_round),
                 low, high)


def compare(name: str, candidate: Callable[[], float], baseline: Callable[[], float], rounds: int,
            baseline_name: str = "baseline") -> Ratio:
    """Run candidate and baseline alternately `rounds` times each; print medians and the ratio
    candidate/baseline (below 1.0: katadocker is faster). Returns the ratio."""
    return compare_all(name, candidate, {baseline_name: baseline}, rounds)[baseline_name]


def compare_all(name: str, candidate: Callable[[], float], baselines: dict[str, Callable[[], float]],
                rounds: int) -> dict[str, Ratio]:
    """Like `compare` with several baselines: each round runs the candidate, then every baseline in
    turn. Prints the medians and the ratios against each baseline; returns the ratios."""
    cand: list[float] = []
    base: dict[str, list[float]] = {b: [] for b in baselines}
    for _ in range(rounds):
        cand.append(candidate())
        for b, run in baselines.items():
            base[b].append(run())
    ratios = {}
    for b, times in base.items():
        r = ratios[b] = ratio(cand, times)
        print(f"{name}: katadocker {statistics.median(cand) * 1000:.0f} ms, {b} "
              f"{statistics.median(times) * 1000:.0f} ms, ratio {r.of_medians:.2f} (median of {rounds}); "
              f"per round {r.paired:.2f}, {CONFIDENCE:.0%} interval {r.low:.2f}-{r.high:.2f}")
    return ratios
