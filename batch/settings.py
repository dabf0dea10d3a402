"""The batch job's settings: one frozen dataclass, built by the CLI, the tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from batch.errors import UsageError

FORMATS = ("jsonl", "csv", "parquet")


@dataclass(frozen=True)
class JobSettings:
    input: Path
    output: Path  # a directory: predictions.parquet/, predictions.jsonl/ (on request) and summary.json
    mar: Path = Path("model_store/sentiment.mar")
    input_format: str = "auto"  # auto: from the file name (.jsonl, .jsonl.gz, .json, .csv, .parquet)
    key_column: str = "id"
    text_column: str = "text"
    jsonl: bool = False  # also write predictions.jsonl/
    batch_size: int = 256  # reviews per tokenizer call and forward pass
    partitions: int = 0  # 0: at least 4 tasks per core, so that a single gzipped file still uses every core

    def __post_init__(self) -> None:
        if self.input_format not in ("auto", *FORMATS):
            raise UsageError(f"input format must be auto or one of {FORMATS}, got {self.input_format!r}")
        if self.batch_size < 1 or self.partitions < 0:
            raise UsageError("--batch-size must be >= 1 and --partitions >= 0")

    def check_paths(self) -> None:
        """Before Spark starts: a mistyped path is said at once, not after seconds of start-up."""
        if not Path(self.input).exists():
            raise UsageError(f"{self.input} does not exist (--input)")
        if not Path(self.mar).is_file():
            raise UsageError(f"{self.mar} is missing: build it with `make archive` (--mar)")

    @property
    def format(self) -> str:
        return self.input_format if self.input_format != "auto" else format_of(self.input)


@dataclass(frozen=True)
class SparkSettings:
    master: str | None = "local[*]"  # None: the one spark-submit was given
    app_name: str = "sentiment-batch"
    conf: dict[str, str] = field(default_factory=dict)  # extra spark.* settings (--conf k=v)


def format_of(path: Path) -> str:
    """The input format from a file or directory name."""
    name = Path(path).name.lower()
    for suffix in (".gz", ".bz2", ".zst", ".snappy"):
        name = name.removesuffix(suffix)
    for fmt, suffixes in (("jsonl", (".jsonl", ".json", ".ndjson")), ("csv", (".csv",)), ("parquet", (".parquet",))):
        if name.endswith(suffixes):
            return fmt
    raise UsageError(f"cannot tell the format of {path}: pass --format jsonl|csv|parquet")
