"""The in-process ceiling: decode + tokenize + forward + sigmoid + encode with the handler's own functions.

No HTTP, no IPC, one torch thread: what one core can do at most, and how the time splits between the stages.
Each cell of today's tokenization alternates with a cell of the path it replaced (bench/baseline.py), so that the
two are compared in the same run on the same reviews.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench import baseline
from handler import settings
from handler.codec import decode, dumps, respond
from handler.settings import Limits
from model.infer import TOKENIZER_DIR, Scorer, forward, limit_threads, load_scorer, scores, tokenize

STAGES = ("decode", "tokenize", "forward", "encode")
Tokenize = Callable[[Scorer, list[str]], tuple[torch.Tensor, torch.Tensor]]


def one_batch(scorer: Scorer, bodies: list[bytes], limits: Limits, tokenize: Tokenize = tokenize) -> dict[str, float]:
    """Seconds per stage for one server-side batch of single-review request bodies; `cpu_<stage>` the CPU seconds
    of this thread, which other processes on the core do not inflate."""
    marks = [(time.perf_counter(), time.thread_time())]
    requests = [decode(b, "application/json", limits) for b in bodies]
    texts = [t for r in requests for t in r.texts()]
    marks.append((time.perf_counter(), time.thread_time()))
    batch = tokenize(scorer, texts)
    marks.append((time.perf_counter(), time.thread_time()))
    logits = forward(scorer, batch)
    marks.append((time.perf_counter(), time.thread_time()))
    answers = scores(scorer, batch, logits)  # the unknown-token counts are part of the answer
    for i, request in enumerate(requests):  # sigmoid happens inside respond's prediction objects
        dumps(respond(request, answers[i : i + 1], scorer.version)[1])
    marks.append((time.perf_counter(), time.thread_time()))
    out = {}
    for stage, (a, b) in zip(STAGES, zip(marks, marks[1:], strict=False), strict=True):
        out[stage], out[f"cpu_{stage}"] = b[0] - a[0], b[1] - a[1]
    return out


def measure_batch(
    scorer: Scorer, bodies: list[bytes], batch: int, seconds: float, tokenize: Tokenize = tokenize
) -> dict:
    """Run batches of `batch` bodies (cycling through `bodies`) for about `seconds`; per-stage totals."""
    limits = settings.read().limits
    totals: dict[str, float] = {}
    items, i = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        chunk = [bodies[(i + k) % len(bodies)] for k in range(batch)]
        i += batch
        for stage, spent in one_batch(scorer, chunk, limits, tokenize).items():
            totals[stage] = totals.get(stage, 0.0) + spent
        items += batch
    spent = sum(totals[stage] for stage in STAGES)
    cpu = sum(totals[f"cpu_{stage}"] for stage in STAGES)
    return {
        "items_per_s": items / spent,
        "items_per_cpu_s": items / cpu,
        "split": {stage: totals[stage] / spent for stage in STAGES},
        "us_per_item": {stage: 1e6 * totals[stage] / items for stage in STAGES},
        "cpu_us_per_item": {stage: 1e6 * totals[f"cpu_{stage}"] / items for stage in STAGES},
    }


def baseline_tokenize(model_dir: Path) -> Tokenize:
    """bench/baseline.py's tokenization over the same archive's tokenizer files."""
    tokenizer = baseline.load(model_dir / TOKENIZER_DIR)
    return lambda scorer, texts: baseline.encode_batch(tokenizer, texts, scorer.max_tokens)


def summary(cells: list[dict]) -> dict:
    """The median cell's figures, and every cell's items/s."""
    middle = sorted(cells, key=lambda c: c["items_per_s"])[len(cells) // 2]
    return {
        "items_per_s": statistics.median(c["items_per_s"] for c in cells),
        "items_per_s_cells": [round(c["items_per_s"], 1) for c in cells],
        "items_per_cpu_s": statistics.median(c["items_per_cpu_s"] for c in cells),
        "split": middle["split"],
        "us_per_item": middle["us_per_item"],
        "cpu_us_per_item": middle["cpu_us_per_item"],
    }


def ceiling(
    model_dir: Path, bodies: list[bytes], batches=(1, 8, 32, 128), seconds: float = 2.0, repeats: int = 3
) -> list[dict]:
    """Median over `repeats` cells of each batch size, one torch thread; today's path and the baseline's cells
    alternate, `before` holds the baseline's figures and `speedup` the median ratio of neighbouring cells."""
    limit_threads(1)
    scorer = load_scorer(model_dir)
    before = baseline_tokenize(model_dir)
    measure_batch(scorer, bodies, 8, 0.5)  # warm-up
    measure_batch(scorer, bodies, 8, 0.5, before)
    rows = []
    for batch in batches:
        cells: dict[str, list[dict]] = {"now": [], "before": []}
        for _ in range(repeats):
            cells["now"].append(measure_batch(scorer, bodies, batch, seconds))
            cells["before"].append(measure_batch(scorer, bodies, batch, seconds, before))
        now, then = summary(cells["now"]), summary(cells["before"])
        pairs = list(zip(cells["now"], cells["before"], strict=True))
        rows.append(
            {
                "batch": batch,
                **now,
                "before": then,
                "speedup": statistics.median(a["items_per_s"] / b["items_per_s"] for a, b in pairs),
                "speedup_cpu": statistics.median(a["items_per_cpu_s"] / b["items_per_cpu_s"] for a, b in pairs),
            }
        )
    return rows


def main() -> None:
    """`python -m bench.ceiling [--repeats 5]`: the ceiling alone, old and new, from the committed artifacts."""
    import argparse
    import json

    from bench.reviews import MIXES, review_mix, single_bodies
    from serving.run.server import ROOT

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "model" / "artifacts")
    parser.add_argument("--batches", default="1,8,32,128")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    out = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    for mix in MIXES:
        out[mix] = ceiling(args.model_dir, single_bodies(review_mix(mix, 1000)), batches, args.seconds, args.repeats)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
