"""`make bench-batch`: the batch job on 1,000,000 reviews against the in-process ceiling of the same functions.

    python -m bench.batch_job [--rows 1000000] [--memory-rows 100000] [--variants tuned,plain,...] [--rounds 1]

The input is IMDB's 50,000 unlabeled reviews repeated, each line with a unique key, written as uncompressed
JSONL (splittable, as a large input is) into a temporary directory that is removed at the end. Measures, in one
run: the ceiling (batch.scoring.score_values on one core, one torch thread, in a fresh process, for
`--ceiling-seconds`, times the number of cores) and as many such processes run at once, right before and right
after every job; each job end to end (`python -m batch` in a process of its own: read, score, write; Spark's
start-up excluded); where its time went (Spark's event log, and the CPU seconds of the driver, the JVM and the
Python workers against the ceiling's CPU seconds for as many rows); and the peak memory of the driver (the
Python process and, in local mode, the JVM) against the input's size.

A job's ratio is its rows/s over the cores times the mean of the two ceilings beside it: this machine's speed
drifts by 10 % and more over minutes, and a job compared with the ceiling measured at its own time carries
less of that drift than one compared with a ceiling measured minutes away. The headline is the median of the
first variant's ratios. Its ratio to the processes run at once says what the machine gives when every core is
busy: where that falls short of cores x one process, so does any job.

Variants of the local tuning (batch/local.py), run alternately on the same input:
  tuned       the shipped default for a local master
  plain       --no-local-tuning: Spark's own settings, as on a cluster
  no-jit      tuned, but the JVM keeps its C2 compiler
  no-preload  tuned, but the Python workers fork from pyspark's own daemon
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
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
VARIANTS = {
    "tuned": [],
    "plain": ["--no-local-tuning"],
    "no-jit": ["--conf", "spark.driver.extraJavaOptions="],
    "no-preload": ["--conf", "spark.python.daemon.module=pyspark.daemon"],
}


def read_texts(path: Path, n: int) -> list[str]:
    return [r["text"] for r in read_jsonl(path, limit=n)]


def jsonl_line(key: int, text: str) -> str:
    """One input line, without its newline."""
    return json.dumps({"key": key, "text": text})  # the job's default key field


def write_input(source: Path, rows: int, target: Path) -> Path:
    """`rows` JSONL lines: the source's reviews over and over, keyed 0, 1, 2, ..."""
    with gzip.open(source, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    with open(target, "w", encoding="utf-8") as out:
        for i in range(rows):
            out.write(jsonl_line(i, texts[i % len(texts)]) + "\n")
    return target


def ceiling(mar: Path, texts: list[str], batch_size: int, seconds: float) -> tuple[float, float]:
    """(rows per second, rows per CPU second) of score_values on one core: validation, tokenization, forward
    pass, prediction objects, over `texts` again and again for at least `seconds`. The second leaves out the
    time other processes take from the core, not a core that runs slower because its host is busy."""
    scorer, limits = mar_files.load(mar)  # sets one torch thread
    score_values(scorer, texts[:batch_size], limits)  # warm-up
    rows, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        for i in range(0, len(texts), batch_size):
            rows += len(score_values(scorer, texts[i : i + batch_size], limits)["label"])
    return rows / (time.perf_counter() - started), rows / (time.process_time() - cpu)


def _ceiling_worker(args: tuple[Path, list[str], int, float]) -> tuple[float, float]:
    return ceiling(*args)


def parallel_ceiling(
    mar: Path, texts: list[str], batch_size: int, processes: int, seconds: float
) -> tuple[float, float]:
    """Summed rows/s of `processes` fresh processes running the ceiling at once (1: the one-core ceiling), and
    the rows per CPU second of one of them."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.map(_ceiling_worker, [(mar, texts, batch_size, seconds)] * processes)
    return sum(r for r, _ in results), statistics.median(c for _, c in results)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> tuple[str, int]:
    """(command name, RSS in kB) of a process, ("", 0) once it is gone."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return name, int(line.split()[1])
    except OSError:
        pass
    return "", 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


class PeakMemory:
    """Peak RSS of a job's driver process, of its JVM, and of the whole tree (Python workers included); and the
    CPU seconds each kind of process used (the last sample of each process)."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid, self.every = pid, every
        self.peak_kb = {"driver_python": 0, "jvm": 0, "tree": 0}
        self.cpu: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            _, driver = _status(self.pid)
            pids = _descendants(self.pid)
            others = [_status(pid) for pid in pids]
            jvm = sum(kb for name, kb in others if name == "java")
            sample = {"driver_python": driver, "jvm": jvm, "tree": driver + sum(kb for _, kb in others)}
            self.peak_kb = {k: max(v, sample[k]) for k, v in self.peak_kb.items()}
            for pid, (name, _) in zip([self.pid, *pids], [("driver", 0), *others], strict=True):
                seconds = _cpu_seconds(pid)
                if seconds:
                    kind = "driver_python" if pid == self.pid else "jvm" if name == "java" else "python_workers"
                    self.cpu[pid] = (kind, seconds)
            self._stop.wait(self.every)

    def cpu_seconds(self) -> dict[str, float]:
        totals = {"driver_python": 0.0, "jvm": 0.0, "python_workers": 0.0}
        for kind, seconds in self.cpu.values():
            totals[kind] += seconds
        return {f"cpu_seconds_{k}": round(v, 1) for k, v in totals.items()}

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def mb(self) -> dict[str, float]:
        return {f"peak_rss_{k}_mb": round(v / 1024, 1) for k, v in self.peak_kb.items()}


def scoring_stage(event_log: Path, slots: int) -> dict:
    """Where the job's time went, from Spark's event log: the scoring stage (the one with the most task time),
    its tasks (the first on each slot pays for the worker's imports and the model load) and the time before it."""
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
    later = ordered[slots:]
    steady = sum(t["rows"] for t in later) / sum(t["s"] for t in later) if later else 0.0
    return {
        "before_scoring_stage_seconds": round((stage_start[stage] - first_event) / 1000, 2),
        "scoring_stage_tasks": len(ordered),
        "scoring_task_seconds_median": round(statistics.median(t["s"] for t in ordered), 2),
        "first_task_per_slot_seconds": [round(t["s"], 2) for t in ordered[:slots]],
        "steady_rows_per_second_per_slot": round(steady, 1),
    }


def _median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def run_job(data: Path, workdir: Path, mar: Path, cores: int, variant: str, tag: str) -> dict:
    """One `python -m batch` run in a process of its own; its summary, timings and memory."""
    events = workdir / f"events-{tag}"
    events.mkdir()
    output = workdir / f"out-{tag}"
    command = [sys.executable, "-m", "batch", "--input", str(data), "--output", str(output), "--mar", str(mar)]
    command += ["--master", f"local[{cores}]", *VARIANTS[variant]]
    for conf in (
        "spark.eventLog.enabled=true",
        f"spark.eventLog.dir={events.as_uri()}",
        "spark.eventLog.compress=false",
        "spark.eventLog.rolling.enabled=false",
        "spark.ui.showConsoleProgress=false",
    ):
        command += ["--conf", conf]
    load = os.getloadavg()[0]
    with open(workdir / f"job-{tag}.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        with PeakMemory(proc.pid) as memory:
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} job failed: {(workdir / f'job-{tag}.log').read_text()[-3000:]}")
    summary = json.loads((output / "summary.json").read_text())
    shutil.rmtree(output)
    result = {
        "variant": variant,
        "rows": summary["rows"],
        "errors": summary["errors"],
        "job_seconds": summary["seconds"],
        "job_rows_per_second": summary["rows_per_second"],
        **memory.mb(),
        **memory.cpu_seconds(),
        **scoring_stage(events, cores),
        "load_average_1min_at_start": round(load, 2),
    }
    logger.info("%s", json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the reviews to repeat (JSONL, gzipped)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=100_000, help="a smaller input, to compare memory")
    parser.add_argument("--mar", type=Path, default=ROOT / "model_store" / "sentiment.mar")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    parser.add_argument("--variants", default="tuned", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant, alternating")
    parser.add_argument("--ceiling-rows", type=int, default=10_000, help="distinct reviews the ceiling cycles through")
    parser.add_argument("--ceiling-seconds", type=float, default=8.0, help="each measure of the ceiling")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    texts = read_texts(args.data, args.ceiling_rows)
    workdir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        ceilings = functools.partial(parallel_ceiling, args.mar, texts, args.batch_size, seconds=args.ceiling_seconds)
        per_core, per_cpu, joints = [], [], []

        def measure_ceilings() -> None:
            rate, cpu_rate = ceilings(processes=1)
            per_core.append(rate)
            per_cpu.append(cpu_rate)
            joints.append(ceilings(processes=cores)[0])
            logger.info("ceiling: %.0f rows/s on one core; %d processes at once: %.0f", rate, cores, joints[-1])

        small = write_input(args.data, args.memory_rows, workdir / "small.jsonl")
        memory_run = run_job(small, workdir, args.mar, cores, variants[0], "small")
        small.unlink()
        large = write_input(args.data, args.rows, workdir / "large.jsonl")
        measure_ceilings()
        runs = []
        for round_ in range(args.rounds):
            for variant in variants:
                run = run_job(large, workdir, args.mar, cores, variant, f"{variant}-{round_}")
                measure_ceilings()
                beside = statistics.mean(per_core[-2:])  # the ceilings right before and right after this job
                joint = statistics.mean(joints[-2:])
                cpu_beside = statistics.mean(per_cpu[-2:])
                job_cpu = sum(v for k, v in run.items() if k.startswith("cpu_seconds"))
                run["ceiling_beside_rows_per_second_per_core"] = round(beside, 1)
                run["ceiling_processes_at_once_beside_rows_per_second"] = round(joint, 1)
                run["ratio_to_ceiling_beside"] = round(run["job_rows_per_second"] / (beside * cores), 3)
                run["ratio_to_processes_at_once_beside"] = round(run["job_rows_per_second"] / joint, 3)
                # the ceiling's CPU seconds for these rows over the job's: what share of the job's CPU is scoring
                run["cpu_efficiency_beside"] = round(run["rows"] / cpu_beside / job_cpu, 3)
                runs.append(run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ceiling_per_core = statistics.median(per_core)
    ceiling_per_cpu = statistics.median(per_cpu)
    by_variant = {}
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        by_variant[variant] = {
            "job_rows_per_second_median": round(statistics.median(r["job_rows_per_second"] for r in mine), 1),
            "ratio_to_ceiling": _median_of(mine, "ratio_to_ceiling_beside"),
            "ratios": [r["ratio_to_ceiling_beside"] for r in mine],
            "ratio_to_processes_at_once": _median_of(mine, "ratio_to_processes_at_once_beside"),
            "cpu_efficiency": [r["cpu_efficiency_beside"] for r in mine],
        }
    headline = by_variant[variants[0]]
    large_runs = [r for r in runs if r["variant"] == variants[0]]
    result = {
        "rows": args.rows,
        "master": f"local[{cores}]",
        "cores": cores,
        "batch_size": args.batch_size,
        "ceiling_rows_per_second_per_core": round(ceiling_per_core, 1),
        "ceiling_rows_per_second_per_core_each_measure": [round(x, 1) for x in per_core],
        "ceiling_rows_per_cpu_second": round(ceiling_per_cpu, 1),
        "ceiling_rows_per_cpu_second_each_measure": [round(x, 1) for x in per_cpu],
        "ceiling_rows_per_second": round(ceiling_per_core * cores, 1),
        "ceiling_processes_at_once_rows_per_second": round(statistics.median(joints), 1),
        "ceiling_processes_at_once_rows_per_second_each_measure": [round(x, 1) for x in joints],
        "variant": variants[0],
        "job_rows_per_second": headline["job_rows_per_second_median"],
        "ratio_to_ceiling": headline["ratio_to_ceiling"],
        "ratio_to_processes_at_once": headline["ratio_to_processes_at_once"],
        "by_variant": by_variant,
        "driver_memory": {
            f"{args.memory_rows}_rows": {k: v for k, v in memory_run.items() if k.startswith("peak_rss")},
            f"{args.rows}_rows": {k: max(r[k] for r in large_runs) for k in memory_run if k.startswith("peak_rss")},
        },
        "runs": [memory_run, *runs],
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
