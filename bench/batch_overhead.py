"""CPU per row of the batch job's Python side against the bare model, in one process, without Spark.

    .venv/bin/python -m bench.batch_overhead [--rows 20000] [--repeats 5] [--profile 25] [--out FILE]

The rows are IMDB's unlabeled reviews as `make bench-batch` writes them (one JSONL line each, unique integer
keys), handed to `batch.scoring.score_batch` as the Arrow record batches a Spark task receives (the session's
maxRecordsPerBatch lines, one binary column). Three measures, interleaved, each the median over `--repeats`
rounds of `time.process_time()` (CPU, which other processes on a shared machine do not inflate):

  batch_fn   score_batch on the lines: parse, checks, key, tokenize, forward, output columns
  values     score_values on the texts alone: checks, tokenize, forward, prediction columns
  ceiling    model.infer.score on the texts: tokenize and forward only, `--batch-size` texts a call

overhead = batch_fn / ceiling - 1, the median of the rounds' ratios; the three alternate batch by batch. With
`--profile N`, cProfile's N costliest functions of one batch_fn pass (own time) follow, to say where the overhead
goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from batch import mar as mar_files
from batch.scoring import Layout, score_batch, score_values, text_fields
from batch.session import DEFAULTS
from bench.batch_job import DATA, ROOT, jsonl_line, read_texts
from model.infer import score

logger = logging.getLogger(__name__)
ARROW_BATCH_ROWS = int(DEFAULTS["spark.sql.execution.arrow.maxRecordsPerBatch"])  # lines per batch a task gets


def arrow_batches(texts: list[str], rows: int, size: int) -> list[pa.RecordBatch]:
    """`rows` JSONL lines over `texts`, keyed 0, 1, 2, ..., as Spark hands them to a task: `size` lines a batch."""
    lines = [jsonl_line(i, texts[i % len(texts)]).encode("utf-8") for i in range(rows)]
    return [
        pa.RecordBatch.from_arrays([pa.array(lines[i : i + size], pa.binary())], names=["line"])
        for i in range(0, rows, size)
    ]


def cpu_per_row(run: Callable[[], object], rows: int) -> float:
    """CPU microseconds per row of one call of `run`."""
    started = time.process_time()
    run()
    return 1e6 * (time.process_time() - started) / rows


def profile(run: Callable[[], object], top: int) -> list[dict]:
    """The `top` functions by own time in one call of `run`, with their share of the total."""
    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return [
        {
            "function": f"{Path(file).name}:{line}:{name}",
            "calls": calls,
            "own_share": round(own / total, 4),
            "cumulative_share": round(cumulative / total, 4),
        }
        for (file, line, name), (_, calls, own, cumulative, _) in ranked
    ]


def measure(mar: Path, data: Path, rows: int, repeats: int, batch_size: int, top: int) -> dict:
    load_before = os.getloadavg()
    scorer, limits = mar_files.load(mar)  # one torch thread, as in a Spark task
    texts = read_texts(data, rows)
    batches = arrow_batches(texts, rows, ARROW_BATCH_ROWS)
    layout = Layout("key", "json", text_fields=text_fields("text"))

    def chunks(start: int, n: int) -> list[list[str]]:
        every = [texts[i % len(texts)] for i in range(start, start + n)]
        return [every[i : i + batch_size] for i in range(0, n, batch_size)]

    # per Arrow batch: the job's function on its lines, and the other two on the same lines' texts
    runs = []
    for number, batch in enumerate(batches):
        texts_of = chunks(number * ARROW_BATCH_ROWS, batch.num_rows)
        runs.append(
            {
                "batch_fn": lambda b=batch: score_batch(scorer, limits, b, layout, batch_size),
                "values": lambda c=texts_of: [score_values(scorer, chunk, limits) for chunk in c],
                "ceiling": lambda c=texts_of: [score(scorer, chunk) for chunk in c],
            }
        )
    for run in runs[0].values():  # warm-up: first calls allocate, the tokenizer fills its caches
        run()
    cells: dict[str, list[float]] = {name: [] for name in runs[0]}
    for _ in range(repeats):  # the three alternate batch by batch: a load that comes and goes hits each alike
        spent = dict.fromkeys(cells, 0.0)
        for batch_runs in runs:
            for name, run in batch_runs.items():
                spent[name] += cpu_per_row(run, rows)
        for name, value in spent.items():
            cells[name].append(value)
    median = {name: statistics.median(values) for name, values in cells.items()}
    overheads = [b / c - 1 for b, c in zip(cells["batch_fn"], cells["ceiling"], strict=True)]
    result = {
        "rows": rows,
        "arrow_batch_rows": ARROW_BATCH_ROWS,
        "batch_size": batch_size,
        "cpu_us_per_row": {name: round(value, 1) for name, value in median.items()},
        "cpu_us_per_row_each_round": {name: [round(v, 1) for v in values] for name, values in cells.items()},
        "overhead_batch_fn_over_ceiling": round(statistics.median(overheads), 4),
        "overhead_each_round": [round(o, 4) for o in overheads],
        "overhead_values_over_ceiling": round(median["values"] / median["ceiling"] - 1, 4),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if top:
        result["profile_batch_fn"] = profile(lambda: [run["batch_fn"]() for run in runs], top)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the reviews (JSONL, gzipped)")
    parser.add_argument("--mar", type=Path, default=ROOT / "model_store" / "sentiment.mar")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="list the N costliest functions")
    parser.add_argument("--out", type=Path, help="also write the result there (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = measure(args.mar, args.data, args.rows, args.repeats, args.batch_size, args.profile)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
