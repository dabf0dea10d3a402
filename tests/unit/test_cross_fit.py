"""The threshold rule of two-phase prediction, and its cross-fit: one rule for the shipped threshold and for each
half, fixed halves by review id, and every review judged by a threshold chosen without it."""

from __future__ import annotations

import numpy as np
import pytest

from model import threshold


def traffic(n: int = 600, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidences with ties, phase 1 right more often when sure, phase 2 right more often overall."""
    rng = np.random.default_rng(seed)
    conf = np.round(rng.uniform(0.5, 1.0, n), 3)
    c1 = rng.uniform(size=n) < conf
    c2 = rng.uniform(size=n) < 0.9
    return conf, c1, c2


def brute_force(conf, c1, c2, tolerance: float) -> tuple[float, float]:
    """(deferred, accuracy) of the rule, trying every threshold with the cascade's own routing."""
    best = None
    for cut in sorted({0.5, 1.0, *conf.tolist()}):
        routed = threshold.deferred(conf, cut)
        point = (routed.mean(), np.where(routed, c2, c1).mean())
        if point[1] >= c2.mean() - tolerance and (best is None or (point[0], -point[1]) < (best[0], -best[1])):
            best = point
    return best


@pytest.mark.parametrize("tolerance", [0.0, 0.003, 0.02, 1.0])
def test_the_rule_is_the_smallest_deferral_within_tolerance_of_phase_two(tolerance):
    conf, c1, c2 = traffic()
    chosen = threshold.select_threshold(conf, c1, c2, tolerance)
    routed = threshold.deferred(conf, chosen.threshold)
    assert (chosen.deferred, chosen.accuracy) == pytest.approx((routed.mean(), np.where(routed, c2, c1).mean()))
    assert (chosen.deferred, chosen.accuracy) == pytest.approx(brute_force(conf, c1, c2, tolerance))
    on_curve = [p for p in threshold.cascade_curve(conf, c1, c2) if p.accuracy >= c2.mean() - tolerance]
    assert chosen == min(on_curve, key=lambda p: p.deferred)  # a point of the plotted curve, exactly


def test_halves_are_fixed_by_id_and_seed():
    ids = [f"train_pos_{i}" for i in range(1001)]
    first = threshold.halves(ids)
    assert first.sum() == 500 and (~first).sum() == 501
    again = threshold.halves(ids[::-1])[::-1]
    assert (first == again).all()  # the order of the reviews does not matter
    other = threshold.halves(ids, seed=1)
    assert 0.35 < (first == other).mean() < 0.65  # another seed, other halves


def test_each_review_is_routed_by_the_threshold_chosen_on_the_other_half():
    conf, c1, c2 = traffic()
    first = threshold.halves([str(i) for i in range(len(conf))])
    fit = threshold.cross_fit(conf, c1, c2, first, 0.003)
    for chosen_on, judged, cut in ((first, ~first, fit.thresholds[0]), (~first, first, fit.thresholds[1])):
        assert cut == threshold.select_threshold(conf[chosen_on], c1[chosen_on], c2[chosen_on], 0.003).threshold
        assert (fit.routed[judged] == threshold.deferred(conf[judged], cut)).all()
    assert fit.accuracy == pytest.approx(np.where(fit.routed, c2, c1).mean())
    assert fit.deferred == pytest.approx(fit.routed.mean())


def test_the_interval_holds_the_cross_fit():
    conf, c1, c2 = traffic()
    first = threshold.halves([str(i) for i in range(len(conf))])
    fit = threshold.cross_fit(conf, c1, c2, first, 0.003)
    interval = threshold.cross_fit_interval(conf, c1, c2, first, 0.003, draws=200)
    assert interval["accuracy"][0] <= fit.accuracy <= interval["accuracy"][1]
    assert interval["deferred"][0] <= fit.deferred <= interval["deferred"][1]
    assert interval == threshold.cross_fit_interval(conf, c1, c2, first, 0.003, draws=200)  # seeded
