"""Spark's Python daemon, with the scoring stack's libraries imported once before it forks the workers.

pyspark.daemon forks every Python worker from one process, so what that process has imported, each worker has
for free: torch, transformers, pandas, pyarrow and pyspark's own worker take ~4 s of CPU to import, which every
worker would otherwise pay on its first task, on the cores the scoring needs. Only third-party libraries are
imported here: the project's own code still comes to the workers from the archive (SparkContext.addPyFile),
so that what is deployed is what scores. Used in local mode (batch/session.py puts this directory on the
daemon's path).
"""

import os

os.environ.setdefault("USE_TORCH", "0")  # as model/text.py: transformers only loads the tokenizer
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import torch  # noqa: E402, F401
import transformers.models.auto.tokenization_auto  # noqa: E402, F401
import yaml  # noqa: E402, F401
from pyspark import daemon, worker  # noqa: E402, F401
from pyspark.ml import functions  # noqa: E402, F401

if __name__ == "__main__":
    daemon.manager()
