"""Tuning for a local master only, behind one switch (SparkSettings.local_tuning, `--no-local-tuning`).

In local mode the driver's JVM is the executor and shares this machine's cores with the Python workers. Two
settings pay for themselves there on inputs of a million rows (bench/batch_job.py measures them side by side):

- the Python workers fork from a daemon that has imported torch, tokenizers, pyarrow and pandas once and
  frozen those objects out of the garbage collector (preload/sentiment_daemon.py); every worker would otherwise
  import them itself, and pyspark's collection after every task would scan them each time;
- the JVM stops at the C1 JIT compiler: its work per review is small, and C2 would spend core-seconds compiling
  on the cores the scoring needs.

On a cluster the executors are other machines' JVMs and Python workers, started by Spark's own settings: none
of this applies, and the switch is off for any master that is not local. The gain is small but steady: 0.840 of
the in-process ceiling against 0.813 without it on 1,000,000 rows (docs/performance.md, Local tuning); the
switch is documented in docs/batch.md.
"""

from __future__ import annotations

import os
from pathlib import Path

PRELOAD = Path(__file__).resolve().parent / "preload"
JVM_OPTIONS = "-XX:TieredStopAtLevel=1"


def applies(master: str | None, switch: bool | None) -> bool:
    """Whether to tune: as the switch says, or (unset) for local masters only."""
    if switch is not None:
        return switch
    return master is not None and master.startswith("local")


def conf() -> dict[str, str]:
    """The Spark settings of a tuned local run."""
    return {
        "spark.driver.extraJavaOptions": JVM_OPTIONS,
        "spark.python.daemon.module": "sentiment_daemon",
        "spark.executorEnv.PYTHONPATH": os.pathsep.join(filter(None, (str(PRELOAD), os.environ.get("PYTHONPATH")))),
    }
