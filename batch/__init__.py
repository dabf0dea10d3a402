"""Batch serving on Spark: the deployed .mar archive and the handler's own functions score a dataset offline.

    python -m batch --input reviews.jsonl.gz --output predictions/ [--master spark://host:7077]

Modules: settings (job settings), storage (input and output URIs, Hadoop filesystem operations), session (a
loopback-bound SparkSession), sources (JSONL/CSV/Parquet readers), keys (JSONL keys), mar (the .mar unpacked
once per content, shipped with the code), scoring (pure: values or Arrow batches -> prediction columns, with
the handler's checks), udf (the job's mapInArrow scoring and the `sentiment` SQL function), lock (one run per
output), output (atomic writes), summary, progress, job (the pipeline), cli; local (tuning for local masters
only: preload/, the Python daemon that imports the libraries once before forking workers, and the JVM's JIT).
"""
