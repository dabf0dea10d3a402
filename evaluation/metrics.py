"""The metrics of one window x model x version from its sufficient statistics: pure functions, no Spark.

The Spark job (evaluation.job) and the plain-Python reference (evaluation.reference) both reduce their input to
the same `Stats`; `finish` turns them into the metrics row. So the two agree by construction on everything after
the aggregation, and the tests compare the aggregations themselves and `finish` with scikit-learn.

Rates carry 95 % Wilson intervals (right at 0 and 1 and for small n, where the normal interval is not).
Drift is an effect size and a test at once: PSI with a chi-square test of the binned counts, KS with its
p-value, the positive-rate change with a two-proportion z-test; each against the baseline's n. The
distributions are scipy's; only what no library has is written here (PSI, the binned counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy import stats as scipy_stats

from model.baseline import SCORE_BINS
from model.ece import ECE_BINS, from_bins

CONFIDENCE = 0.95
Z95 = float(scipy_stats.norm.ppf(0.5 + CONFIDENCE / 2))
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] in the log loss, as scikit-learn does
PSI_FLOOR = 1e-4  # an empty bin's share in the PSI: the log of 0 is undefined


@dataclass
class Stats:
    """What the aggregation yields for one window x version; every field is a sum, so partial Stats add up."""

    predictions: int = 0  # records: answered and refused
    errors: int = 0  # refused instances (error records)
    distinct_keys: int = 0  # answered predictions that carry a key, one per key (its latest answer)
    labeled: int = 0  # answered, keyed, deduplicated predictions with a label
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    estimated_correct_sum: float = 0.0  # calibrated probability that the predicted label is right: all answered
    estimated_correct_sq_sum: float = 0.0  # its squares: the estimate's interval
    estimated_labeled_sum: float = 0.0  # the same, over the labeled ones only
    predicted_positive: int = 0  # over all answered predictions (drift: the positive rate)
    ece_count: list[int] = field(default_factory=lambda: [0] * ECE_BINS)
    ece_prob_sum: list[float] = field(default_factory=lambda: [0.0] * ECE_BINS)
    ece_label_sum: list[int] = field(default_factory=lambda: [0] * ECE_BINS)
    score_fine: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)  # all answered predictions
    score_bins: list[int] = field(default_factory=list)  # by the baseline's deciles
    token_bins: list[int] = field(default_factory=list)
    unknown_bins: list[int] = field(default_factory=list)
    auc: float | None = None  # exact ROC AUC from its own aggregation (rank statistics do not add up)

    @property
    def answered(self) -> int:
        return self.predictions - self.errors


def wilson(k: float, n: float) -> tuple[float | None, float | None]:
    """The 95 % Wilson score interval of the proportion k/n (scipy's); (None, None) when n is 0."""
    if n <= 0:
        return None, None
    interval = scipy_stats.binomtest(int(k), int(n)).proportion_ci(CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def mean_interval(total: float, squares: float, n: int) -> tuple[float | None, float | None]:
    """95 % interval of the mean of n probabilities c_i of being right (the calibrated estimate of accuracy): the
    number right is a sum of independent Bernoulli(c_i), of variance sum c_i (1 - c_i)."""
    if n <= 0:
        return None, None
    mean = total / n
    half = Z95 * math.sqrt(max(total - squares, 0.0)) / n
    return max(0.0, mean - half), min(1.0, mean + half)


def ratio(k: float, n: float) -> float | None:
    return k / n if n else None


def log_loss_term(p: float, y: int) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return -math.log(p) if y else -math.log(1 - p)


def ece(stats: Stats) -> float | None:
    """Expected calibration error over ECE_BINS uniform bins of the positive probability (the reliability curve)."""
    return from_bins(stats.ece_count, stats.ece_prob_sum, stats.ece_label_sum)


def psi(expected: list[float], counts: list[int]) -> float | None:
    """Population stability index of the window's bin counts against the baseline's bin shares."""
    n = sum(counts)
    if not n or len(expected) != len(counts):
        return None
    total = 0.0
    for e, c in zip(expected, counts, strict=True):
        a, e = max(c / n, PSI_FLOOR), max(e, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def psi_p_value(expected: list[float], counts: list[int], baseline_n: int) -> float | None:
    """Chi-square test of the window's counts against the baseline's (a two-sample test of homogeneity).

    PSI is the symmetric KL divergence; for small differences it is ~ chi-square / (1/n + 1/m)^-1, which is
    this test's statistic: the p-value says whether the PSI is more than the noise of n and m reviews."""
    n = sum(counts)
    if not n or not baseline_n:
        return None
    observed_base = [e * baseline_n for e in expected]
    statistic, dof = 0.0, -1
    for c, b in zip(counts, observed_base, strict=True):
        if c + b == 0:
            continue
        dof += 1
        expected_c = (c + b) * n / (n + baseline_n)
        expected_b = (c + b) * baseline_n / (n + baseline_n)
        statistic += (c - expected_c) ** 2 / expected_c + (b - expected_b) ** 2 / expected_b
    return chi2_sf(statistic, max(dof, 1))


def ks(baseline_histogram: list[float], counts: list[int]) -> float | None:
    """The KS statistic on the fine score bins: the largest gap between the two cumulative distributions."""
    n = sum(counts)
    if not n:
        return None
    gap, base, window = 0.0, 0.0, 0.0
    for share, count in zip(baseline_histogram, counts, strict=True):
        base += share
        window += count / n
        gap = max(gap, abs(window - base))
    return gap


def ks_p_value(d: float | None, n: int, m: int) -> float | None:
    """Two-sample KS p-value of statistic d for samples of n and m (scipy's distribution of the one-sample
    statistic at the effective size n m / (n + m), as scipy.stats.ks_2samp does for large samples)."""
    if d is None or not n or not m:
        return None
    return float(scipy_stats.kstwo.sf(d, max(1, round(n * m / (n + m)))))


def two_proportion_p_value(k1: int, n1: int, p2: float, n2: int) -> float | None:
    """Two-sided z-test of k1/n1 against a baseline rate p2 measured on n2."""
    if not n1 or not n2:
        return None
    p1 = k1 / n1
    pooled = (k1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * scipy_stats.norm.sf(abs(p1 - p2) / se))


def chi2_sf(x: float, k: int) -> float:
    """P(X > x) for X ~ chi-square with k degrees of freedom."""
    return float(scipy_stats.chi2.sf(x, k))


def auc_from_value_counts(rows: list[tuple[float, int, int]]) -> float | None:
    """Exact ROC AUC (ties count one half) from (score, positives, negatives) per distinct score."""
    positives = sum(p for _, p, _ in rows)
    negatives = sum(n for _, _, n in rows)
    if not positives or not negatives:
        return None
    below, total = 0, 0.0
    for _, p, n in sorted(rows):
        total += p * (below + 0.5 * n)
        below += n
    return total / (positives * negatives)


def finish(stats: Stats, baseline: dict | None, min_labels: int) -> dict:
    """The metrics row of one window x version (columns of metrics.parquet)."""
    s = stats
    answered = s.answered
    row: dict = {
        "predictions": s.predictions,
        "errors": s.errors,
        "error_rate": ratio(s.errors, s.predictions),
        "keyed": s.distinct_keys,  # the column keeps its published name
        "labeled": s.labeled,
        "label_coverage": ratio(s.labeled, s.distinct_keys),
        "positive_rate": ratio(s.predicted_positive, answered),
        "estimated_accuracy": ratio(s.estimated_correct_sum, answered),
        "baseline_estimated_accuracy": baseline.get("estimated_accuracy") if baseline else None,
        "estimated_accuracy_labeled": ratio(s.estimated_labeled_sum, s.labeled),
    }
    for name, (k, n) in {
        "error_rate": (s.errors, s.predictions),
        "label_coverage": (s.labeled, s.distinct_keys),
        "accuracy": (s.tp + s.tn, s.labeled),
        "precision": (s.tp, s.tp + s.fp),
        "recall": (s.tp, s.tp + s.fn),
    }.items():
        row[name] = ratio(k, n)
        row[f"{name}_low"], row[f"{name}_high"] = wilson(k, n)

    row["estimated_accuracy_low"], row["estimated_accuracy_high"] = mean_interval(
        s.estimated_correct_sum, s.estimated_correct_sq_sum, answered
    )
    row["f1"] = 2 * s.tp / (2 * s.tp + s.fp + s.fn) if (2 * s.tp + s.fp + s.fn) else None
    row["roc_auc"] = s.auc
    row["log_loss"] = ratio(s.log_loss_sum, s.labeled)
    row["brier"] = ratio(s.brier_sum, s.labeled)
    row["ece"] = ece(s)
    row["estimate_gap"] = (
        row["estimated_accuracy_labeled"] - row["accuracy"] if s.labeled and row["accuracy"] is not None else None
    )
    row["verdict"] = verdict(s.labeled, min_labels)
    row.update(drift(s, baseline))
    return row


def verdict(labeled: int, min_labels: int) -> str:
    """'ok' when the window has enough labels for its accuracy interval to mean something (at 100 labels and 85 %
    accuracy the 95 % interval is already +-7 points); else why not."""
    if labeled < min_labels:
        return f"no verdict: {labeled} labels < {min_labels}"
    return "ok"


def drift(s: Stats, baseline: dict | None) -> dict:
    """PSI and KS of the scores, the positive-rate change, PSI of token length and unknown-token fraction."""
    out: dict = dict.fromkeys(
        (
            "score_psi",
            "score_psi_p",
            "score_ks",
            "score_ks_p",
            "positive_rate_change",
            "positive_rate_p",
            "token_length_psi",
            "token_length_psi_p",
            "unknown_fraction_psi",
            "unknown_fraction_psi_p",
        )
    )
    if baseline is None or not s.answered:
        return out
    m = baseline["n"]
    for name, key, counts in (
        ("score", "score_fractions", s.score_bins),
        ("token_length", "token_fractions", s.token_bins),
        ("unknown_fraction", "unknown_fractions", s.unknown_bins),
    ):
        out[f"{name}_psi"] = psi(baseline[key], counts)
        out[f"{name}_psi_p"] = psi_p_value(baseline[key], counts, m)
    out["score_ks"] = ks(baseline["score_histogram"], s.score_fine)
    out["score_ks_p"] = ks_p_value(out["score_ks"], s.answered, m)
    out["positive_rate_change"] = s.predicted_positive / s.answered - baseline["positive_rate"]
    out["positive_rate_p"] = two_proportion_p_value(s.predicted_positive, s.answered, baseline["positive_rate"], m)
    return out
