"""The evaluation on Spark: read captures, batch outputs and labels; join by key; aggregate per window x model x
version.

The same rules as evaluation.reference, as DataFrame operations. Only aggregates reach the driver: counts per
window x model x version x bin, and one AUC per group (computed from per-score counts with a window function on
the executors), so the driver's memory does not grow with the input. Keys are compared by evaluation.keys.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

from evaluation import feedback
from evaluation.keys import canonical_column, json_text_column, typed_column
from evaluation.metrics import EPS, Stats
from evaluation.reference import AUDITED_PREFIX, DEVICE_PREFIX, ArchiveReference, new_stats
from model.baseline import SCORE_BINS
from model.ece import ECE_BINS
from model.logit import POSITIVE_FROM  # the label rule, as a column expression: Spark cannot call it per row

logger = logging.getLogger(__name__)
CORRUPT = "_corrupt_record"
CAPTURE_SCHEMA = StructType(
    [
        StructField("prediction_id", StringType()),
        StructField("key", StringType()),  # a number is read as its JSON text: evaluation.keys decides
        StructField("model_name", StringType()),
        StructField("model_version", StringType()),
        StructField("time", StringType()),
        StructField("positive_review_probability", DoubleType()),
        StructField("positive_review_logits", DoubleType()),
        StructField("tokens", LongType()),
        StructField("unknown_token_fraction", DoubleType()),
        StructField("error", StringType()),
        StructField(
            "audit",  # the device's answer to an audited review: see with_audit_rows
            StructType([StructField("phase1_probability", DoubleType()), StructField("phase1_version", StringType())]),
        ),
        StructField(CORRUPT, StringType()),
    ]
)
LABEL_SCHEMA = StructType(
    [
        StructField("key", StringType()),
        StructField("label", StringType()),
        StructField("labeled_at", StringType()),
        StructField(CORRUPT, StringType()),
    ]
)
PREDICTION_COLUMNS = (
    "prediction_id",
    "key",
    "model_name",
    "model_version",
    "t",
    "positive_review_probability",
    "positive_review_logits",
    "tokens",
    "unknown_token_fraction",
    "error",
)


@dataclass(frozen=True)
class Inputs:
    captures: Path | None  # the handler's capture directory
    feedback: Path | None  # label files
    batch_outputs: tuple[Path, ...] = ()  # batch job output directories (predictions.parquet inside)
    batch_key: str = "key"  # the key column of batch outputs whose summary.json does not name it
    model_name: str | None = None  # only this model's predictions; None: every model's


Group = tuple[int, str, str]  # window start, model name, model version


@dataclass
class Aggregates:
    stats: dict[Group, Stats]
    counts: dict


def captures(spark: SparkSession, directory: Path) -> tuple[DataFrame, Column]:
    """Capture records as prediction rows, and a column that is 1 for a torn line (to be summed)."""
    frame = (
        spark.read.schema(CAPTURE_SCHEMA)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("recursiveFileLookup", "true")  # model=/version=/hour= are for people and retention, not columns
        .option("pathGlobFilter", "*.jsonl")
        .json(str(directory))
    )
    # records written before the model's name was a field of its own carry it in their partition's path
    from_path = F.regexp_extract(F.input_file_name(), r"/model=([^/]+)/version=", 1)
    frame = frame.withColumns(
        {
            "t": F.to_timestamp("time").cast("double"),
            "key": canonical_column(F.col("key")),
            "model_name": F.coalesce(F.col("model_name"), F.url_decode(from_path)),
        }
    )
    return frame, F.when(F.col(CORRUPT).isNotNull(), 1).otherwise(0)


def with_audit_rows(frame: DataFrame) -> DataFrame:
    """Capture rows, each audited one followed by the two predictions it adds (evaluation.reference.audit_rows):
    the device's answer as `device-<phase1_version>` and the server's again as `audited-<version>`.

    Generated from each row (explode), so the capture files are read once."""
    columns = [*PREDICTION_COLUMNS, CORRUPT]
    p, device_version = F.col("audit.phase1_probability"), F.col("audit.phase1_version")
    clipped = F.least(F.greatest(p, F.lit(EPS)), F.lit(1 - EPS))
    device = {
        "model_version": F.concat(F.lit(DEVICE_PREFIX), device_version),
        "positive_review_probability": p,
        "positive_review_logits": F.log(clipped) - F.log(F.lit(1.0) - clipped),
        "error": F.lit(None).cast("string"),
    }
    audited = {"model_version": F.concat(F.lit(AUDITED_PREFIX), F.col("model_version"))}

    def row(changes: dict[str, Column]) -> Column:
        return F.struct(*[changes.get(c, F.col(c)).alias(c) for c in columns])

    is_audited = p.isNotNull() & device_version.isNotNull() & F.col(CORRUPT).isNull()
    rows = F.array(row({}), F.when(is_audited, row(device)), F.when(is_audited, row(audited)))
    return frame.select(F.explode(rows).alias("row")).where(F.col("row").isNotNull()).select("row.*")


def batch_key(frame: DataFrame, summary: dict, default_column: str) -> Column:
    """A batch output's key column as canonical text: JSON text (the job's default for JSONL input, and what an
    output without the summary's key_type holds in a string column) or a typed column."""
    column = summary.get("key_column") or default_column
    key_type = summary.get("key_type") or ("json" if frame.schema[column].dataType == StringType() else "typed")
    return json_text_column(F.col(column)) if key_type == "json" else typed_column(F.col(column))


