"""Batch serving on Spark: the deployed .mar archive and the handler's own functions score a dataset offline.

    python -m batch --input reviews.jsonl.gz --output predictions/ [--master spark://host:7077]

Modules: settings (job settings), session (a loopback-bound SparkSession), sources (JSONL/CSV/Parquet readers),
keys (JSONL key types), mar (unpack the .mar once per Python worker, ship it and the code), scoring (pure:
values or Arrow batches -> prediction columns), udf (the job's mapInArrow scoring and the `sentiment` SQL
function), output (atomic writes), summary, progress, job (the pipeline), cli, bench; for local masters, cds
(a class-data-sharing archive for the JVM) and preload/ (the Python daemon that imports the libraries once
before forking workers).
"""
