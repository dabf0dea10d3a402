"""The retrain gate: train a candidate on the training data plus newly labeled traffic, and promote it only if it
wins on traffic it never trained on without losing on the original validation split.

    python -m evaluation retrain [--captures captures/] [--feedback feedback/] [--promote]    # make retrain

1. Labeled traffic: captured predictions that kept their text (handler.capture.capture_text), or batch inputs
   (--batch-input, key and text columns), joined by key with the latest label of each key.
2. Split by time: the latest `holdout` share of the labeled traffic is the comparison window; only the earlier
   part is added to the training data, so the candidate is judged on reviews it never saw.
3. The candidate is trained (model.train), exported, and archived as the next version in the model store, with
   its baseline and calibration computed on the comparison window (`rebase`): promoted, it is judged against
   the traffic it was chosen for, not the validation split it was trained to move away from.
4. The serving version and the candidate score the same holdout reviews: the candidate must be more accurate,
   and significantly so by McNemar's test on the reviews where exactly one of them is right (p < `alpha`); on
   the IMDB validation split it may lose at most `tolerance` of accuracy.
5. Only then is it registered and made the default through the management API (serving.client.api.promote); the
   old version stays registered for `make rollback`. Every decision, with its numbers, is written to
   retrain-runs/<UTC time>/decision.json; the archive of a refused candidate is kept beside it for inspection.

Scheduling is cron's or Airflow's: `make evaluate || [ $? -eq 3 ] && make retrain` (README: Continued evaluation).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scipy.stats import binomtest

from evaluation import captures as capture_files
from evaluation import feedback
from evaluation.keys import canonical
from evaluation.reference import labels_of
from model.logit import is_positive

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainSettings:
    captures: Path = Path("captures")  # where the handler wrote predictions (with text: capture_text: true)
    feedback: Path = Path("feedback")
    batch_inputs: tuple[Path, ...] = ()  # JSONL files of batch inputs with key and text, joined by key too
    batch_key: str = "key"
    batch_text: str = "text"
    model_store: Path = Path("model_store")  # the candidate's archive goes here: the server registers from it
    serving_version: str | None = None  # None: the default version the server reports (or the newest archive)
    since: float | None = None  # epoch seconds: only traffic predicted since then is new (e.g. the last retrain)
    holdout: float = 0.3  # the latest share of labeled traffic, by time: the comparison window
    alpha: float = 0.05  # McNemar's test: the candidate's win must be significant at this level
    tolerance: float = 0.01  # accuracy the candidate may lose on the original validation split
    min_holdout: int = 50  # fewer labeled reviews in the window: no decision, nothing promoted
    epochs: int | None = None  # None: the model's own (model.config)
    runs: Path = Path("retrain-runs")
    promote: bool = False  # register and make default when it wins (else: decide and report only)
    inference_url: str = "http://127.0.0.1:8080"
    management_url: str = "http://127.0.0.1:8081"
    key_file: Path = Path("key_file.json")


@dataclass
class Decision:
    promoted: bool
    reason: str
    serving_version: str
    candidate_version: str | None = None
    candidate_archive: str | None = None
    labeled_traffic: int = 0
    trained_on_traffic: int = 0
    holdout: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    split_time: str | None = None
    run_dir: str | None = None


def labeled_traffic(settings: RetrainSettings) -> list[dict]:
    """Reviews with text and label, one per key (its latest prediction), oldest first: {key, text, label, t}."""
    labels = labels_of(feedback.read_rows(settings.feedback)).latest
    latest: dict[str, dict] = {}
    for record in capture_files.read(settings.captures).records:
        key = canonical(record.get("key"))
        if key is None or key not in labels or not record.get("text") or record.get("error"):
            continue
        t = feedback.parse_time(record["time"])
        if settings.since is not None and t < settings.since:
            continue
        if key not in latest or t > latest[key]["t"]:
            latest[key] = {"key": key, "text": record["text"], "label": labels[key], "t": t}
    for path in settings.batch_inputs:
        when = Path(path).stat().st_mtime
        for row in feedback._records(Path(path), "jsonl"):
            key = canonical(row.get(settings.batch_key))
            text = row.get(settings.batch_text)
            if key is not None and key in labels and isinstance(text, str) and text.strip() and key not in latest:
                latest[key] = {"key": key, "text": text, "label": labels[key], "t": when}
    return sorted(latest.values(), key=lambda r: (r["t"], r["key"]))


def split_by_time(rows: list[dict], holdout: float) -> tuple[list[dict], list[dict]]:
    """(earlier: for training, latest `holdout` share: for the comparison)."""
    cut = len(rows) - max(1, round(len(rows) * holdout)) if rows else 0
    return rows[:cut], rows[cut:]


def mcnemar(a_right: list[bool], b_right: list[bool]) -> tuple[int, int, float]:
    """(only a right, only b right, two-sided p): McNemar's exact test, scipy's binomial test of the discordant
    pairs (exact at every n: no continuity correction to choose)."""
    only_a = sum(1 for x, y in zip(a_right, b_right, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a_right, b_right, strict=True) if y and not x)
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def decide(
    serving_right: list[bool],
    candidate_right: list[bool],
    serving_val: float,
    candidate_val: float,
    settings: RetrainSettings,
) -> tuple[bool, str, dict, dict]:
    """(promote?, why, holdout numbers, validation numbers)."""
    n = len(serving_right)
    only_serving, only_candidate, p = mcnemar(serving_right, candidate_right)
    holdout = {
        "n": n,
        "serving_accuracy": sum(serving_right) / n if n else None,
        "candidate_accuracy": sum(candidate_right) / n if n else None,
        "only_serving_right": only_serving,
        "only_candidate_right": only_candidate,
        "mcnemar_p": p,
        "alpha": settings.alpha,
    }
    validation = {"serving_accuracy": serving_val, "candidate_accuracy": candidate_val, "tolerance": settings.tolerance}
    if n < settings.min_holdout:
        why = f"only {n} labeled reviews in the comparison window (< {settings.min_holdout})"
        return False, why, holdout, validation
    if only_candidate <= only_serving or p >= settings.alpha:
        return False, f"the candidate does not win on recent traffic (McNemar p={p:.3g})", holdout, validation
    if candidate_val < serving_val - settings.tolerance:
        why = f"the candidate loses {serving_val - candidate_val:.3f} accuracy on the validation split"
        return False, why + f" (> {settings.tolerance})", holdout, validation
    why = f"the candidate wins on recent traffic (McNemar p={p:.3g}) and holds on validation"
    return True, why, holdout, validation


def next_version(model_store: Path, name: str = "sentiment") -> str:
    from evaluation.models import archives

    majors = [int(float(v)) for _, v in archives(model_store, name) if v.replace(".", "", 1).isdigit()]
    return f"{max(majors, default=0) + 1}.0"


def accuracy_of(archive: Path, texts: list[str], labels: list[int]) -> list[bool]:
    """Whether the archive's model gets each review right (the archive unpacked as a worker unpacks it)."""
    from model.infer import load_scorer, score

    with tempfile.TemporaryDirectory(prefix="retrain-") as tmp:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        scorer = load_scorer(Path(tmp))
        right = []
        for start in range(0, len(texts), 512):
            chunk = score(scorer, texts[start : start + 512])
            right += [is_positive(s.logit) == bool(y) for s, y in zip(chunk, labels[start : start + 512], strict=True)]
    return right