def batch_outputs(spark: SparkSession, directories: Iterable[Path], key: str) -> DataFrame | None:
    """Batch job outputs as prediction rows: the time of each is its run's (summary.json's modification time), the
    model and the key column are the ones its summary.json names (sentiment and `key` for an older output)."""
    frames = []
    for directory in directories:
        summary_file = Path(directory) / "summary.json"
        when = summary_file.stat().st_mtime
        summary = json.loads(summary_file.read_text())
        frame = spark.read.parquet(str(Path(directory) / "predictions.parquet"))
        column = summary.get("key_column") or key
        frames.append(
            frame.select(
                F.concat(F.lit(f"batch:{Path(directory).name}:"), F.col(column).cast("string")).alias("prediction_id"),
                batch_key(frame, summary, key).alias("key"),
                F.lit(summary.get("model_name") or "sentiment").alias("model_name"),
                "model_version",
                F.lit(when).alias("t"),
                "positive_review_probability",
                "positive_review_logits",
                F.lit(None).cast("long").alias("tokens"),  # the batch output has no token count
                "unknown_token_fraction",
                "error",
            )
        )
    if not frames:
        return None
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def labels(spark: SparkSession, directory: Path | None) -> DataFrame | None:
    """Every label row: key (text), label (0/1 or null), order time (labeled_at, else the file's time), file, row,
    and `bad`: why the row cannot be used (null when it can)."""
    paths = feedback.files(directory) if directory is not None else []
    if not paths:
        return None
    # a map literal, not a DataFrame built from Python rows: that would start Python workers for nothing
    file_times = F.create_map(*[F.lit(x) for p in paths for x in (p.resolve().as_uri(), p.stat().st_mtime)])
    frames = []
    # Parquet files are read one by one: each may type its key column its own way (int64 in one, string in
    # another), which one read of them all refuses; their keys meet as canonical text below
    groups = [("jsonl", [str(p) for p in paths if feedback.format_of(p) == "jsonl"]),
              ("csv", [str(p) for p in paths if feedback.format_of(p) == "csv"])]  # fmt: skip
    groups += [("parquet", [str(p)]) for p in paths if feedback.format_of(p) == "parquet"]
    for fmt, chosen in groups:
        if not chosen:
            continue
        if fmt == "jsonl":
            frame = spark.read.schema(LABEL_SCHEMA).option("columnNameOfCorruptRecord", CORRUPT).json(chosen)
            frame = frame.withColumn("broken", F.col(CORRUPT).isNotNull())
        elif fmt == "csv":
            frame = spark.read.option("header", "true").csv(chosen)
            frame = frame.withColumn("broken", F.lit(False))
        else:
            frame = spark.read.parquet(*chosen).withColumn("broken", F.lit(False))
        for name in ("key", "label", "labeled_at"):
            if name not in frame.columns:
                frame = frame.withColumn(name, F.lit(None).cast("string"))
        frames.append(
            frame.select(
                canonical_column(F.col("key").cast("string")).alias("key"),
                F.col("label").cast("string").alias("label_text"),
                F.col("labeled_at").cast("string").alias("labeled_at"),
                "broken",
                F.input_file_name().alias("file"),
                F.monotonically_increasing_id().alias("row"),
            )
        )
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    frame = frame.withColumn("file_time", file_times[F.col("file")])
    text = F.lower(F.trim(F.col("label_text")))
    number = F.col("label_text").try_cast("double")
    label = (
        F.when(text.isin(*feedback.POSITIVE), 1)
        .when(text.isin(*feedback.NEGATIVE), 0)
        .when(number == 1.0, 1)
        .when(number == 0.0, 0)
    )
    given = F.col("labeled_at").isNotNull() & (F.trim("labeled_at") != "")
    at = F.coalesce(F.col("labeled_at").try_cast("double"), F.try_to_timestamp(F.col("labeled_at")).cast("double"))
    key = F.when(F.trim("key") != "", F.col("key"))
    bad = (
        F.when(F.col("broken"), "unreadable row")
        .when(given & at.isNull(), "unreadable labeled_at")
        .when(key.isNull(), "missing key")
        .when(label.isNull(), "unreadable label")
    )
    return frame.select(
        key.alias("key"),
        label.alias("label"),
        F.coalesce(at, F.col("file_time")).alias("order_time"),
        "file",
        "row",
        bad.alias("bad"),
    )


