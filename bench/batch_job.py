"""`make bench-batch`: the batch job on 50,000 IMDB reviews against the in-process ceiling of the same functions.

    python -m bench.batch_job [--data DATA_DIR/imdb/unsup.jsonl.gz] [--out bench/results/batch.json]

Measures, in one run: the ceiling (batch.scoring.score_values on one core, one torch thread and no tokenizer
thread pool, in a fresh process, times the number of cores; and as many such processes at once as cores),
Spark's start-up time, the job's rows/s end to end (read, score, write), where its time went (from Spark's
event log: the time before the scoring stage, each slot's first task, the steady rate of the later tasks) and
the peak memory of the whole process tree (driver, JVM, Python workers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from batch import mar as mar_files
from batch.scoring import score_values
from model.data import DATA_DIR, IMDB_UNSUP, read_jsonl

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
DATA = DATA_DIR / IMDB_UNSUP


def read_texts(path: Path, n: int) -> list[str]:
    return [r["text"] for r in read_jsonl(path, limit=n)]


def ceiling(mar: Path, texts: list[str], batch_size: int) -> float:
    """Rows/s of score_values on one core: validation, tokenization, forward pass, prediction objects."""
    scorer, limits = mar_files.load(mar)  # sets one torch thread
    score_values(scorer, texts[:batch_size], limits)  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        score_values(scorer, texts[i : i + batch_size], limits)
    return len(texts) / (time.perf_counter() - started)


def _ceiling_worker(args: tuple[Path, list[str], int]) -> float:
    return ceiling(*args)  # mar_files.load limits the process to one thread


def parallel_ceiling(mar: Path, texts: list[str], batch_size: int, processes: int) -> float:
    """Summed rows/s of `processes` fresh processes running the ceiling at once (1: the one-core ceiling)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return sum(pool.map(_ceiling_worker, [(mar, texts, batch_size)] * processes))


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def scoring_stage(event_log: Path, slots: int) -> dict:
    """Where the job's time went, from Spark's event log: the scoring stage (the one with the most task time),
    the first task on each slot (which pays for the worker's imports and the model load) and the later ones."""
    tasks: dict[int, list[dict]] = {}
    stage_start: dict[int, int] = {}
    first_event = None
    for line in next(event_log.iterdir()).read_text().splitlines():
        event = json.loads(line)
        if event["Event"] == "SparkListenerJobStart" and first_event is None:
            first_event = event["Submission Time"]
        elif event["Event"] == "SparkListenerStageSubmitted":
            stage_start[event["Stage Info"]["Stage ID"]] = event["Stage Info"]["Submission Time"]
        elif event["Event"] == "SparkListenerTaskEnd":
            info, metrics = event["Task Info"], event["Task Metrics"]
            rows = metrics["Shuffle Read Metrics"]["Total Records Read"] or metrics["Input Metrics"]["Records Read"]
            duration = (info["Finish Time"] - info["Launch Time"]) / 1000
            tasks.setdefault(event["Stage ID"], []).append({"launch": info["Launch Time"], "s": duration, "rows": rows})
    stage = max(tasks, key=lambda sid: sum(t["s"] for t in tasks[sid]))
    ordered = sorted(tasks[stage], key=lambda t: t["launch"])
    first, later = ordered[:slots], ordered[slots:]
    steady = sum(t["rows"] for t in later) / sum(t["s"] for t in later) if later else 0.0
    return {
        "before_scoring_stage_seconds": round((stage_start[stage] - first_event) / 1000, 2),
        "scoring_stage_tasks": len(ordered),
        "first_task_per_slot_seconds": [round(t["s"], 2) for t in first],
        "later_task_seconds_median": round(statistics.median(t["s"] for t in later), 2) if later else None,
        "steady_rows_per_second_per_slot": round(steady, 1),
    }


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants (JVM, Python workers)."""

    def __init__(self, every: float = 0.25) -> None:
        self.every, self.peak_kb, self.processes = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _children(os.getpid())
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in pids))
            self.processes = max(self.processes, len(pids))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--mar", type=Path, default=ROOT / "model_store" / "sentiment.mar")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    parser.add_argument("--ceiling-rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--partitions", type=int, default=0, help="scoring tasks (0: the job's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from batch.job import run
    from batch.session import spark_session
    from batch.settings import JobSettings, SparkSettings

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    texts = read_texts(args.data, args.ceiling_rows)
    per_core_before = parallel_ceiling(args.mar, texts, args.batch_size, 1)
    joint = parallel_ceiling(args.mar, texts, args.batch_size, cores)
    logger.info("ceiling: %.0f rows/s on one core; %d processes at once: %.0f", per_core_before, cores, joint)

    workdir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        with PeakMemory() as memory:
            events = workdir / "events"
            events.mkdir()
            log_conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri()}
            log_conf |= {"spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"}
            spark, startup = spark_session(SparkSettings(master=f"local[{cores}]", conf=log_conf))
            try:
                summary = run(
                    spark,
                    JobSettings(
                        input=args.data,
                        output=workdir / "out",
                        mar=args.mar,
                        batch_size=args.batch_size,
                        partitions=args.partitions,
                    ),
                )
            finally:
                spark.stop()
        breakdown = scoring_stage(events, cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    per_core_after = parallel_ceiling(args.mar, texts, args.batch_size, 1)  # a shared machine: measure both sides
    per_core = (per_core_before + per_core_after) / 2
    result = {
        "data": str(args.data.name),
        "rows": summary.rows,
        "errors": summary.errors,
        "master": f"local[{cores}]",
        "cores": cores,
        "batch_size": args.batch_size,
        "ceiling_rows_per_second_per_core": round(per_core, 1),
        "ceiling_rows_per_second_per_core_before_after": [round(per_core_before, 1), round(per_core_after, 1)],
        "ceiling_rows_per_second": round(per_core * cores, 1),
        "ceiling_processes_at_once_rows_per_second": round(joint, 1),
        "job_seconds": summary.seconds,
        "job_rows_per_second": summary.rows_per_second,
        "ratio_to_ceiling": round(summary.rows_per_second / (per_core * cores), 3),
        "ratio_to_processes_at_once": round(summary.rows_per_second / joint, 3),
        **breakdown,
        "steady_ratio_to_ceiling_per_core": round(breakdown["steady_rows_per_second_per_slot"] / per_core, 3),
        "spark_startup_seconds": round(startup, 2),
        "peak_rss_mb": round(memory.peak_kb / 1024, 1),
        "peak_processes": memory.processes,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
