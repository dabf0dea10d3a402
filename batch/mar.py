"""The deployed .mar archive as the batch job's single source of model, tokenizer, version, limits and code.

The driver ships the archive to every executor (SparkContext.addFile) together with a zip of the Python code
(SparkContext.addPyFile): this package, plus the `model` and `handler` packages exactly as the archive holds
them. The archive is unpacked once per content on each machine, into `sentiment-mar-<sha256>` in the
temporary directory, which every Python worker and every later run with the same archive reuses (pyspark's
workers leave through os._exit, so nothing they register to clean up at exit would ever run); the code zip
likewise lives once per content on the driver, as `sentiment-code-<sha256>.zip`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from batch.errors import UsageError

logger = logging.getLogger(__name__)
CODE_PACKAGES = ("model", "handler")  # what the archive carries for its handler; the batch job imports the same
# the handler's shared checks the batch job calls: an archive built before them cannot score a batch
NEEDED = (
    ("handler/codec.py", "def record_text("),
    ("handler/codec.py", "def check_key("),
    ("handler/codec.py", "def prediction_values("),
)
UNPACKED = "sentiment-mar-{digest}"
CODE_ZIP = "sentiment-code-{digest}.zip"
_DIGEST = 16  # hex digits of the SHA-256 in a name

_unpacked: dict[tuple[str, int, int], Path] = {}
_loaded: dict[Path, tuple] = {}


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:_DIGEST]


def unpack(mar: Path) -> Path:
    """The directory holding `mar` unpacked: named by its content's hash, made by the first process that needs it.

    A process unpacks into a directory of its own and renames it into place, so that a reader never sees a
    half-unpacked archive; when another process got there first, its copy is kept and this one removed."""
    mar = Path(mar)
    stat = mar.stat()
    cache_key = (str(mar.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _unpacked:
        target = Path(tempfile.gettempdir()) / UNPACKED.format(digest=digest(mar))
        if not target.is_dir():
            partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            with zipfile.ZipFile(mar) as archive:
                archive.extractall(partial)
            try:
                os.rename(partial, target)
            except OSError:  # another worker renamed its copy first
                shutil.rmtree(partial, ignore_errors=True)
        _unpacked[cache_key] = target
    return _unpacked[cache_key]


def load(mar: Path):
    """(Scorer, Limits) from the archive, loaded once per process with one torch thread."""
    directory = unpack(mar)
    if directory not in _loaded:
        from handler import settings
        from model.infer import limit_threads, load_scorer

        limit_threads(1)  # one Spark task per core; the archive's torch_threads is per TorchServe worker
        limits = settings.read(directory / settings.MODEL_CONFIG).limits  # the deployed handler's limits
        _loaded[directory] = (load_scorer(directory), limits)
        logger.info("loaded model version %s from %s", _loaded[directory][0].version, mar.name)
    return _loaded[directory]


def version(mar: Path) -> str:
    """The model version recorded in the archive's manifest, without loading the model."""
    return _manifest(mar)["modelVersion"]


def name(mar: Path) -> str:
    """The model name recorded in the archive's manifest: the evaluation judges each model on its own."""
    return _manifest(mar)["modelName"]


def _manifest(mar: Path) -> dict:
    import json

    with zipfile.ZipFile(mar) as archive:
        return json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]


def code_files(mar: Path) -> dict[str, bytes]:
    """What the code zip holds: this package from here, `model` and `handler` from the archive."""
    files = {}
    with zipfile.ZipFile(mar) as archive:
        for name in archive.namelist():
            if name.split("/", 1)[0] in CODE_PACKAGES and name.endswith(".py"):
                files[name] = archive.read(name)
    missing = {f"{p}/__init__.py" for p in CODE_PACKAGES} - set(files)
    missing |= {f"{name} ({needed})" for name, needed in NEEDED if needed.encode() not in files.get(name, b"")}
    if missing:
        raise UsageError(f"{mar} lacks {sorted(missing)}: rebuild it with `make archive`")
    for module in sorted(Path(__file__).resolve().parent.glob("*.py")):
        files[f"batch/{module.name}"] = module.read_bytes()
    return files


def code_zip(mar: Path, directory: Path | None = None) -> Path:
    """A zip for SparkContext.addPyFile, named by its content's hash and made once (Spark serves it from there)."""
    files = code_files(mar)
    content = hashlib.sha256()
    for name in sorted(files):
        content.update(name.encode() + b"\0" + files[name] + b"\0")
    target = Path(directory or tempfile.gettempdir()) / CODE_ZIP.format(digest=content.hexdigest()[:_DIGEST])
    if not target.is_file():
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            for name in sorted(files):
                out.writestr(zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0)), files[name], zipfile.ZIP_DEFLATED)
        os.replace(partial, target)
    return target