def _case(by_model: dict[tuple[str, str], Column], default: Column) -> Column:
    """The expression of each row's (model, version), `default` for the others."""
    name, version, out = F.col("model_name"), F.col("model_version"), None
    for (m, v), expr in by_model.items():
        this = (name == m) & (version == v)
        out = F.when(this, expr) if out is None else out.when(this, expr)
    return default if out is None else out.otherwise(default)


def _bin(x: Column, edges: list[float]) -> Column:
    """How many edges are <= x: model.baseline.bin_of as a column."""
    return sum((F.when(x >= F.lit(float(e)), 1).otherwise(0) for e in edges), F.lit(0))


def _expected_correct(models: dict[tuple[str, str], ArchiveReference]) -> Column:
    logit = F.col("positive_review_logits")
    by_model = {  # model.platt.Calibration.probability as a column: held to it by tests/evaluation/test_job.py
        v: F.lit(1.0) / (F.lit(1.0) + F.exp(-(F.lit(m.calibration.slope) * logit + F.lit(m.calibration.intercept))))
        for v, m in models.items()
        if m.calibration is not None
    }
    p = _case(by_model, F.col("positive_review_probability"))
    return F.when(logit >= POSITIVE_FROM, p).otherwise(F.lit(1.0) - p)


def aggregate(
    spark: SparkSession, inputs: Inputs, window_s: int, models: dict[tuple[str, str], ArchiveReference]
) -> Aggregates:
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # label times without a zone are UTC, as in the reference
    frames, torn = [], F.lit(0)
    if inputs.captures is not None and Path(inputs.captures).exists():
        frame, torn = captures(spark, inputs.captures)
        frames.append(with_audit_rows(frame).withColumn("torn", torn))
    batch = batch_outputs(spark, inputs.batch_outputs, inputs.batch_key)
    if batch is not None:
        frames.append(batch.withColumn("torn", F.lit(0)))
    if not frames:
        return Aggregates({}, {"predictions": 0, "torn_lines": 0})
    predictions = frames[0].select(*PREDICTION_COLUMNS, "torn")
    for frame in frames[1:]:
        predictions = predictions.unionByName(frame.select(*PREDICTION_COLUMNS, "torn"))
    if inputs.model_name is not None:  # torn lines have no model: they are counted whichever model is asked for
        predictions = predictions.where((F.col("model_name") == inputs.model_name) | (F.col("torn") == 1))
    predictions = predictions.withColumn("window", (F.floor(F.col("t") / window_s) * window_s).cast("long"))
    predictions = predictions.persist()
    try:
        return _aggregate(spark, predictions, inputs, window_s, models)
    finally:
        predictions.unpersist()


