"""Alert rules (alerts.yaml) judged on the metrics rows: which fired, where, and whether one is active.

A rule holds one of: `floor` (the metric's upper 95 % bound is below it), `ceiling` (the lower bound is above
it), `drop` (the metric is at least `drop` under the baseline's value of the same metric, and its upper bound is
under it: an effect and a significant one), or `at_least` (a drift statistic at least this large, with
p <= max_p). Rules are judged per model and version, each against its own archive's baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

SHIPPED = Path(__file__).resolve().parent / "alerts.yaml"
QUALITY = ("accuracy", "precision", "recall", "error_rate")  # judged on a Wilson interval
# the baseline's value of the same definition: the label-free estimate is compared with the validation split's
# label-free estimate (its calibrated mean), never with a realized accuracy it does not measure
BASELINE_OF = {"accuracy": "accuracy", "estimated_accuracy": "estimated_accuracy"}
P_OF = {
    "score_psi": "score_psi_p",
    "score_ks": "score_ks_p",
    "positive_rate_change": "positive_rate_p",
    "token_length_psi": "token_length_psi_p",
    "unknown_fraction_psi": "unknown_fraction_psi_p",
}


@dataclass(frozen=True)
class Rule:
    name: str
    level: str  # critical: the job's exit status says so; warning: reported only
    metric: str
    floor: float | None = None
    ceiling: float | None = None
    drop: float | None = None
    at_least: float | None = None
    persistence: tuple[int, int] = (1, 1)  # k of n judged windows


@dataclass(frozen=True)
class Rules:
    min_labels: int  # labeled predictions a window needs for a verdict on its quality
    min_predictions: int  # answered predictions a window needs for drift and estimate rules
    max_p: float  # significance a drift needs for the window's n
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Alert:
    rule: str
    level: str
    model_name: str
    model_version: str
    window_start: str
    metric: str
    value: float
    threshold: float
    p_value: float | None
    message: str
    active: bool  # in the latest window where this rule could be judged for this version


def load(path: Path = SHIPPED) -> Rules:
    raw = yaml.safe_load(Path(path).read_text())
    rules = []
    for name, spec in (raw.get("rules") or {}).items():
        spec = dict(spec)
        if spec.get("level") not in ("critical", "warning"):
            raise ValueError(f"{path}: rule {name}: level must be critical or warning")
        if sum(spec.get(k) is not None for k in ("floor", "ceiling", "drop", "at_least")) != 1:
            raise ValueError(f"{path}: rule {name}: give exactly one of floor, ceiling, drop, at_least")
        spec["persistence"] = tuple(spec.get("persistence", (1, 1)))
        rules.append(Rule(name=name, **spec))
    return Rules(int(raw["min_labels"]), int(raw["min_predictions"]), float(raw["max_p"]), tuple(rules))


def judge(rule: Rule, row: dict, rules: Rules, baseline: dict | None) -> tuple[bool, float, float, float | None] | None:
    """(holds, value, threshold, p) for one window, or None when the rule cannot be judged there."""
    value = row.get(rule.metric)
    if value is None:
        return None
    answered = row["predictions"] - row["errors"]
    if rule.metric in QUALITY and rule.metric != "error_rate" and row["labeled"] < rules.min_labels:
        return None
    if rule.metric not in QUALITY and answered < rules.min_predictions:
        return None
    low, high = row.get(f"{rule.metric}_low"), row.get(f"{rule.metric}_high")
    if rule.floor is not None:
        return (high if high is not None else value) < rule.floor, value, rule.floor, None
    if rule.ceiling is not None:
        return (low if low is not None else value) > rule.ceiling, value, rule.ceiling, None
    if rule.drop is not None:
        if baseline is None or BASELINE_OF.get(rule.metric) not in baseline:
            return None
        reference = baseline[BASELINE_OF[rule.metric]]
        significant = high is not None and high < reference
        return reference - value >= rule.drop and significant, value, reference - rule.drop, None
    p = row.get(P_OF.get(rule.metric, ""), None)
    return abs(value) >= rule.at_least and p is not None and p <= rules.max_p, value, rule.at_least, p


def evaluate(rows: list[dict], rules: Rules, baselines: dict[tuple[str, str], dict | None]) -> list[Alert]:
    """Every firing of every rule, in time order per model x version; `active` marks the current state."""
    alerts = []
    models = sorted({(r["model_name"], r["model_version"]) for r in rows})
    for model in models:
        series = sorted(
            (r for r in rows if (r["model_name"], r["model_version"]) == model), key=lambda r: r["window_start"]
        )
        for rule in rules.rules:
            k, n = rule.persistence
            judged: list[tuple[dict, tuple]] = []
            for row in series:
                verdict = judge(rule, row, rules, baselines.get(model))
                if verdict is not None:
                    judged.append((row, verdict))
            for i, (row, (holds, value, threshold, p)) in enumerate(judged):
                recent = [v[0] for _, v in judged[max(0, i - n + 1) : i + 1]]
                if holds and sum(recent) >= k:
                    alerts.append(
                        Alert(
                            rule.name,
                            rule.level,
                            *model,
                            row["window_start"],
                            rule.metric,
                            value,
                            threshold,
                            p,
                            _message(rule, value, threshold, p, row),
                            active=i == len(judged) - 1,
                        )
                    )
    return alerts


def _message(rule: Rule, value: float, threshold: float, p: float | None, row: dict) -> str:
    where = f"model {row['model_name']} {row['model_version']}, window {row['window_start']}"
    if rule.floor is not None or rule.drop is not None:
        high = row.get(f"{rule.metric}_high")
        bound = f" (95 % upper bound {high:.3f})" if high is not None else ""
        return f"{rule.metric} {value:.3f}{bound} below {threshold:.3f}: {where}"
    if rule.ceiling is not None:
        low = row.get(f"{rule.metric}_low", value)
        return f"{rule.metric} {value:.3f} (95 % lower bound {low:.3f}) above {threshold:.3f}: {where}"
    return f"{rule.metric} {value:+.3f} beyond {threshold:.2f} (p={p:.1e}, n={row['predictions']}): {where}"


def critical_active(alerts: list[Alert]) -> bool:
    return any(a.active and a.level == "critical" for a in alerts)


def as_dicts(alerts: list[Alert]) -> list[dict]:
    return [asdict(a) for a in alerts]