def validation_split() -> tuple[list[str], list[int]]:
    from model.config import ModelConfig
    from model.data import DATA_DIR, IMDB_TRAIN, book_split, read_jsonl

    _, val = book_split(read_jsonl(DATA_DIR / IMDB_TRAIN), ModelConfig().val_every)
    return [r["text"] for r in val], [int(r["label"]) for r in val]


def rebase(artifacts: Path, rows: list[dict]) -> dict:
    """Replace the exported model's baseline and calibration (written on IMDB's validation split by training)
    with ones of `rows`, the recent labeled traffic it never trained on: once promoted, the version is judged
    against the traffic it was chosen for. Against the validation split, the very shift it was trained to
    serve would keep its drift and accuracy-drop alerts firing for as long as it serves."""
    from model import baseline
    from model.infer import load_scorer, score

    scorer = load_scorer(artifacts)
    scores = [
        s for start in range(0, len(rows), 512) for s in score(scorer, [r["text"] for r in rows[start : start + 512]])
    ]
    return baseline.save(
        artifacts,
        [s.logit for s in scores],
        [s.tokens for s in scores],
        [s.unknown_tokens for s in scores],
        [int(r["label"]) for r in rows],
    )


def train_candidate(
    rows: list[dict], holdout: list[dict], work: Path, model_store: Path, version: str, epochs: int | None
) -> Path:
    """Train, export and archive a candidate on IMDB's training split plus `rows`, its baseline rebased on
    `holdout`; returns its archive."""
    from dataclasses import replace

    from model.config import ModelConfig
    from model.data import DATA_DIR
    from model.export import export
    from model.train import train
    from serving.build.archive import build

    cfg = ModelConfig() if epochs is None else replace(ModelConfig(), epochs=epochs)
    artifacts = work / "artifacts"
    train(cfg, DATA_DIR, artifacts, extra_rows=[{"text": r["text"], "label": r["label"]} for r in rows])
    export(artifacts)
    rebase(artifacts, holdout)
    return build("sentiment", version, Path(model_store), artifacts=artifacts)


