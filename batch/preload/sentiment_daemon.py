"""Spark's Python daemon for the local-master tuning: why it exists and its switch are batch/local.py's (which
puts this directory on the daemon's path); the comments below say why each step is here.

Only third-party libraries are imported here: the project's own code still comes to the workers from the archive
(SparkContext.addPyFile), so that what is deployed is what scores.
"""

import gc
import os
import sys

SPARK_ARCHIVES = ("pyspark", "py4j", "spark-")  # what Spark's worker path holds of its own


# Spark puts its pyspark.zip, py4j zip and spark-core jar first on the workers' path. Modules imported from a zip
# are compiled from source in every process (no bytecode cache), and every task's importlib.invalidate_caches()
# re-reads the directory of each zip on the path in pure Python (the jar alone holds thousands of entries).
# In local mode the same pyspark and py4j are installed in this environment, with their bytecode, so those
# archives leave the path.
_archives = [p for p in sys.path if p.endswith((".zip", ".jar")) and os.path.basename(p).startswith(SPARK_ARCHIVES)]
sys.path[:] = [p for p in sys.path if p not in _archives]
for _archive in _archives:
    sys.path_importer_cache.pop(_archive, None)

import pandas  # noqa: E402, F401
import pyarrow  # noqa: E402, F401
import tokenizers  # noqa: E402, F401
import torch  # noqa: E402, F401
import yaml  # noqa: E402, F401
from pyspark import daemon, worker  # noqa: E402, F401

# pyspark.daemon runs gc.collect() in a worker after every task, while Spark waits for the worker: scanning
# these libraries' objects each time is work on every task. They live as long as the process: freezing them
# leaves them out of every collection (and out of the copy-on-write page faults scanning causes).
gc.freeze()

if __name__ == "__main__":
    daemon.manager()
