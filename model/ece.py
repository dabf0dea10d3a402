"""The expected calibration error: one definition for the baseline, the evaluation, the device bundle and the
two-phase report.

ECE over ECE_BINS uniform bins of the positive probability p: the sum over bins of |positives - sum of p| divided
by the number of reviews, i.e. the bin-weighted gap of the reliability curve (which the evaluation report draws
from the same bins). Binning p rather than the predicted label's confidence max(p, 1 - p) keeps the positive and
negative sides apart, and the bins' three sums are all the Spark job needs to aggregate it. Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ECE_BINS = 10  # with the evaluation's windows of a few hundred labels, each bin still holds dozens


def bin_of(p: float, bins: int = ECE_BINS) -> int:
    """The uniform bin of a probability; 1.0 falls in the last bin."""
    return min(int(p * bins), bins - 1)


def from_bins(count: Sequence[int], prob_sum: Sequence[float], label_sum: Sequence[float]) -> float | None:
    """The ECE from each bin's count, sum of probabilities and sum of labels; None without any review."""
    n = sum(count)
    if not n:
        return None
    return sum(abs(label_sum[b] - prob_sum[b]) for b in range(len(count)) if count[b]) / n


def expected_calibration_error(probabilities: Iterable[float], labels: Iterable[int], bins: int = ECE_BINS) -> float:
    count, prob_sum, label_sum = [0] * bins, [0.0] * bins, [0] * bins
    for p, y in zip(probabilities, labels, strict=True):
        b = bin_of(float(p), bins)
        count[b] += 1
        prob_sum[b] += float(p)
        label_sum[b] += int(y)
    out = from_bins(count, prob_sum, label_sum)
    if out is None:
        raise ValueError("the ECE of no reviews is undefined")
    return out
