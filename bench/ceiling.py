"""The in-process ceiling: decode + tokenize + forward + sigmoid + encode with the handler's own functions.

No HTTP, no IPC, one torch thread: what one core can do at most, and how the time splits between the stages.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from handler import settings
from handler.codec import decode, dumps, respond
from handler.settings import Limits
from model.infer import Scorer, forward, limit_threads, load_scorer, scores, tokenize

STAGES = ("decode", "tokenize", "forward", "encode")


def one_batch(scorer: Scorer, bodies: list[bytes], limits: Limits) -> dict[str, float]:
    """Seconds per stage for one server-side batch of single-review request bodies."""
    t0 = time.perf_counter()
    requests = [decode(b, "application/json", limits) for b in bodies]
    texts = [t for r in requests for t in r.texts()]
    t1 = time.perf_counter()
    batch = tokenize(scorer, texts)
    t2 = time.perf_counter()
    logits = forward(scorer, batch)
    t3 = time.perf_counter()
    answers = scores(scorer, batch, logits)
    for i, request in enumerate(requests):  # sigmoid happens inside respond's prediction objects
        dumps(respond(request, answers[i : i + 1], scorer.version)[1])
    t4 = time.perf_counter()
    return {"decode": t1 - t0, "tokenize": t2 - t1, "forward": t3 - t2, "encode": t4 - t3}


def measure_batch(scorer: Scorer, bodies: list[bytes], batch: int, seconds: float) -> dict:
    """Run batches of `batch` bodies (cycling through `bodies`) for about `seconds`; per-stage totals."""
    limits = settings.read().limits
    totals = dict.fromkeys(STAGES, 0.0)
    items, i = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        chunk = [bodies[(i + k) % len(bodies)] for k in range(batch)]
        i += batch
        for stage, spent in one_batch(scorer, chunk, limits).items():
            totals[stage] += spent
        items += batch
    spent = sum(totals.values())
    return {
        "items_per_s": items / spent,
        "split": {stage: totals[stage] / spent for stage in STAGES},
        "us_per_item": {stage: 1e6 * totals[stage] / items for stage in STAGES},
    }


def ceiling(
    model_dir: Path, bodies: list[bytes], batches=(1, 8, 32, 128), seconds: float = 2.0, repeats: int = 3
) -> list[dict]:
    """Median over `repeats` cells of each batch size, one torch thread."""
    limit_threads(1)
    scorer = load_scorer(model_dir)
    measure_batch(scorer, bodies, 8, 0.5)  # warm-up
    rows = []
    for batch in batches:
        cells = [measure_batch(scorer, bodies, batch, seconds) for _ in range(repeats)]
        best = sorted(cells, key=lambda c: c["items_per_s"])[len(cells) // 2]
        rows.append(
            {
                "batch": batch,
                "items_per_s": statistics.median(c["items_per_s"] for c in cells),
                "items_per_s_cells": [round(c["items_per_s"], 1) for c in cells],
                "split": best["split"],
                "us_per_item": best["us_per_item"],
            }
        )
    return rows
