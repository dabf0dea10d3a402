"""Small synthetic traffic for the evaluation tests: capture files as the handler writes them, and label files with
every case the join must handle (late, duplicate, conflicting, unknown, bad), in the three formats."""

from __future__ import annotations

import calendar
import json
import math
import random
import time
from pathlib import Path

from handler.capture import Item, partition, record
from handler.codec import Audit, sigmoid

START = 1_780_000_000 - 1_780_000_000 % 3600  # an hour boundary
WINDOW_S = 3600


def predictions(n: int = 600, seed: int = 7) -> list[dict]:
    """Records of two versions over three hours: keyed and unkeyed, retries, refused instances."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        version = "1.0" if i % 3 else "2.0"
        when = START + rng.uniform(0, 3 * WINDOW_S)
        truth = i % 2
        logit = rng.gauss(1.6 if truth else -1.6, 1.8) + (0.0 if when < START + 2 * WINDOW_S else -1.0)
        logit = round(logit, 6) if i % 17 else 0.25  # some tied scores, for the AUC
        key = None if i % 11 == 0 else (f"k{i}" if i % 5 else i)  # string and number keys, some unkeyed
        error = "empty_text" if i % 29 == 0 else None
        tokens = rng.randint(5, 700)
        unknown = rng.randint(0, tokens // 4)
        item = Item(f"req{i}:0", key, tokens * 5, None if error else logit, None if error else tokens,
                    None if error else unknown, error, None)  # fmt: skip
        out.append(record(item, "sentiment", version, when, 1024))
        if i % 13 == 0 and not error:  # a client retry of the same review, moments later
            retry = item._replace(prediction_id=f"req{i}r:0", logit=logit + 0.01)
            out.append(record(retry, "sentiment", version, when + 1.5, 1024))
    return out


def audited_predictions(n: int = 450, seed: int = 11) -> list[dict]:
    """Phase-2 traffic of two-phase prediction (sentiment-bigram 1.0) over one hour: deferred reviews, and a third
    audited, carrying the device's answer: probabilities of exactly 0 and 1 among them, one with a server error,
    and a retry whose device answer flips. Keys k<i> with truth i % 2, as label_rows labels them."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        truth = i % 2
        when = START + rng.uniform(0, WINDOW_S - 10)
        logit = round(rng.gauss(1.5 if truth else -1.5, 1.5), 6)
        audit = None
        if i % 3 == 0:
            p1 = float(truth) if i % 45 == 0 else sigmoid(rng.gauss(2.5 if truth else -2.5, 2.0))
            audit = Audit(p1, "1.0-int8")
        error = "internal_error" if i == 30 else None
        item = Item(f"req{i}:0", f"k{i}", 500, None if error else logit, None if error else 100,
                    None if error else 3, error, None, audit)  # fmt: skip
        out.append(record(item, "sentiment-bigram", "1.0", when, 1024))
        if i == 3:  # the device asked again moments later, and answered the other way
            retry = item._replace(prediction_id="req3r:0", audit=Audit(1.0 - audit.phase1_probability, "1.0-int8"))
            out.append(record(retry, "sentiment-bigram", "1.0", when + 2.0, 1024))
    return out


def parse(r: dict) -> float:
    """A record's time in epoch seconds."""
    return calendar.timegm(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S")) + int(r["time"][20:23]) / 1000


def truth_of(key) -> int:
    i = int(str(key).removeprefix("k"))
    return i % 2


def write_captures(directory: Path, records: list[dict], torn: bool = True) -> None:
    """Grouped into the handler's layout, two worker files per partition; one torn line at the end of one file."""
    files: dict[Path, list[str]] = {}
    for i, r in enumerate(records):
        when = parse(r)
        path = partition(directory, r["model_name"], r["model_version"], when) / f"host-{100 + i % 2}.jsonl"
        files.setdefault(path, []).append(json.dumps(r))
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    if torn:
        with open(sorted(files)[0], "a") as f:
            f.write('{"prediction_id": "torn:0", "key": "k1", "model_ve')


def label_rows(records: list[dict], seed: int = 3) -> list[dict]:
    """Labels of about 80 % of the keys, the latest of each right; plus duplicates, conflicts, unknown, bad rows."""
    rng = random.Random(seed)
    keys = sorted({r["key"] for r in records if r["key"] is not None}, key=str)
    rows = []
    for key in keys:
        if rng.random() < 0.2:
            continue
        label = truth_of(key)
        when = START + 4 * WINDOW_S + rng.uniform(0, WINDOW_S)
        spelled = rng.choice([label, str(label), ["negative", "positive"][label], ["neg", "POS"][label]])
        rows.append({"key": key, "label": spelled, "labeled_at": iso(when)})
        if rng.random() < 0.1:  # labeled twice: an earlier, wrong label, and the same label again
            rows.append({"key": key, "label": 1 - label, "labeled_at": iso(when - 600)})
            rows.append({"key": key, "label": label, "labeled_at": None})
    rows += [{"key": "never-predicted", "label": 1, "labeled_at": iso(START)}]
    rows += [{"key": None, "label": 1, "labeled_at": None}, {"key": "k1", "label": "maybe", "labeled_at": None}]
    rows += [{"key": "k2", "label": 0, "labeled_at": "not a time"}]
    return rows


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def write_labels(directory: Path, rows: list[dict]) -> list[dict]:
    """The rows split over a JSONL, a CSV and a Parquet file; returns them as the reference reads them."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    thirds = [rows[0::3], rows[1::3], rows[2::3]]
    paths = [directory / "a.jsonl", directory / "b.csv", directory / "c.parquet"]
    with open(paths[0], "w") as f:
        for row in thirds[0]:
            f.write(json.dumps(row) + "\n")
        f.write('{"key": "broken\n')  # a broken line: a bad row, not a failed job
    pd.DataFrame([{k: (None if v is None else str(v)) for k, v in r.items()} for r in thirds[1]]).to_csv(
        paths[1], index=False
    )
    pd.DataFrame([{k: (None if v is None else str(v)) for k, v in r.items()} for r in thirds[2]]).to_parquet(paths[2])
    out = []
    for path, part in zip(paths, thirds, strict=True):
        mtime = path.stat().st_mtime
        for idx, row in enumerate(part):
            value = row["label"] if path.suffix == ".jsonl" else (None if row["label"] is None else str(row["label"]))
            key = row["key"] if path.suffix == ".jsonl" else (None if row["key"] is None else str(row["key"]))
            out.append({"key": key, "label": value, "labeled_at": row["labeled_at"], "file": path.resolve().as_uri(),
                        "file_time": mtime, "row": idx})  # fmt: skip
    return out


def close(a, b, tol: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