def _aggregate(
    spark: SparkSession,
    predictions: DataFrame,
    inputs: Inputs,
    window_s: int,
    models: dict[tuple[str, str], ArchiveReference],
) -> Aggregates:
    """Seven Spark jobs over the cached predictions, each returning a handful of rows per window x model x
    version."""
    group = ["window", "model_name", "model_version"]
    answered_row = (F.col("torn") == 0) & F.col("error").isNull()
    keyed_row = answered_row & F.col("key").isNotNull() & (F.trim("key") != "")
    p = F.col("positive_review_probability")
    stats: dict[Group, Stats] = {}

    def at(row) -> Stats:
        model = (row["model_name"], row["model_version"])
        return stats.setdefault((int(row["window"]), *model), new_stats(models.get(model)))

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    # torn lines have no window or version: they form a group of their own, counted and skipped
    traffic = predictions.groupBy(*group).agg(
        count(F.col("torn") == 0).alias("predictions"),
        count(F.col("torn") == 1).alias("torn"),
        count((F.col("torn") == 0) & F.col("error").isNotNull()).alias("errors"),
        count(answered_row & (F.col("positive_review_logits") >= POSITIVE_FROM)).alias("pos"),
        count(keyed_row).alias("keyed_answered"),
        F.sum(F.when(answered_row, _expected_correct(models))).alias("estimated"),
        F.sum(F.when(answered_row, F.pow(_expected_correct(models), 2))).alias("estimated_sq"),
    )
    counts: dict = {"predictions": 0, "torn_lines": 0}
    keyed_answered = 0
    for row in traffic.collect():
        counts["torn_lines"] += row["torn"]
        counts["predictions"] += row["predictions"]
        keyed_answered += row["keyed_answered"]
        if row["predictions"]:
            s = at(row)
            s.predictions, s.errors = row["predictions"], row["errors"]
            s.predicted_positive, s.estimated_correct_sum = row["pos"], row["estimated"] or 0.0
            s.estimated_correct_sq_sum = row["estimated_sq"] or 0.0

    answered = predictions.where(answered_row)
    with_baseline = {v: m.baseline for v, m in models.items() if m.baseline is not None}
    fine = F.least(F.floor(p * SCORE_BINS), F.lit(SCORE_BINS - 1))
    kinds = [F.struct(F.lit("fine").alias("kind"), fine.alias("bin"))]
    for kind, column, edges in (
        ("score", p, "score_edges"),
        ("token", F.col("tokens").cast("double"), "token_edges"),
        ("unknown", F.col("unknown_token_fraction"), "unknown_edges"),
    ):
        binned = _case({m: _bin(column, b[edges]) for m, b in with_baseline.items()}, F.lit(None))
        kinds.append(F.struct(F.lit(kind).alias("kind"), F.when(column.isNotNull(), binned).alias("bin")))
    bins = (
        answered.select(*group, F.explode(F.array(*kinds)).alias("b"))
        .where(F.col("b.bin").isNotNull())
        .groupBy(*group, F.col("b.kind").alias("kind"), F.col("b.bin").alias("bin"))
        .count()
    )
    field_of = {"fine": "score_fine", "score": "score_bins", "token": "token_bins", "unknown": "unknown_bins"}
    for row in bins.collect():
        getattr(at(row), field_of[row["kind"]])[int(row["bin"])] += row["count"]

    label_rows = labels(spark, inputs.feedback)
    counts.update(label_rows=0, bad_label_rows={})
    cached = [] if label_rows is None else [label_rows.persist()]  # read once: the join and the row counts
    try:
        by_key = _by_key(predictions.where(keyed_row), label_rows).persist()
        cached.append(by_key)
        counts.update(_key_counts(by_key, keyed_answered))
        _joined(by_key, group, models, at)
        for row in [] if label_rows is None else label_rows.groupBy("bad").count().collect():
            counts["label_rows"] += row["count"]
            if row["bad"] is not None:  # null: the usable rows
                counts["bad_label_rows"][row["bad"]] = row["count"]
    finally:
        for frame in cached:
            frame.unpersist()
    return Aggregates(stats, counts)


PREDICTION = ("t", "prediction_id", "window", "positive_review_probability", "positive_review_logits")


def _by_key(keyed: DataFrame, label_rows: DataFrame | None) -> DataFrame:
    """One row per key x model x version that predicted it, with the key's latest label; and one row per labeled
    key that no prediction has (`prediction_id` null: an unmatched label).

    Each side is reduced by a plain aggregation (the latest prediction of a key x model x version is the largest
    (time, id) struct, the latest label the largest (time, file, row) one), which Spark combines map-side: a key
    sent a million times costs what a million keys cost, never one task holding all of its rows."""
    latest = keyed.groupBy("key", "model_name", "model_version").agg(
        F.max(F.struct(*PREDICTION)).alias("pred")  # the same record read twice is one prediction
    )
    lab_type = "struct<order_time:double,file:string,row:bigint,label:int>"
    if label_rows is None:
        by_label = keyed.sparkSession.createDataFrame(
            [], f"key string, latest {lab_type}, labels bigint, low int, high int"
        )
    else:
        good = label_rows.where(F.col("bad").isNull())
        by_label = good.groupBy("key").agg(
            F.max(F.struct("order_time", "file", "row", F.col("label").cast("int").alias("label"))).alias("latest"),
            F.count("*").alias("labels"),
            F.min(F.col("label").cast("int")).alias("low"),
            F.max(F.col("label").cast("int")).alias("high"),
        )
    return latest.join(by_label, "key", "full_outer").select(
        "key",
        "model_name",
        "model_version",
        "pred.*",
        F.col("latest.label").alias("label"),
        "labels",
        (F.col("low") != F.col("high")).alias("conflicting"),
    )


