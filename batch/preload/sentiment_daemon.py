"""Spark's Python daemon, with the scoring stack's libraries imported once before it forks the workers.

pyspark.daemon forks every Python worker from one process, so what that process has imported, each worker has
for free: torch, transformers, pandas, pyarrow and pyspark's own worker take ~4 s of CPU to import, which every
worker would otherwise pay on its first task, on the cores the scoring needs. Only third-party libraries are
imported here: the project's own code still comes to the workers from the archive (SparkContext.addPyFile),
so that what is deployed is what scores. Used in local mode (batch/session.py puts this directory on the
daemon's path).
"""

import os
import sys

os.environ.setdefault("USE_TORCH", "0")  # as model/text.py: transformers only loads the tokenizer
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# Spark puts its pyspark.zip and py4j zip first on the workers' path. Modules imported from a zip are compiled
# from source in every process (no bytecode cache), and each task's importlib.invalidate_caches() re-reads the
# zip's directory once per package imported from it. In local mode the same pyspark is installed in this
# environment with its bytecode: the zips go to the end of the path, so that pyspark comes from there.
# (`make bench-batch` medians of 3 alternating runs: job 24.1 -> 22.5 s.)
_zips = [p for p in sys.path if p.endswith(".zip") and os.path.basename(p).startswith(("pyspark", "py4j"))]
sys.path[:] = [p for p in sys.path if p not in _zips] + _zips

import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import torch  # noqa: E402, F401
import transformers.models.auto.tokenization_auto  # noqa: E402, F401
import yaml  # noqa: E402, F401
from pyspark import daemon, worker  # noqa: E402, F401
from pyspark.ml import functions  # noqa: E402, F401

if __name__ == "__main__":
    daemon.manager()