def run(settings: RetrainSettings, client=None) -> Decision:
    """The whole gate; `client` (serving.client.api.ServingClient) is asked for the default version and promotes."""
    from evaluation.models import archives

    started = dt.datetime.now(dt.UTC)
    run_dir = Path(settings.runs) / started.strftime("%Y-%m-%dT%H-%M-%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    known = {version: path for (_, version), path in archives(settings.model_store, "sentiment").items()}
    serving = settings.serving_version or (client.default_version("sentiment") if client is not None else None)
    serving = serving or max(known, key=lambda v: [int(x) for x in v.split(".") if x.isdigit()], default=None)
    if serving not in known:
        raise ValueError(f"no archive of the serving version {serving} in {settings.model_store}")
    rows = labeled_traffic(settings)
    train_rows, holdout_rows = split_by_time(rows, settings.holdout)
    decision = Decision(False, "", serving, labeled_traffic=len(rows), trained_on_traffic=len(train_rows))
    decision.run_dir = str(run_dir)
    if holdout_rows:
        decision.split_time = dt.datetime.fromtimestamp(holdout_rows[0]["t"], dt.UTC).isoformat()
    if len(holdout_rows) < settings.min_holdout:
        decision.reason = f"only {len(holdout_rows)} labeled reviews for the comparison (< {settings.min_holdout})"
        return _written(decision, run_dir)
    version = next_version(settings.model_store)
    logger.info("training candidate %s on %d labeled reviews of traffic", version, len(train_rows))
    candidate = train_candidate(train_rows, holdout_rows, run_dir, settings.model_store, version, settings.epochs)
    decision.candidate_version, decision.candidate_archive = version, str(candidate)
    texts, labels = [r["text"] for r in holdout_rows], [r["label"] for r in holdout_rows]
    val_texts, val_labels = validation_split()
    serving_val = _mean(accuracy_of(known[serving], val_texts, val_labels))
    candidate_val = _mean(accuracy_of(candidate, val_texts, val_labels))
    promote, reason, holdout, validation = decide(
        accuracy_of(known[serving], texts, labels), accuracy_of(candidate, texts, labels), serving_val,
        candidate_val, settings,
    )  # fmt: skip
    decision.holdout, decision.validation, decision.reason = holdout, validation, reason
    if promote and settings.promote and client is not None:
        client.promote(candidate.name)
        decision.promoted = True
        decision.reason += f"; promoted: {version} is the default, {serving} stays registered for rollback"
    elif promote:
        decision.reason += "; not promoted (--promote not given)"
    else:
        kept = run_dir / candidate.name
        shutil.move(str(candidate), kept)  # out of the model store: a refused candidate is never registered
        decision.candidate_archive = str(kept)
    return _written(decision, run_dir)


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values)


def _written(decision: Decision, run_dir: Path) -> Decision:
    (run_dir / "decision.json").write_text(json.dumps(asdict(decision), indent=1) + "\n")
    logger.info("retrain decision: %s", decision.reason)
    return decision