def _key_counts(by_key: DataFrame, keyed_answered: int) -> dict:
    """The join's counts (report.json's `inputs`), in one job over the joined rows."""
    labeled = F.col("label").isNotNull()
    predicted = F.col("prediction_id").isNotNull()
    # a labeled key appears once per model x version that predicted it: its label counts are taken once
    first = F.row_number().over(Window.partitionBy("key").orderBy("model_name", "model_version")) == 1
    row = (
        by_key.withColumn("first", first)
        .agg(
            F.count(F.when(predicted, 1)).alias("joined"),
            F.count(F.when(labeled & F.col("first"), 1)).alias("labeled_keys"),
            F.count(F.when((F.col("labels") > 1) & F.col("first"), 1)).alias("duplicate_label_keys"),
            F.count(F.when(F.col("conflicting") & F.col("first"), 1)).alias("conflicting_label_keys"),
            F.count(F.when(labeled & ~predicted, 1)).alias("unmatched_label_keys"),
        )
        .first()
    )
    counts = {name: row[name] or 0 for name in row.asDict() if name != "joined"}
    counts["retries"] = keyed_answered - (row["joined"] or 0)
    return counts


def _joined(by_key: DataFrame, group: list[str], models: dict[tuple[str, str], ArchiveReference], at) -> None:
    """The quality sums and calibration bins (one job), and the exact AUC (another), of the deduplicated keyed
    predictions per window x model x version."""
    joined = by_key.where(F.col("prediction_id").isNotNull())
    p = F.col("positive_review_probability")
    y = F.col("label")
    predicted = F.col("positive_review_logits") >= POSITIVE_FROM  # model.logit.is_positive
    clipped = F.least(F.greatest(p, F.lit(EPS)), F.lit(1 - EPS))

    def count(condition: Column) -> Column:
        return F.sum(F.when(condition, 1).otherwise(0))

    ece_bin = F.least(F.floor(p * ECE_BINS), F.lit(ECE_BINS - 1)).alias("bin")
    quality = joined.groupBy(*group, ece_bin).agg(
        F.count("*").alias("distinct_keys"),
        count(y.isNotNull()).alias("labeled"),
        count(predicted & (y == 1)).alias("tp"),
        count(predicted & (y == 0)).alias("fp"),
        count(~predicted & (y == 0)).alias("tn"),
        count(~predicted & (y == 1)).alias("fn"),
        F.sum(F.when(y == 1, -F.log(clipped)).when(y == 0, -F.log(F.lit(1.0) - clipped))).alias("log_loss"),
        F.sum(F.when(y.isNotNull(), (p - y) * (p - y))).alias("brier"),
        F.sum(F.when(y.isNotNull(), _expected_correct(models))).alias("estimated"),
        F.sum(F.when(y.isNotNull(), p)).alias("p"),
        F.sum(y).alias("y"),
    )
    for row in quality.collect():
        s, b = at(row), int(row["bin"])
        s.distinct_keys += row["distinct_keys"]
        s.labeled += row["labeled"]
        s.tp, s.fp, s.tn, s.fn = s.tp + row["tp"], s.fp + row["fp"], s.tn + row["tn"], s.fn + row["fn"]
        s.log_loss_sum += row["log_loss"] or 0.0
        s.brier_sum += row["brier"] or 0.0
        s.estimated_labeled_sum += row["estimated"] or 0.0
        s.ece_count[b], s.ece_prob_sum[b], s.ece_label_sum[b] = row["labeled"], row["p"] or 0.0, row["y"] or 0
    labeled = joined.where(y.isNotNull())
    per_score = labeled.groupBy(*group, p.alias("p")).agg(count(y == 1).alias("pos"), count(y == 0).alias("neg"))
    below = Window.partitionBy(*group).orderBy("p").rowsBetween(Window.unboundedPreceding, -1)
    auc = (
        per_score.withColumn("below", F.coalesce(F.sum("neg").over(below), F.lit(0)))
        .groupBy(*group)
        .agg(
            F.sum(F.col("pos") * (F.col("below") + F.lit(0.5) * F.col("neg"))).alias("u"),
            F.sum("pos").alias("pos"),
            F.sum("neg").alias("neg"),
        )
    )
    for row in auc.collect():
        if row["pos"] and row["neg"]:
            at(row).auc = row["u"] / (row["pos"] * row["neg"])
