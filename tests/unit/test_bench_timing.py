"""The benchmarks' ratio statistics (bench/timing.py): paired per-round ratios and the bootstrap
interval of their median."""

import statistics

import pytest

from bench.coldstart import goal_verdict
from bench.timing import Ratio, median_interval, ratio


def test_the_per_round_ratio_pairs_each_candidate_run_with_its_own_rounds_baseline():
    # the host slows down over the run: both sides of each round slow down together
    candidate = [1.2, 1.8, 2.4, 3.0, 3.6]
    baseline = [1.0, 1.5, 2.0, 2.5, 3.0]
    r = ratio(candidate, baseline)
    assert r.paired == pytest.approx(1.2)
    assert r.low == pytest.approx(1.2) and r.high == pytest.approx(1.2)
    assert r.of_medians == pytest.approx(2.4 / 2.0)


def test_the_paired_ratio_is_the_median_of_the_per_round_ratios_inside_its_interval():
    candidate = [1.50, 1.52, 1.49, 1.51, 1.50, 1.48, 1.53]
    baseline = [1.25, 1.10, 1.20, 1.26, 1.12, 1.24, 1.21]
    r = ratio(candidate, baseline)
    assert r.paired == pytest.approx(1.49 / 1.20)  # the per-round ratios' middle one
    assert r.of_medians == pytest.approx(1.50 / 1.21)
    assert r.low <= r.paired <= r.high


def test_the_interval_holds_the_median_and_widens_with_the_spread():
    tight = [1.20, 1.21, 1.22, 1.23, 1.24, 1.25, 1.26, 1.27, 1.28, 1.29, 1.30]
    wide = [0.9, 1.0, 1.1, 1.2, 1.25, 1.25, 1.3, 1.4, 1.5, 1.6, 1.7]
    t_low, t_high = median_interval(tight)
    w_low, w_high = median_interval(wide)
    assert t_low <= statistics.median(tight) <= t_high
    assert w_high - w_low > t_high - t_low
    assert min(wide) <= w_low and w_high <= max(wide)


def test_the_interval_is_the_same_for_the_same_values():
    values = [1.31, 1.18, 1.24, 1.22, 1.40, 1.19, 1.27]
    assert median_interval(values) == median_interval(values)


def test_rounds_must_pair_up():
    with pytest.raises(ValueError):
        ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        ratio([], [])


@pytest.mark.parametrize(("r", "verdict"), [
    (Ratio(1.35, 1.33, 1.30, 1.36), "under 1.3 -> NOT met (per round 1.33)"),
    # a ratio of medians over the goal, moved by a few fast bare boots; the per-round ratios are not
    (Ratio(1.35, 1.27, 1.20, 1.29), "under 1.3 -> met, with its interval (up to 1.29)"),
    (Ratio(1.27, 1.26, 1.22, 1.31), "under 1.3 -> met, but the interval reaches 1.31"),
])
def test_the_goal_verdict_goes_by_the_per_round_ratios_and_says_whether_the_noise_reaches_it(r, verdict):
    assert goal_verdict(r) == verdict
