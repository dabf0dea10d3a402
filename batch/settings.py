"""The batch job's settings: one frozen dataclass, built by the CLI, the tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batch import storage
from batch.errors import UsageError
from batch.keys import KEY_TYPES

FORMATS = ("jsonl", "csv", "parquet")


@dataclass(frozen=True)
class JobSettings:
    input: str  # a URI (batch.storage): file://, hdfs://, s3a://...; a path without scheme is a local path
    output: str  # a directory: predictions.parquet/, predictions.jsonl/ (on request) and summary.json
    mar: Path = Path("model_store/sentiment.mar")  # read by the driver: a local file
    input_format: str = "auto"  # auto: from the file name (.jsonl, .jsonl.gz, .json, .csv, .parquet)
    key_column: str = "key"  # the online request's key field: one default for online, batch, edge and evaluation
    text_column: str = "text"
    jsonl: bool = False  # also write predictions.jsonl/
    batch_size: int = 256  # reviews per tokenizer call and forward pass
    partitions: int = 0  # 0: at least 4 tasks per core, so that a single gzipped file still uses every core
    key_type: str = "json"  # JSONL: the key column's type (batch.keys); CSV and Parquet keys keep their own

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", storage.uri(self.input))
        object.__setattr__(self, "output", storage.uri(self.output))
        object.__setattr__(self, "mar", Path(self.mar))
        if self.input_format not in ("auto", *FORMATS):
            raise UsageError(f"input format must be auto or one of {FORMATS}, got {self.input_format!r}")
        if self.batch_size < 1 or self.partitions < 0:
            raise UsageError("--batch-size must be >= 1 and --partitions >= 0")
        if self.key_type not in KEY_TYPES:
            raise UsageError(f"--key-type must be one of {tuple(KEY_TYPES)}, got {self.key_type!r}")

    def check_paths(self) -> None:
        """Before Spark starts: a mistyped local path is said at once, not after seconds of start-up."""
        local = storage.local_path(self.input)
        if local is not None and not local.exists():
            raise UsageError(f"{local} does not exist (--input)")
        if not self.mar.is_file():
            raise UsageError(f"{self.mar} is missing: build it with `make archive` (--mar)")
        if self.key_type != "json" and self.format != "jsonl":
            raise UsageError("--key-type is for JSONL input: CSV and Parquet key columns keep their own type")

    @property
    def format(self) -> str:
        return self.input_format if self.input_format != "auto" else format_of(storage.name(self.input))


@dataclass(frozen=True)
class SparkSettings:
    master: str | None = "local[*]"  # None: the one spark-submit was given
    app_name: str = "sentiment-batch"
    conf: dict[str, str] = field(default_factory=dict)  # extra spark.* settings (--conf k=v)
    local_tuning: bool | None = None  # batch.local: None tunes local masters only


def format_of(path: str | Path) -> str:
    """The input format from a file or directory name."""
    name = storage.name(str(path)).lower()
    for suffix in (".gz", ".bz2", ".zst", ".snappy"):
        name = name.removesuffix(suffix)
    for fmt, suffixes in (("jsonl", (".jsonl", ".json", ".ndjson")), ("csv", (".csv",)), ("parquet", (".parquet",))):
        if name.endswith(suffixes):
            return fmt
    raise UsageError(f"cannot tell the format of {path}: pass --format jsonl|csv|parquet")
