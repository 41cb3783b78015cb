"""Windowed PSI: a hand-computed example, bin rules, windows across calls, restore."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import PSI_EPSILON, SignalProfile, WindowedPSI, categorical_profile, numeric_profile, psi


def test_psi_hand_computed() -> None:
    # Reference 25/25/50 %, window 50/25/25 %:
    # (0.50-0.25)·ln(0.50/0.25) + 0 + (0.25-0.50)·ln(0.25/0.50) = 0.5·ln 2
    value, contrib = psi(np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.25, 0.5]))
    assert value == pytest.approx(0.5 * math.log(2))
    assert contrib.tolist() == pytest.approx([0.25 * math.log(2), 0.0, 0.25 * math.log(2)])


def test_empty_bin_uses_epsilon_and_bins_empty_on_both_sides_add_nothing() -> None:
    value, contrib = psi(np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.0]))
    expected_empty = (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5)
    assert contrib[1] == pytest.approx(expected_empty)
    assert contrib[2] == 0.0
    assert value == pytest.approx(0.5 * math.log(2) + expected_empty)


def test_numeric_bins_are_reference_quantiles_with_open_outer_bins() -> None:
    prof = numeric_profile(np.arange(100.0), bins=4)
    assert prof.edges == pytest.approx((24.75, 49.5, 74.25))
    assert prof.proportions == pytest.approx((0.25, 0.25, 0.25, 0.25, 0.0))
    w = WindowedPSI(prof, window=4)
    # Far outside the reference range: still counted, in the outer bins; None is missing.
    [win] = w.update_many([-1e9, 1e9, 50.0, None])
    a = np.array([0.25, 0.0, 0.25, 0.25, 0.25])
    e = np.array(prof.proportions)
    assert win.psi == pytest.approx(psi(a, e)[0])
    assert win.end == 3 and win.index == 0


def test_nan_and_infinities_are_missing() -> None:
    prof = numeric_profile([1.0, 2.0, float("nan"), None, float("inf")], bins=2)
    assert prof.count == 5
    assert prof.missing_rate == pytest.approx(0.6)
    w = WindowedPSI(prof, window=3)
    [win] = w.update_many([float("nan"), float("-inf"), None])
    assert win.contributions[-1] == pytest.approx((1.0 - 0.6) * math.log(1.0 / 0.6))


def test_categorical_unseen_goes_to_other() -> None:
    prof = categorical_profile(["a"] * 60 + ["b"] * 30 + [None] * 10)
    assert prof.categories == ("a", "b")
    assert prof.proportions == pytest.approx((0.6, 0.3, 0.0, 0.1))
    w = WindowedPSI(prof, window=5)
    [win] = w.update_many(["a", "zzz", "zzz", None, "b"])
    a = np.array([0.2, 0.2, 0.4, 0.2])
    assert win.psi == pytest.approx(psi(a, np.array(prof.proportions))[0])


def test_windows_span_calls_and_restore_continues() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=5000)
    data = rng.normal(0.3, 1.0, size=3500)
    whole = WindowedPSI.from_values(ref, window=1000)
    expected = [(w.end, w.index, w.psi) for w in whole.update_many(data)]
    assert [e[0] for e in expected] == [999, 1999, 2999]
    part = WindowedPSI.from_values(ref, window=1000)
    got = [(w.end, w.index, w.psi) for w in part.update_many(data[:1234])]
    resumed = WindowedPSI.restore(part.snapshot())
    got += [(1234 + w.end, w.index, w.psi) for w in resumed.update_many(data[1234:])]
    assert got == expected


def test_same_distribution_scores_low_and_shift_scores_high() -> None:
    rng = np.random.default_rng(4)
    w = WindowedPSI.from_values(rng.normal(size=10_000), window=2000)
    same = [x.psi for x in w.update_many(rng.normal(size=10_000))]
    moved = [x.psi for x in w.update_many(rng.normal(1.0, 1.0, size=4000))]
    assert max(same) < 0.05
    assert min(moved) > 0.25


def test_profile_json_round_trip() -> None:
    for prof in (numeric_profile(np.arange(10.0)), categorical_profile(["x", "y", None])):
        assert SignalProfile.from_json(prof.to_json()) == prof
