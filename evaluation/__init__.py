"""Continued Model Evaluation: captured predictions joined with ground truth by key, quality tracked over time.

    python -m evaluation run [--captures captures/] [--feedback feedback/] [--window 1d]   # make evaluate
    python -m evaluation label KEY positive|negative [--feedback feedback/]                # append one label

Modules: captures (read the handler's capture files in plain Python), feedback (label files, their rules, the
label command), settings, metrics (pure: sufficient statistics -> metrics, Wilson intervals, drift tests),
reference (the whole evaluation in plain Python: the specification), models (each version's baseline and
calibration from its archive), job (the same on Spark: read, join, aggregate), alerts (rules in alerts.yaml),
report (the run directory: metrics.parquet, report.json, alerts.json, report.html), pipeline (one run), cli.
"""
